//! Compiles `protos/remote.proto` (tonic service + prost messages) with a
//! vendored protoc; `actor.proto` types come from protoactor-actor.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY of intent: build scripts are single-threaded; prost-build reads PROTOC.
    unsafe { std::env::set_var("PROTOC", protoc) };
    let proto_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("protos");
    let remote_proto = proto_dir.join("remote.proto");
    println!("cargo:rerun-if-changed={}", remote_proto.display());
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .extern_path(".actor", "::protoactor_actor::proto")
        .compile_protos(&[remote_proto], &[proto_dir])?;
    Ok(())
}
