//! Messages shared by `remote-test-peer` and the tests that drive it; both
//! sides register them under the same JSON names.

use std::io::{BufRead, BufReader};
use std::process::Child;
use std::time::Duration;

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

/// Waits (at most 30 s) for the `READY` line of a peer started with a piped
/// stdout, and returns the address it serves on.
pub async fn wait_ready(child: &mut Child) -> Result<String, String> {
    let stdout = child.stdout.take().ok_or("the peer's stdout is not piped")?;
    let first_line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    });
    let line = tokio::time::timeout(Duration::from_secs(30), first_line)
        .await
        .map_err(|_| "the peer printed nothing within 30 s".to_string())?
        .map_err(|e| format!("the reader task failed: {e}"))?
        .map_err(|e| format!("the peer's stdout is not readable: {e}"))?;
    line.trim()
        .strip_prefix(READY.trim())
        .map(|address| address.trim().to_string())
        .ok_or_else(|| format!("the peer printed {line:?} instead of READY"))
}
