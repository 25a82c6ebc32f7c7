//! The integration tests of `protoactor-actor`, one module per subject, in one
//! test binary (one link instead of one per file: faster and smaller builds).

#![forbid(unsafe_code)]
mod common;

mod context_ops;
mod dead_letters;
mod event_stream;
mod lanes;
mod lifecycle;
mod mailbox;
mod middleware;
mod panic_storm;
mod receive_timeout;
mod reenter;
mod requests;
mod router;
mod spawn_names;
mod stash_behavior;
mod supervision;
mod timers;
mod watch;
