//! Gossip: every member owns a versioned key/value state and spreads the
//! deltas of everyone's state to a few peers per tick. Carries heartbeats,
//! the topology (with block lists) and the graceful-leave flag, and answers
//! consensus questions ("does every member report the same value for key K?").
//!
//! STUB: the API the rest of the crate uses; the implementation is being written.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use protoactor_actor::ActorSystem;

use crate::error::Error;
use crate::member_list::MemberList;

/// Gossip keys set by the cluster itself.
pub mod keys {
    /// The member's view of the topology (`ClusterTopology`, with its block list).
    pub const TOPOLOGY: &str = "cluster:topology";
    /// The member's heartbeat (`MemberHeartbeat`).
    pub const HEARTBEAT: &str = "cluster:heartbeat";
    /// Set when the member leaves gracefully.
    pub const LEFT: &str = "cluster:left";
}

/// The registered id of the gossip actor on every member.
pub const GOSSIP_ACTOR: &str = "$gossip";

/// Settings the gossiper runs with (from [`ClusterConfig`](crate::ClusterConfig)).
#[allow(dead_code)]
#[derive(Debug, Clone)]
pub(crate) struct GossipSettings {
    pub(crate) interval: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) fanout: usize,
    pub(crate) max_send: usize,
    pub(crate) heartbeat_expiration: Option<Duration>,
}

/// Produces this member's heartbeat: live activations per kind.
pub(crate) type StatisticsFn = Arc<dyn Fn() -> HashMap<String, i64> + Send + Sync>;

/// This member's handle on the gossip. Cheap to clone.
#[derive(Clone)]
pub struct Gossiper {
    #[allow(dead_code)]
    inner: Arc<Inner>,
}

#[allow(dead_code)]
struct Inner {
    system: ActorSystem,
    member_list: MemberList,
    settings: GossipSettings,
    statistics: StatisticsFn,
}

impl fmt::Debug for Gossiper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gossiper").finish_non_exhaustive()
    }
}

impl Gossiper {
    pub(crate) fn new(
        system: &ActorSystem,
        member_list: &MemberList,
        settings: GossipSettings,
        statistics: StatisticsFn,
    ) -> Self {
        Gossiper {
            inner: Arc::new(Inner { system: system.clone(), member_list: member_list.clone(), settings, statistics }),
        }
    }

    /// Spawns the gossip actor and starts the gossip loop.
    pub(crate) async fn start(&self) -> Result<(), Error> {
        Ok(())
    }

    /// Stops the loop and the actor.
    pub(crate) async fn shutdown(&self) {}

    /// Sets this member's `key` to `value`.
    pub fn set_state<T: prost::Message + prost::Name>(&self, _key: &str, _value: &T) {}

    /// Every member's value for `key`, by member id.
    pub fn get_state<T: prost::Message + prost::Name + Default>(&self, _key: &str) -> HashMap<String, T> {
        HashMap::new()
    }

    /// Waits up to `timeout` until every active member reports the same
    /// topology hash; returns it, or `None` on timeout.
    pub async fn topology_consensus(&self, _timeout: Duration) -> Option<u64> {
        None
    }
}
