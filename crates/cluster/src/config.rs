//! [`ClusterConfig`]: everything a member or client needs to join.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use protoactor_remote::RemoteConfig;

use crate::kind::Kind;
use crate::lookup::IdentityLookup;
use crate::provider::ClusterProvider;

/// How a cluster request retries: up to `max_attempts` attempts, waiting
/// `initial_backoff` after the first failure and doubling up to
/// `max_backoff`, never past the request's overall deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, including the first (at least 1).
    pub max_attempts: u32,
    /// Wait after the first failed attempt.
    pub initial_backoff: Duration,
    /// Longest wait between attempts.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 30,
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_secs(1),
        }
    }
}

impl RetryPolicy {
    /// `max_attempts` attempts with `initial_backoff` doubling up to one second.
    pub fn new(max_attempts: u32, initial_backoff: Duration) -> Self {
        RetryPolicy { max_attempts: max_attempts.max(1), initial_backoff, ..Default::default() }
    }

    /// Caps the wait between attempts.
    pub fn with_max_backoff(mut self, max: Duration) -> Self {
        self.max_backoff = max;
        self
    }

    /// The wait before attempt `attempt + 1`, after `attempt` failures (1-based).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(16);
        self.initial_backoff.saturating_mul(factor).min(self.max_backoff)
    }
}

/// The configuration of a cluster member or client.
///
/// ```
/// use std::time::Duration;
/// use protoactor_actor::prelude::*;
/// use protoactor_cluster::{ClusterConfig, IdentityLookup, InMemoryAgent, InMemoryProvider, Kind, RetryPolicy};
///
/// # fn demo(lookup: impl IdentityLookup) {
/// let agent = InMemoryAgent::new();
/// let config = ClusterConfig::new("demo", InMemoryProvider::new(&agent), lookup)
///     .with_kind(Kind::new("echo", Props::from_fn(|_| Ok(()))))
///     .with_request_timeout(Duration::from_secs(2))
///     .with_retry(RetryPolicy::new(5, Duration::from_millis(50)));
/// assert_eq!(config.name(), "demo");
/// # }
/// ```
#[derive(Clone)]
pub struct ClusterConfig {
    pub(crate) name: String,
    pub(crate) provider: Arc<dyn ClusterProvider>,
    pub(crate) lookup: Arc<dyn IdentityLookup>,
    pub(crate) kinds: Vec<Kind>,
    pub(crate) remote: RemoteConfig,
    pub(crate) request_timeout: Duration,
    pub(crate) request_deadline: Duration,
    pub(crate) activation_timeout: Duration,
    pub(crate) retry: RetryPolicy,
    pub(crate) join_timeout: Duration,
    pub(crate) gossip_interval: Duration,
    pub(crate) gossip_request_timeout: Duration,
    pub(crate) gossip_fanout: usize,
    pub(crate) gossip_max_send: usize,
    pub(crate) heartbeat_expiration: Option<Duration>,
    pub(crate) suspicion_votes: usize,
    pub(crate) suspicion_timeout: Duration,
    pub(crate) pid_cache_ttl: Duration,
    pub(crate) block_list_ttl: Duration,
}

impl fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterConfig")
            .field("name", &self.name)
            .field("kinds", &self.kinds.iter().map(|k| k.name.as_str()).collect::<Vec<_>>())
            .field("request_timeout", &self.request_timeout)
            .field("request_deadline", &self.request_deadline)
            .field("retry", &self.retry)
            .field("gossip_interval", &self.gossip_interval)
            .field("heartbeat_expiration", &self.heartbeat_expiration)
            .field("suspicion_votes", &self.suspicion_votes)
            .finish_non_exhaustive()
    }
}

impl ClusterConfig {
    /// A cluster named `name` whose membership comes from `provider` and whose
    /// grains are placed by `lookup`. Remoting binds 127.0.0.1 on a free port
    /// unless [`with_remote`](Self::with_remote) says otherwise.
    pub fn new(name: impl Into<String>, provider: impl ClusterProvider, lookup: impl IdentityLookup) -> Self {
        ClusterConfig {
            name: name.into(),
            provider: Arc::new(provider),
            lookup: Arc::new(lookup),
            kinds: Vec::new(),
            remote: RemoteConfig::bind("127.0.0.1", 0),
            request_timeout: Duration::from_secs(5),
            request_deadline: Duration::from_secs(30),
            activation_timeout: Duration::from_secs(5),
            retry: RetryPolicy::default(),
            join_timeout: Duration::from_secs(30),
            gossip_interval: Duration::from_millis(300),
            gossip_request_timeout: Duration::from_millis(1500),
            gossip_fanout: 3,
            gossip_max_send: 50,
            heartbeat_expiration: Some(Duration::from_secs(20)),
            suspicion_votes: 2,
            suspicion_timeout: Duration::from_secs(10),
            pid_cache_ttl: Duration::from_secs(15 * 60),
            block_list_ttl: Duration::from_secs(60 * 60),
        }
    }

