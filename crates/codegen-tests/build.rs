//! Generates the test services with protoactor-codegen.

fn main() -> std::io::Result<()> {
    protoactor_codegen::configure().compile(&["protos/bank.proto", "protos/common/types.proto"], &["protos"])
}
