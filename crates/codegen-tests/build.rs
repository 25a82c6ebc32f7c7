//! Generates the test services with protoactor-codegen.

use std::time::Duration;

use protoactor_codegen::MethodOptions;

fn main() -> std::io::Result<()> {
    protoactor_codegen::configure()
        .method("tests.bank.Account/Hold", MethodOptions::default().reentrant().timeout(Duration::from_secs(30)))
        .compile(&["protos/bank.proto", "protos/common/types.proto"], &["protos"])
}
