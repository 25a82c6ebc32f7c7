//! Compiles `protos/grain.proto` (the runtime's wire messages) with a
//! vendored protoc.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let proto = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("protos");
    println!("cargo:rerun-if-changed={}", proto.join("grain.proto").display());
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc);
    config.enable_type_names();
    config.btree_map([".grain.GrainErrorResponse.metadata"]);
    config.compile_protos(&[proto.join("grain.proto")], &[proto])?;
    Ok(())
}
