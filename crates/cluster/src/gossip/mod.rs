//! Gossip: every member owns a versioned key/value state and spreads the
//! deltas of everyone's state to a few peers per tick. Carries heartbeats,
//! the topology (with block lists) and the graceful-leave flag, and answers
//! consensus questions ("does every member report the same value for key K?").
//!
//! Semantics follow protoactor-dotnet (`Gossip/*.cs`):
//!
//! * Each member writes only its own entries; every write bumps the member's
//!   sequence number (shared by all its keys). A receiver keeps a remote entry
//!   only if its sequence number is higher than the one it has, and stamps it
//!   with its *own* clock, so heartbeat ages are measured on one clock.
//! * Per (target, owner) the sender remembers the highest sequence number the
//!   target acknowledged, sends only newer entries (at most `max_send` member
//!   states per message) and raises the watermark only once the target
//!   answered without rejecting.
//! * Every tick (members only, once joined): block members whose heartbeat is
//!   too old (when enabled), block members that set [`keys::LEFT`], write the
//!   own heartbeat, then send deltas to up to `fanout` random members.
//! * Gossip from blocked members, or members not in the topology, is refused.
//! * A member's [`keys::TOPOLOGY`] entry carries its block list; merging it
//!   blocks the same members here (cluster-wide blocking).
//! * A member whose address refuses connections is suspected at once and
//!   blocked when enough members agree ([`SuspicionEvent`], [`keys::SUSPECTS`]).
//! * A request with no state from a non-member (a client) is a read: the
//!   answer carries this member's topology entry, so clients follow blocks.
//!
//! Every accepted remote entry is published as a [`GossipUpdate`] on the
//! actor system's event stream.

mod actor;
mod consensus;
mod gossip_loop;
mod gossiper;
mod state;
mod suspicion;

#[cfg(test)]
mod simulation_tests;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

pub use consensus::ConsensusHandle;
pub use gossiper::Gossiper;
pub use suspicion::SuspicionEvent;

/// Gossip keys set by the cluster itself.
pub mod keys {
    /// The member's view of the topology (`ClusterTopology`, with its block list).
    pub const TOPOLOGY: &str = "cluster:topology";
    /// The member's heartbeat (`MemberHeartbeat`).
    pub const HEARTBEAT: &str = "cluster:heartbeat";
    /// Set when the member leaves gracefully.
    pub const LEFT: &str = "cluster:left";
    /// The members this member suspects of being dead, its votes
    /// (`MemberSuspicions`); see [`SuspicionEvent`](super::SuspicionEvent).
    pub const SUSPECTS: &str = "cluster:suspects";
}

/// The registered id of the gossip actor on every member.
pub const GOSSIP_ACTOR: &str = "$gossip";

/// Settings the gossiper runs with (from [`ClusterConfig`](crate::ClusterConfig)).
#[derive(Debug, Clone)]
pub(crate) struct GossipSettings {
    pub(crate) interval: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) fanout: usize,
    pub(crate) max_send: usize,
    pub(crate) heartbeat_expiration: Option<Duration>,
    /// Votes that block a member whose address refuses connections (0: off).
    pub(crate) suspicion_votes: usize,
    /// How long a vote stands without new evidence.
    pub(crate) suspicion_timeout: Duration,
}

/// Produces this member's heartbeat: live activations per kind.
pub(crate) type StatisticsFn = Arc<dyn Fn() -> HashMap<String, i64> + Send + Sync>;

/// Published on the event stream for every remote gossip entry this member
/// accepted (one with a higher sequence number than it had).
#[derive(Debug, Clone, PartialEq)]
pub struct GossipUpdate {
    /// The member that owns (wrote) the entry.
    pub member_id: String,
    /// The key.
    pub key: String,
    /// The value, a packed protobuf message.
    pub value: prost_types::Any,
    /// The owner's sequence number of this write.
    pub sequence_number: i64,
}
