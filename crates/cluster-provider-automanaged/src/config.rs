//! [`AutomanagedConfig`]: peers, health endpoint address and poll timing.

use std::time::Duration;

use protoactor_cluster::Error;

/// The health port members bind unless told otherwise (the Go original's).
pub const DEFAULT_PORT: u16 = 6330;

/// Where this member's health endpoint listens.
#[derive(Debug)]
pub(crate) enum Bind {
    /// Bind `host:port` at start (port 0 = any free port).
    Address { host: String, port: u16 },
    /// Serve on a listener the caller bound already (it reserved the port).
    Listener(std::net::TcpListener),
}

/// How an [`AutomanagedProvider`](crate::AutomanagedProvider) finds its
/// peers and how it watches them.
///
/// ```
/// use std::time::Duration;
/// use protoactor_cluster_provider_automanaged::AutomanagedConfig;
///
/// let config = AutomanagedConfig::new(["10.0.0.1:6330", "10.0.0.2:6330", "10.0.0.3:6330"])
///     .with_bind("0.0.0.0", 6330)
///     .with_poll_interval(Duration::from_secs(1))
///     .with_timeout(Duration::from_millis(500))
///     .with_missed_polls(3);
/// assert_eq!(config.peers().len(), 3);
/// ```
#[derive(Debug)]
pub struct AutomanagedConfig {
    pub(crate) peers: Vec<String>,
    pub(crate) bind: Bind,
    pub(crate) poll_interval: Duration,
    pub(crate) timeout: Duration,
    pub(crate) missed_polls: u32,
}

impl AutomanagedConfig {
    /// Polls `peers`: the `host:port` health addresses of the cluster's
    /// members. The list may include this member's own address (it is
    /// recognised by its id). A leading `http://` is accepted and dropped.
    ///
    /// Defaults: health endpoint on `127.0.0.1:`[`DEFAULT_PORT`], a poll
    /// every second, 500 ms per poll, a member leaves after 3 missed polls.
    pub fn new(peers: impl IntoIterator<Item = impl Into<String>>) -> Self {
        AutomanagedConfig {
            peers: peers.into_iter().map(|p| normalize(&p.into())).collect(),
            bind: Bind::Address { host: "127.0.0.1".into(), port: DEFAULT_PORT },
            poll_interval: Duration::from_secs(1),
            timeout: Duration::from_millis(500),
            missed_polls: 3,
        }
    }

    /// Serves this member's health endpoint on `host:port`; port 0 picks a
    /// free port ([`AutomanagedProvider::health_address`](crate::AutomanagedProvider::health_address)
    /// tells which once started). Bind an address the peers can reach: the
    /// default, `127.0.0.1`, only suits members on one machine.
    pub fn with_bind(mut self, host: impl Into<String>, port: u16) -> Self {
        self.bind = Bind::Address { host: host.into(), port };
        self
    }

    /// Serves this member's health endpoint on `listener`, bound already.
    /// Binding first reserves the port, so the peer lists of every member
    /// can be written before any of them starts (tests, port 0).
    pub fn with_listener(mut self, listener: std::net::TcpListener) -> Self {
        self.bind = Bind::Listener(listener);
        self
    }

    /// Time between two poll rounds (default 1 s, at least 10 ms).
    pub fn with_poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval.max(Duration::from_millis(10));
        self
    }

    /// How long one poll of one peer may take, connecting included
    /// (default 500 ms, at least 1 ms). A poll that takes longer is a miss.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// A member that failed this many consecutive polls leaves the topology
    /// (default 3, at least 1). It is then blocked for good: the same
    /// process cannot rejoin, a restarted one (new id) can.
    pub fn with_missed_polls(mut self, polls: u32) -> Self {
        self.missed_polls = polls.max(1);
        self
    }

    /// The peers' health addresses.
    pub fn peers(&self) -> &[String] {
        &self.peers
    }

    /// Time between poll rounds.
    pub fn poll_interval(&self) -> Duration {
        self.poll_interval
    }

    /// Per-poll timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Consecutive misses after which a member leaves.
    pub fn missed_polls(&self) -> u32 {
        self.missed_polls
    }
}

fn normalize(peer: &str) -> String {
    let peer = peer.trim();
    let peer = peer.strip_prefix("http://").unwrap_or(peer);
    peer.trim_end_matches('/').to_string()
}

/// The URL polled for `peer`, which must be `host:port` with an explicit port.
pub(crate) fn peer_url(peer: &str) -> Result<reqwest::Url, Error> {
    let bad = |why: &str| {
        Error::Config(format!("automanaged peer `{peer}` {why}; write peers as host:port, e.g. 10.0.0.1:6330"))
    };
    let port = peer.rsplit_once(':').map(|(_, p)| p).ok_or_else(|| bad("has no port"))?;
    port.parse::<u16>().map_err(|_| bad("has no valid port"))?;
    if peer.contains('/') {
        return Err(bad("is not host:port"));
    }
    let url = reqwest::Url::parse(&format!("http://{peer}{}", crate::health::HEALTH_PATH))
        .map_err(|e| bad(&e.to_string()))?;
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("has no host"));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_are_normalized_and_validated() {
        let config = AutomanagedConfig::new([" http://127.0.0.1:7000/ ", "node-2:6330"]);
        assert_eq!(config.peers(), ["127.0.0.1:7000", "node-2:6330"]);
        let url = peer_url("127.0.0.1:7000").expect("valid peer");
        assert_eq!(url.as_str(), "http://127.0.0.1:7000/_protoactor/member");
        assert!(peer_url("[::1]:6330").is_ok());
        for bad in ["node-2", "node-2:http", ":6330", "node-2:6330/x", "node-2:70000"] {
            assert!(peer_url(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn limits_are_clamped() {
        let config = AutomanagedConfig::new(Vec::<String>::new())
            .with_poll_interval(Duration::ZERO)
            .with_timeout(Duration::ZERO)
            .with_missed_polls(0);
        assert_eq!(config.poll_interval(), Duration::from_millis(10));
        assert_eq!(config.timeout(), Duration::from_millis(1));
        assert_eq!(config.missed_polls(), 1);
    }
}
