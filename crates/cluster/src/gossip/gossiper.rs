//! [`Gossiper`]: this member's handle on the gossip, and the state shared by
//! the gossip actor (receiving) and the gossip loop (sending).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use prost_types::Any;
use protoactor_actor::{ActorSystem, Pid, Props};
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::actor::GossipActor;
use super::consensus::{Check, ConsensusHandle, TypedCheck};
use super::state::{Delta, GossipStore};
use super::{GOSSIP_ACTOR, GossipSettings, StatisticsFn, gossip_loop, keys};
use crate::error::Error;
use crate::member::{ClusterTopology, Member};
use crate::member_list::{MemberList, Topology};
use crate::proto::{GossipRequest, GossipResponse, GossipState};

/// How long the state of a member that is not in the topology (and not
/// blocked) is kept after its last update: a newcomer the provider has not
/// reported here yet keeps its state, a member that died unseen is forgotten.
const UNKNOWN_MEMBER_GRACE: Duration = Duration::from_secs(30);

/// This member's handle on the gossip. Cheap to clone.
///
/// ```no_run
/// use std::time::Duration;
/// use protoactor_cluster::Cluster;
/// use protoactor_cluster::proto::ClusterIdentity;
///
/// # async fn demo(cluster: Cluster) {
/// let gossip = cluster.gossip();
/// gossip.set_state("app:leader-vote", &ClusterIdentity { identity: "m1".into(), kind: "vote".into() });
/// let votes = gossip.get_state::<ClusterIdentity>("app:leader-vote");
/// let agreed = gossip.register_consensus_check("app:leader-vote", |v: &ClusterIdentity| v.identity.clone());
/// if let Some(leader) = agreed.wait(Duration::from_secs(5)).await {
///     println!("{} members voted, all for {leader}", votes.len());
/// }
/// # }
/// ```
#[derive(Clone)]
pub struct Gossiper {
    shared: Arc<Shared>,
    topology: ConsensusHandle<u64>,
}

impl fmt::Debug for Gossiper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gossiper").field("member", &self.shared.me).finish_non_exhaustive()
    }
}

/// A monotonic clock that reads like unix milliseconds: heartbeat ages must
/// not jump when the wall clock is set.
#[derive(Debug)]
struct Clock {
    start: Instant,
    start_unix_ms: i64,
}

impl Clock {
    fn new() -> Self {
        let unix = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        Clock { start: Instant::now(), start_unix_ms: i64::try_from(unix.as_millis()).unwrap_or(0) }
    }

    fn now_ms(&self) -> i64 {
        self.start_unix_ms.saturating_add(i64::try_from(self.start.elapsed().as_millis()).unwrap_or(i64::MAX))
    }
}

struct Locked {
    store: GossipStore,
    checks: Vec<Arc<dyn Check>>,
}

#[derive(Default)]
struct Running {
    actor: Option<Pid>,
    task: Option<JoinHandle<()>>,
    flush: Option<JoinHandle<()>>,
    /// The failure detector and the events feeding it.
    detector: Option<(JoinHandle<()>, Vec<protoactor_actor::Subscription>)>,
}

/// What the actor, the loop and the handle share.
pub(super) struct Shared {
    pub(super) system: ActorSystem,
    pub(super) member_list: MemberList,
    pub(super) settings: GossipSettings,
    pub(super) statistics: StatisticsFn,
    pub(super) me: String,
    clock: Clock,
    locked: Mutex<Locked>,
    running: Mutex<Running>,
    /// Set by the loop once this member is in the topology.
    pub(super) joined: AtomicBool,
    stopped: AtomicBool,
    next_request: AtomicU64,
    /// Asks the loop to send to every member now (a new suspicion or block).
    pub(super) urgent: tokio::sync::Notify,
}

