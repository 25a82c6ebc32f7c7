//! Compiles `protos/cluster.proto` and `protos/gossip.proto` with a vendored
//! protoc; `actor.proto` types come from protoactor-actor.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let include = protoc_bin_vendored::include_path()?;
    let proto_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("protos");
    let files = [proto_dir.join("cluster.proto"), proto_dir.join("gossip.proto")];
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc);
    // Full protobuf names (`cluster.GossipRequest`) for the remote registry.
    config.enable_type_names();
    config.extern_path(".actor", "::protoactor_actor::proto");
    // Identities sort (prost already derives Eq and Hash where it can).
    config.type_attribute(".cluster.ClusterIdentity", "#[derive(PartialOrd, Ord)]");
    config.compile_protos(&files, &[proto_dir, include])?;
    Ok(())
}
