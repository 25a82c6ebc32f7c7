//! Messages shared by `remote-test-peer` and the tests that drive it; both
//! sides register them under the same JSON names.

use protoactor_remote::RemoteConfig;

/// Asks the peer's `echo` to answer with [`Pong`] after `delay_ms`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Ping {
    /// Echoed back in the [`Pong`].
    pub n: u32,
    /// How long the peer waits before answering.
    pub delay_ms: u64,
}

/// The answer to a [`Ping`], carrying its `n`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Pong(
    /// The ping's `n`.
    pub u32,
);

/// The line the peer prints once it serves, followed by its address.
pub const READY: &str = "READY ";

/// Registers the protocol's messages.
pub fn register(config: RemoteConfig) -> RemoteConfig {
    config.with_json::<Ping>("peer.Ping").with_json::<Pong>("peer.Pong")
}