impl Gossiper {
    pub(crate) fn new(
        system: &ActorSystem,
        member_list: &MemberList,
        settings: GossipSettings,
        statistics: StatisticsFn,
    ) -> Self {
        let me = system.id().to_string();
        let shared = Arc::new(Shared {
            system: system.clone(),
            member_list: member_list.clone(),
            settings,
            statistics,
            clock: Clock::new(),
            locked: Mutex::new(Locked { store: GossipStore::new(me.clone()), checks: Vec::new() }),
            running: Mutex::new(Running::default()),
            joined: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            next_request: AtomicU64::new(1),
            urgent: tokio::sync::Notify::new(),
            me,
        });
        let topology = shared.register(keys::TOPOLOGY, |t: &ClusterTopology| t.topology_hash);
        Gossiper { shared, topology }
    }

    /// Spawns the gossip actor and starts the gossip loop (which gossips
    /// once this member is in the topology).
    pub(crate) async fn start(&self) -> Result<(), Error> {
        let shared = &self.shared;
        let producer = shared.clone();
        let props = Props::from_producer(move || GossipActor::new(producer.clone()));
        let pid = shared.system.root().spawn_named(props, GOSSIP_ACTOR).map_err(|e| match e {
            protoactor_actor::Error::ShuttingDown => Error::NotRunning,
            _ => Error::AlreadyStarted,
        })?;
        let task = shared.system.runtime().spawn(gossip_loop::run(shared.clone()));
        let mut running = shared.running.lock();
        running.actor = Some(pid);
        running.task = Some(task);
        drop(running);
        self.start_failure_detector(false);
        Ok(())
    }

    /// Starts the failure detector alone (a client: it votes on nothing and
    /// follows the members' block lists while it suspects a member).
    pub(crate) fn start_client(&self) {
        self.start_failure_detector(true);
    }

    fn start_failure_detector(&self, client: bool) {
        let shared = &self.shared;
        if shared.settings.suspicion_votes == 0 {
            return;
        }
        let detector = super::suspicion::start(shared, client);
        shared.running.lock().detector = Some(detector);
    }

    /// Marks this member as leaving ([`keys::LEFT`]) and sends that to every
    /// other member at once; returns when they answered or the gossip
    /// request timeout passed. Called before deregistering: once the others
    /// see this member leave the topology they stop answering it.
    pub(crate) async fn leave(&self) {
        self.set_state(keys::LEFT, &());
        let flush = self.shared.running.lock().flush.take();
        if let Some(flush) = flush {
            let _ = tokio::time::timeout(self.shared.settings.request_timeout, flush).await;
        }
    }

    /// Stops the loop and the actor. If this member set [`keys::LEFT`], waits
    /// (up to the request timeout) for that news to reach the others first.
    pub(crate) async fn shutdown(&self) {
        let shared = &self.shared;
        shared.stopped.store(true, Ordering::Release);
        let (actor, task, flush, detector) = {
            let mut running = shared.running.lock();
            (running.actor.take(), running.task.take(), running.flush.take(), running.detector.take())
        };
        if let Some((task, subscriptions)) = detector {
            drop(subscriptions);
            task.abort();
        }
        if let Some(flush) = flush {
            let _ = tokio::time::timeout(shared.settings.request_timeout + shared.settings.interval, flush).await;
        }
        if let Some(task) = task {
            task.abort();
        }
        if let Some(pid) = actor {
            let stop = shared.system.root().stop_future(&pid);
            if tokio::time::timeout(shared.settings.request_timeout, stop).await.is_err() {
                tracing::debug!("the gossip actor did not stop in time");
            }
        }
        tracing::debug!(member = %shared.me, "gossip stopped");
    }

    /// Sets this member's `key` to `value`; the change reaches the other
    /// members with the next gossip rounds. Setting [`keys::LEFT`] sends this
    /// member's state to every other member at once.
    pub fn set_state<T: prost::Message + prost::Name>(&self, key: &str, value: &T) {
        let any = match Any::from_msg(value) {
            Ok(any) => any,
            Err(e) => {
                tracing::warn!(%key, error = %e, "could not encode a gossip value; not set");
                return;
            }
        };
        self.shared.set_any(key, any);
        if key == keys::LEFT {
            Shared::flush(&self.shared);
        }
    }

