//! `ping_pong_client` as a binary target: the same program as the example
//! (`examples/ping_pong_client.rs`), so that `examples/tests/ping_pong.rs` can
//! run it through `CARGO_BIN_EXE_ping_pong_client`, which cargo keeps up to date
//! before the test runs (it does not build examples for a test).

#![forbid(unsafe_code)]
#[path = "../ping_pong_client.rs"]
mod program;

fn main() -> std::process::ExitCode {
    program::main()
}
