//! `protoactor-chaos`: see the library documentation.

use clap::Parser;

fn main() -> std::process::ExitCode {
    protoactor_chaos::run(protoactor_chaos::Cli::parse())
}