    /// Every member's value for `key`, by member id, this member included
    /// (values that do not decode as `T` are left out).
    pub fn get_state<T: prost::Message + prost::Name + Default>(&self, key: &str) -> HashMap<String, T> {
        let locked = self.shared.locked.lock();
        locked
            .store
            .entries(key)
            .filter_map(|(id, e)| Some((id.to_string(), e.value.as_ref()?.to_msg::<T>().ok()?)))
            .collect()
    }

    /// Watches whether every member of the current topology has a value for
    /// `key` (decoding as `T`) and `extract` gives the same result for all of
    /// them. Re-evaluated whenever the key changes here or arrives by gossip,
    /// and whenever the topology changes.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use protoactor_cluster::{Cluster, ClusterTopology, gossip::keys};
    /// # async fn demo(cluster: Cluster) {
    /// // Wait until every member reports the same topology hash.
    /// let check = cluster.gossip().register_consensus_check(keys::TOPOLOGY, |t: &ClusterTopology| t.topology_hash);
    /// let hash: Option<u64> = check.wait(Duration::from_secs(5)).await;
    /// # }
    /// ```
    pub fn register_consensus_check<T, V>(
        &self,
        key: &str,
        extract: impl Fn(&T) -> V + Send + Sync + 'static,
    ) -> ConsensusHandle<V>
    where
        T: prost::Message + prost::Name + Default,
        V: PartialEq + Clone + Send + Sync + 'static,
    {
        self.shared.register(key, extract)
    }

    /// Waits up to `timeout` until every active member reports the same
    /// topology hash; returns it, or `None` on timeout.
    pub async fn topology_consensus(&self, timeout: Duration) -> Option<u64> {
        // Everyone, this member included, must report the topology this
        // member has now, not merely agree on an older one.
        self.topology.wait_matching(timeout, |current, agreed| current == *agreed).await
    }

    /// The topology consensus check (agreed topology hash), to watch it
    /// without waiting.
    pub fn topology_consensus_handle(&self) -> ConsensusHandle<u64> {
        self.topology.clone()
    }
}

