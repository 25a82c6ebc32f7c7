//! Messages shared by `remote-test-peer` and the tests that drive it; both
//! sides register them under the same JSON names.

use protoactor_remote::RemoteConfig;

/// Asks the peer's `echo` to answer with [`Pong`] after `delay_ms`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Ping {
    pub(crate) n: u32,
    pub(crate) delay_ms: u64,
}

/// The answer to a [`Ping`], carrying its `n`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Pong(pub(crate) u32);

/// The line the peer prints once it serves, followed by its address.
pub(crate) const READY: &str = "READY ";

/// Registers the protocol's messages.
pub(crate) fn register(config: RemoteConfig) -> RemoteConfig {
    config.with_json::<Ping>("peer.Ping").with_json::<Pong>("peer.Pong")
}
