//! The integration tests of `protoactor-remote`, one module per subject, in one
//! test binary (one link instead of one per file: faster and smaller builds).

#![forbid(unsafe_code)]
mod common;
#[path = "../bin/peer_protocol.rs"]
mod peer_protocol;

mod bad_input;
mod blocking;
mod errors;
mod fuzz_smoke;
mod messaging;
mod process_death;
mod security;
mod smoke;
mod spawn;
mod tls;
mod watch;
