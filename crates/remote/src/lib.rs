//! # protoactor-remote
//!
//! Actor systems on different hosts exchange messages by [`Pid`](protoactor_actor::Pid),
//! exactly as local ones do, over one bidirectional gRPC stream per pair of
//! systems. Messages are serialized once by a registry (protobuf by full
//! name, or JSON), queued per remote address, and written in batches whose
//! type names, targets and senders are de-duplicated.
//!
//! ```no_run
//! use std::time::Duration;
//! use protoactor_actor::prelude::*;
//! use protoactor_remote::{Remote, RemoteConfig};
//!
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Ping(u32);
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Pong(u32);
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let system = ActorSystem::new();
//! let remote = Remote::new(
//!     &system,
//!     RemoteConfig::bind("127.0.0.1", 0).with_json::<Ping>("demo.Ping").with_json::<Pong>("demo.Pong"),
//! );
//! remote.start().await?;
//! // A pid at another address is reached through remoting, transparently.
//! let ponger = Pid::new("127.0.0.1:8090", "ponger");
//! let Pong(n) = system.root().request_future(&ponger, Ping(1), Duration::from_secs(1)).await?;
//! # let _ = n;
//! # Ok(()) }
//! ```
//!
//! Guarantees (ordering, what happens when a peer dies) are in
//! `docs/semantics.md` at the repository root.
//!
//! ## Latency: where the requester runs
//!
//! A request awaited outside the runtime's tasks (the body of
//! `#[tokio::main]`, or any `block_on`) is written by a worker thread, and
//! the worker that reads the answer wakes the caller. Waking a parked
//! thread on a halted core (an idle vCPU of a VM) costs tens of
//! microseconds, so by default such a caller stays busy for up to 100 µs
//! waiting for its reply
//! ([`ActorSystemConfig::with_request_spin`](protoactor_actor::ActorSystemConfig::with_request_spin)):
//! between two processes on a 2-core VM, a round trip from `main` took
//! about 45 µs with it and about 80 µs without (`scripts/remote-latency.sh`,
//! `protoactor` and `protoactor-parked`). A requester that is a task or an
//! actor never busy-waits (that would hold up its worker); it stays on its
//! worker and took about 60 µs in the same runs. The busy wait needs a
//! multi-threaded runtime and more than one core, and backs off on a thread
//! whose replies keep coming after its bound.

#![forbid(unsafe_code)]
mod activator;
mod batch;
mod codec;
mod config;
mod conn;
mod dial;
mod drive;
mod endpoint;
mod error;
mod remote;
mod serialization;
mod server;
mod throttle_log;
mod tls;
mod wire;

/// Types generated from `protos/remote.proto`.
#[allow(missing_docs, unreachable_pub, missing_debug_implementations, clippy::all)]
pub mod proto {
    tonic::include_proto!("remote");
}

pub use activator::ACTIVATOR;
pub use config::{RemoteConfig, TlsConfig};
pub use conn::ConnectionStats;
pub use error::Error;
pub use remote::{BlockedByPeer, EndpointConnected, EndpointTerminated, EndpointUnreachable, HandshakeRefused, Remote};
pub use serialization::{JSON, PROTOBUF, Serialization};
pub use wire::UndeliveredRemoteMessage;

/// Fuzzing entry point (not API): decodes `bytes` as a `MessageBatch` and, if
/// that succeeds, every envelope exactly as the server does. Returns `None`
/// if the frame is not a batch, else per envelope `Ok(())` (delivered) or the
/// error that refused it. Panics only on a bug (a target index the server
/// would use out of range, or a panic in decoding).
#[doc(hidden)]
pub fn fuzz_decode_batch(bytes: &[u8]) -> Option<Vec<Result<(), String>>> {
    static SERIALIZATION: std::sync::OnceLock<Serialization> = std::sync::OnceLock::new();
    let serialization = SERIALIZATION.get_or_init(|| {
        let mut s = Serialization::new();
        s.register_json::<serde_json::Value>("fuzz.Json");
        s.register_protobuf_named::<proto::ActorPidRequest>("remote.ActorPidRequest");
        s.register_protobuf_named::<proto::ActorPidResponse>("remote.ActorPidResponse");
        s
    });
    let Ok(batch) = codec::parse_batch(bytes::Bytes::copy_from_slice(bytes)) else { return None };
    let peer = "127.0.0.1:1";
    let senders: Vec<protoactor_actor::Pid> = batch.senders.iter().map(|p| wire::pid_from_wire(p, peer)).collect();
    let slots = wire::type_slots(serialization, &batch);
    let mut outcomes = Vec::with_capacity(batch.envelopes.len());
    for envelope in &batch.envelopes {
        let target = match wire::decode_envelope(&slots, &batch, envelope, &senders, peer) {
            Ok(wire::Delivery::User { target, .. } | wire::Delivery::System { target, .. }) => target,
            Err(e) => {
                outcomes.push(Err(e.to_string()));
                continue;
            }
        };
        assert!(target < batch.targets.len(), "decoded target {target} is out of range");
        outcomes.push(Ok(()));
    }
    Some(outcomes)
}
