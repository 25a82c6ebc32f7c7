//! Generates the `Ponger` grain of the ping-pong programs from
//! `ping_pong/ponger.proto` (protoactor-codegen; vendored protoc).

fn main() -> std::io::Result<()> {
    protoactor_codegen::configure().compile(&["ping_pong/ponger.proto"], &["ping_pong"])
}
