//! The integration tests of `protoactor-remote`, one module per subject, in one
//! test binary (one link instead of one per file: faster and smaller builds).

#![forbid(unsafe_code)]
mod common;

mod blocking;
mod clusters;
mod errors;
mod fuzz_smoke;
mod messaging;
mod security;
mod smoke;
mod spawn;
mod stalls;
mod tls;
mod watch;