    /// Hosts `kind` on this member (clients host none).
    pub fn with_kind(mut self, kind: Kind) -> Self {
        self.kinds.retain(|k| k.name != kind.name);
        self.kinds.push(kind);
        self
    }

    /// Remoting settings: bind address, message types, TLS. The cluster adds
    /// its own message types.
    pub fn with_remote(mut self, remote: RemoteConfig) -> Self {
        self.remote = remote;
        self
    }

    /// How long one attempt of a cluster request waits for the reply
    /// (default 5 s). A reply to an earlier attempt still counts later.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The most a cluster request takes, all retries included (default 30 s).
    pub fn with_request_deadline(mut self, deadline: Duration) -> Self {
        self.request_deadline = deadline;
        self
    }

    /// How long an identity lookup may take to find or activate a grain (default 5 s).
    pub fn with_activation_timeout(mut self, timeout: Duration) -> Self {
        self.activation_timeout = timeout;
        self
    }

    /// How requests retry (default: 30 attempts, 20 ms doubling to 1 s).
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// How long `start_member` waits to see itself in the topology (default 30 s).
    pub fn with_join_timeout(mut self, timeout: Duration) -> Self {
        self.join_timeout = timeout;
        self
    }

    /// Gossip tick (default 300 ms).
    pub fn with_gossip_interval(mut self, interval: Duration) -> Self {
        self.gossip_interval = interval;
        self
    }

    /// Timeout of one gossip exchange (default 1.5 s).
    pub fn with_gossip_request_timeout(mut self, timeout: Duration) -> Self {
        self.gossip_request_timeout = timeout;
        self
    }

    /// Members gossiped to per tick (default 3).
    pub fn with_gossip_fanout(mut self, fanout: usize) -> Self {
        self.gossip_fanout = fanout.max(1);
        self
    }

    /// Most member states in one gossip message (default 50).
    pub fn with_gossip_max_send(mut self, max: usize) -> Self {
        self.gossip_max_send = max.max(1);
        self
    }

    /// Blocks members whose gossip heartbeat is older than `expiration`
    /// (default 20 s); `None` leaves failure detection to the provider alone.
    pub fn with_heartbeat_expiration(mut self, expiration: Option<Duration>) -> Self {
        self.heartbeat_expiration = expiration;
        self
    }

    /// Fast failure detection: a member whose address refuses connections is
    /// suspected at once by each member that sees it, and blocked once
    /// `votes` members suspect it (default 2; fewer when the cluster has
    /// fewer other members: in a cluster of two, the other member decides).
    /// A member that is slow, paused or cut off is not suspected this way.
    /// 0 turns it off (failures are then found by the provider and the
    /// heartbeat expiry alone). See `docs/semantics.md`.
    pub fn with_suspicion_votes(mut self, votes: usize) -> Self {
        self.suspicion_votes = votes;
        self
    }

    /// How long a member's vote against another stands without new
    /// evidence (default 10 s).
    pub fn with_suspicion_timeout(mut self, timeout: Duration) -> Self {
        self.suspicion_timeout = timeout;
        self
    }

    /// Forgets cached pids of remote grains unused for `ttl` (default 15 min;
    /// use is recorded to the second, so a ttl under a few seconds forgets
    /// grains still in use).
    pub fn with_pid_cache_ttl(mut self, ttl: Duration) -> Self {
        self.pid_cache_ttl = ttl;
        self
    }

    /// How long a blocked member id stays blocked (default 1 h); long enough
    /// that a dead member is never talked to again, short enough that the
    /// list does not grow forever.
    pub fn with_block_list_ttl(mut self, ttl: Duration) -> Self {
        self.block_list_ttl = ttl;
        self
    }

    /// The cluster name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The kinds this member hosts.
    pub fn kinds(&self) -> &[Kind] {
        &self.kinds
    }

    /// Per-attempt request timeout.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// Identity lookup timeout.
    pub fn activation_timeout(&self) -> Duration {
        self.activation_timeout
    }

    /// Gossip tick.
    pub fn gossip_interval(&self) -> Duration {
        self.gossip_interval
    }

    /// Gossip exchange timeout.
    pub fn gossip_request_timeout(&self) -> Duration {
        self.gossip_request_timeout
    }

    /// Gossip fan-out.
    pub fn gossip_fanout(&self) -> usize {
        self.gossip_fanout
    }

    /// Most member states per gossip message.
    pub fn gossip_max_send(&self) -> usize {
        self.gossip_max_send
    }

    /// Votes that block a member whose address refuses connections (0: off).
    pub fn suspicion_votes(&self) -> usize {
        self.suspicion_votes
    }

    /// Heartbeat expiration, if enabled.
    pub fn heartbeat_expiration(&self) -> Option<Duration> {
        self.heartbeat_expiration
    }
}