impl Shared {
    pub(super) fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    fn register<T, V>(&self, key: &str, extract: impl Fn(&T) -> V + Send + Sync + 'static) -> ConsensusHandle<V>
    where
        T: prost::Message + prost::Name + Default,
        V: PartialEq + Clone + Send + Sync + 'static,
    {
        let decode = move |any: &Any| any.to_msg::<T>().ok().map(|t| extract(&t));
        let (check, handle) = TypedCheck::new(key, decode, self.member_list.subscribe());
        let topology = self.member_list.topology();
        let mut locked = self.locked.lock();
        check.evaluate(&locked.store, &topology);
        locked.checks.push(Arc::new(check));
        handle
    }

    /// Writes this member's `key`.
    pub(super) fn set_any(&self, key: &str, value: Any) {
        let topology = self.member_list.topology();
        let now = self.now_ms();
        let mut locked = self.locked.lock();
        locked.store.set(key, value, now);
        let Locked { store, checks } = &*locked;
        for check in checks.iter().filter(|c| c.key() == key) {
            check.evaluate(store, &topology);
        }
    }

    /// Writes this member's topology key from the member list (changes only;
    /// the block list rides along for cluster-wide blocking).
    pub(super) fn publish_topology(&self) {
        let topology = self.member_list.topology();
        let value = ClusterTopology {
            topology_hash: topology.hash,
            members: topology.members.clone(),
            joined: Vec::new(),
            left: Vec::new(),
            blocked: self.member_list.blocked(),
        };
        match Any::from_msg(&value) {
            Ok(any) => self.set_any(keys::TOPOLOGY, any),
            Err(e) => tracing::warn!(error = %e, "could not encode the topology for gossip"),
        }
        self.evaluate_all(&topology);
    }

    /// Re-evaluates every check (the topology changed) and drops abandoned ones.
    pub(super) fn evaluate_all(&self, topology: &Topology) {
        let mut locked = self.locked.lock();
        locked.checks.retain(|c| !c.is_abandoned());
        let Locked { store, checks } = &*locked;
        for check in checks {
            check.evaluate(store, topology);
        }
    }

    /// Merges remote state: accepted entries re-evaluate their checks, are
    /// published as [`GossipUpdate`](super::GossipUpdate)s, and remote block lists are adopted.
    pub(super) fn merge_remote(&self, state: &GossipState) -> usize {
        let topology = self.member_list.topology();
        let now = self.now_ms();
        let updates = {
            let mut locked = self.locked.lock();
            let updates = locked.store.merge(state, now);
            if !updates.is_empty() {
                let changed: HashSet<&str> = updates.iter().map(|u| u.key.as_str()).collect();
                let Locked { store, checks } = &*locked;
                for check in checks.iter().filter(|c| changed.contains(c.key())) {
                    check.evaluate(store, &topology);
                }
            }
            updates
        };
        let mut blocked: Vec<String> = Vec::new();
        for update in &updates {
            if update.key == keys::TOPOLOGY
                && let Ok(topology) = update.value.to_msg::<ClusterTopology>()
            {
                blocked.extend(topology.blocked.into_iter().filter(|id| !self.member_list.is_blocked(id)));
            }
        }
        if !blocked.is_empty() {
            blocked.sort();
            blocked.dedup();
            tracing::debug!(members = ?blocked, "adopting members blocked elsewhere in the cluster");
            self.member_list.block(blocked);
        }
        let accepted = updates.len();
        let events = self.system.event_stream();
        for update in updates {
            events.publish(update);
        }
        accepted
    }

    /// Answers a gossip request: refused from blocked or unknown members,
    /// otherwise merged. A request without state from an unknown member (a
    /// client) is a read: still refused, but the answer carries this
    /// member's topology entry, block list included.
    pub(super) fn on_request(&self, request: GossipRequest) -> GossipResponse {
        let from = request.member_id.as_str();
        if request.state.is_none() && !self.member_list.is_blocked(from) && !self.member_list.contains(from) {
            tracing::debug!(%from, request_id = %request.request_id, "gossip read from a non-member");
            return GossipResponse { state: Some(self.own_entry(keys::TOPOLOGY)), rejected: true };
        }
        if self.member_list.is_blocked(from) || !self.member_list.contains(from) {
            tracing::debug!(%from, request_id = %request.request_id, "refused gossip from a blocked or unknown member");
            return GossipResponse { state: None, rejected: true };
        }
        let offered = request.state.as_ref().map_or(0, |s| s.members.len());
        let accepted = request.state.as_ref().map_or(0, |s| self.merge_remote(s));
        tracing::debug!(%from, request_id = %request.request_id, offered, accepted, "gossip received");
        GossipResponse { state: None, rejected: false }
    }

    /// Members with a heartbeat older than `expiration` (see
    /// [`GossipStore::expired_members`]), not blocked yet.
    pub(super) fn expired_members(
        &self,
        now_ms: i64,
        expiration: Duration,
        first_seen: &HashMap<String, i64>,
    ) -> Vec<String> {
        let expiration_ms = i64::try_from(expiration.as_millis()).unwrap_or(i64::MAX);
        let expired = self.locked.lock().store.expired_members(keys::HEARTBEAT, now_ms, expiration_ms, first_seen);
        expired.into_iter().filter(|id| !self.member_list.is_blocked(id)).collect()
    }

    /// This member's entry under `key` alone, as a gossip state.
    fn own_entry(&self, key: &str) -> GossipState {
        let mut state = GossipState::default();
        if let Some(entry) = self.locked.lock().store.entry(&self.me, key) {
            let mut member = crate::proto::gossip_state::GossipMemberState::default();
            member.values.insert(key.to_string(), entry.clone());
            state.members.insert(self.me.clone(), member);
        }
        state
    }

    /// Every member's suspicions ([`keys::SUSPECTS`]), this member's included.
    pub(super) fn votes(&self) -> HashMap<String, Vec<String>> {
        let locked = self.locked.lock();
        locked
            .store
            .entries(keys::SUSPECTS)
            .filter_map(|(id, e)| {
                let votes = e.value.as_ref()?.to_msg::<crate::proto::MemberSuspicions>().ok()?;
                Some((id.to_string(), votes.member_ids))
            })
            .collect()
    }

    /// Other members that announced a graceful leave, not blocked yet.
    pub(super) fn left_members(&self) -> Vec<String> {
        let locked = self.locked.lock();
        let mut left: Vec<String> = locked
            .store
            .entries(keys::LEFT)
            .map(|(id, _)| id)
            .filter(|id| *id != self.me && !self.member_list.is_blocked(id))
            .map(str::to_string)
            .collect();
        left.sort();
        left
    }

    /// Forgets members that are gone: not in `topology`, and blocked or
    /// silent for longer than [`UNKNOWN_MEMBER_GRACE`].
    pub(super) fn purge(&self, topology: &Topology, now_ms: i64) {
        let grace = i64::try_from(UNKNOWN_MEMBER_GRACE.as_millis()).unwrap_or(i64::MAX);
        let mut locked = self.locked.lock();
        let unknown_kept: HashSet<String> = locked
            .store
            .member_ids()
            .filter(|id| topology.member(id).is_none())
            .filter(|id| {
                !self.member_list.is_blocked(id)
                    && locked.store.newest_timestamp(id).is_some_and(|t| now_ms - t < grace)
            })
            .map(str::to_string)
            .collect();
        let gone = locked.store.purge(|id| topology.member(id).is_some() || unknown_kept.contains(id));
        drop(locked);
        if !gone.is_empty() {
            tracing::debug!(members = ?gone, "forgot the gossip state of members that are gone");
        }
        self.evaluate_all(topology);
    }

    pub(super) fn delta_for(&self, target: &str, rng: &mut fastrand::Rng) -> Delta {
        self.locked.lock().store.delta_for(target, self.settings.max_send, rng)
    }

    /// Sends `delta` to `target` and, once acknowledged, commits its
    /// watermarks. Returns the target's id. Never fails: errors are logged.
    pub(super) async fn exchange(self: Arc<Self>, target: Member, delta: Delta) -> String {
        let request_id = format!("{}-{}", self.me, self.next_request.fetch_add(1, Ordering::Relaxed));
        let span = tracing::debug_span!(
            "gossip exchange",
            target = %target.id,
            request_id = %request_id,
            members = delta.state.members.len()
        );
        let Delta { state, pending } = delta;
        async {
            let pid = Pid::new(target.address(), GOSSIP_ACTOR);
            let request = GossipRequest { state: Some(state), member_id: self.me.clone(), request_id };
            let reply =
                self.system.root().request_future::<GossipResponse, _>(&pid, request, self.settings.request_timeout);
            match reply.await {
                Ok(response) if response.rejected => {
                    tracing::debug!("the target refused our gossip (it does not count us as a member)")
                }
                Ok(response) => {
                    self.locked.lock().store.commit(&target.id, &pending);
                    if let Some(state) = response.state {
                        self.merge_remote(&state);
                    }
                    tracing::debug!("gossip acknowledged");
                }
                Err(e) => tracing::debug!(error = %e, "gossip exchange failed"),
            }
        }
        .instrument(span)
        .await;
        target.id
    }

    /// Sends this member's news to every other member now (used on a
    /// graceful leave, so others learn of it before this member stops).
    fn flush(shared: &Arc<Shared>) {
        if !shared.joined.load(Ordering::Acquire) || shared.stopped.load(Ordering::Acquire) {
            return;
        }
        let me = shared.clone();
        let task = shared.system.runtime().spawn(async move {
            let mut rng = fastrand::Rng::new();
            let topology = me.member_list.topology();
            let exchanges: Vec<_> = topology
                .members
                .iter()
                .filter(|m| m.id != me.me)
                .filter_map(|m| {
                    let delta = me.delta_for(&m.id, &mut rng);
                    (!delta.is_empty()).then(|| me.clone().exchange(m.clone(), delta))
                })
                .collect();
            futures_util::future::join_all(exchanges).await;
        });
        if let Some(previous) = shared.running.lock().flush.replace(task) {
            previous.abort();
        }
    }
}
