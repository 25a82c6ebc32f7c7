//! Compiles `protos/actor.proto` with a vendored protoc, so a fresh machine
//! needs no system protobuf package to build the runtime.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let proto_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("protos");
    let actor_proto = proto_dir.join("actor.proto");
    println!("cargo:rerun-if-changed={}", actor_proto.display());
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc);
    // `prost::Name` gives remoting the full protobuf type names (`actor.Watch`).
    config.enable_type_names();
    config.compile_protos(&[actor_proto], &[proto_dir])?;
    Ok(())
}
