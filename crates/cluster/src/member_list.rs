//! [`MemberList`]: the current topology as this member sees it.
//!
//! Providers hand it the full member set whenever their view changes; it
//! removes blocked members, computes who joined and left, blocks those that
//! left (a member id never comes back), tears down their connections and
//! publishes a [`ClusterTopology`] event.
//!
//! Two ways to follow it: [`MemberList::subscribe`] watches the latest
//! topology (a slow reader skips states in between), and
//! [`MemberList::events`] streams every change in order, losing none.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use protoactor_actor::ActorSystem;
use protoactor_remote::Remote;
use tokio::sync::{mpsc, watch};

use crate::member::{ClusterTopology, Member, topology_hash};

/// One view of the membership: the active members (sorted by id) and their hash.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Topology {
    /// [`topology_hash`] of the member ids.
    pub hash: u64,
    /// Active members, sorted by id.
    pub members: Vec<Member>,
}

impl Topology {
    /// The member with `id`.
    pub fn member(&self, id: &str) -> Option<&Member> {
        self.members.binary_search_by(|m| m.id.as_str().cmp(id)).ok().map(|i| &self.members[i])
    }

    /// Members hosting `kind`.
    pub fn members_for_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Member> + 'a {
        self.members.iter().filter(move |m| m.hosts(kind))
    }
}

struct State {
    topology: Arc<Topology>,
    /// The provider's last full list, re-applied when someone is blocked.
    last_view: Vec<Member>,
    /// Addresses seen so far per member id, to prefer a newcomer over a stale
    /// member at the same address (a restarted process has a new id).
    known_ids: HashSet<String>,
    blocked: HashMap<String, Instant>,
    /// Blocked members that vanished from the provider's view (not blocked
    /// by gossip or by hand): if they come back, this member was the one cut off.
    vanished: HashSet<String>,
    /// Subscribers to every change ([`MemberList::events`]).
    subscribers: Vec<mpsc::UnboundedSender<ClusterTopology>>,
}

/// The membership as this member sees it. Cheap to clone.
#[derive(Clone)]
pub struct MemberList {
    inner: Arc<Inner>,
}

struct Inner {
    system: ActorSystem,
    remote: Remote,
    self_id: String,
    block_ttl: Duration,
    state: Mutex<State>,
    topology: watch::Sender<Arc<Topology>>,
    /// Consequences of a change, carried out in order by one task outside the
    /// state lock (event handlers may call back into the member list).
    effects: mpsc::UnboundedSender<Effect>,
    on_self_blocked: OnceLock<Box<dyn Fn() + Send + Sync>>,
}

enum Effect {
    Changed { event: ClusterTopology },
    SelfBlocked,
}

impl fmt::Debug for MemberList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.topology();
        f.debug_struct("MemberList")
            .field("self", &self.inner.self_id)
            .field("hash", &t.hash)
            .field("members", &t.members.iter().map(|m| m.id.as_str()).collect::<Vec<_>>())
            .finish()
    }
}

impl MemberList {
    pub(crate) fn new(system: &ActorSystem, remote: &Remote, block_ttl: Duration) -> Self {
        let empty = Arc::new(Topology { hash: topology_hash([]), members: Vec::new() });
        let (topology, _) = watch::channel(empty.clone());
        let (effects, mut effects_rx) = mpsc::unbounded_channel();
        let list = MemberList {
            inner: Arc::new(Inner {
                system: system.clone(),
                remote: remote.clone(),
                self_id: system.id().to_string(),
                block_ttl,
                state: Mutex::new(State {
                    topology: empty,
                    last_view: Vec::new(),
                    known_ids: HashSet::new(),
                    blocked: HashMap::new(),
                    vanished: HashSet::new(),
                    subscribers: Vec::new(),
                }),
                topology,
                effects,
                on_self_blocked: OnceLock::new(),
            }),
        };
        let weak = Arc::downgrade(&list.inner);
        system.runtime().spawn(async move {
            while let Some(effect) = effects_rx.recv().await {
                let Some(inner) = weak.upgrade() else { return };
                inner.carry_out(effect);
            }
        });
        list
    }

    pub(crate) fn on_self_blocked(&self, f: impl Fn() + Send + Sync + 'static) {
        let _ = self.inner.on_self_blocked.set(Box::new(f));
    }

    /// Replaces the membership with `members`, the provider's full current
    /// view (not a delta). Blocked members are left out; members missing from
    /// it are blocked. Providers call this whenever their view changes.
    pub fn update_cluster_topology(&self, members: Vec<Member>) {
        let mut state = self.inner.state.lock();
        state.last_view = members;
        self.apply(&mut state);
    }

    /// Blocks `ids`: they leave the topology now and are refused from then on,
    /// even if the provider still lists them.
    pub fn block(&self, ids: impl IntoIterator<Item = impl Into<String>>) {
        let mut state = self.inner.state.lock();
        let now = Instant::now();
        let mut changed = false;
        let mut newly_blocked = false;
        for id in ids {
            let id = id.into();
            if let std::collections::hash_map::Entry::Vacant(entry) = state.blocked.entry(id) {
                tracing::info!(member = %entry.key(), "member blocked");
                self.inner.remote.block(entry.key());
                entry.insert(now);
                changed = true;
                newly_blocked = true;
            }
        }
        if changed {
            let hash = state.topology.hash;
            self.apply(&mut state);
            // A block that left the members as they were is a change of its own.
            if newly_blocked && state.topology.hash == hash {
                let event = ClusterTopology {
                    topology_hash: hash,
                    members: state.topology.members.clone(),
                    joined: Vec::new(),
                    left: Vec::new(),
                    blocked: sorted_blocked(&state),
                };
                notify(&mut state, &event);
            }
        }
    }

    /// Forgets a block before it expires, for an operator who knows the member
    /// id is safe to accept again.
    pub fn unblock(&self, id: &str) {
        self.inner.state.lock().blocked.remove(id);
    }

    /// True if `id` is blocked.
    pub fn is_blocked(&self, id: &str) -> bool {
        self.inner.state.lock().blocked.contains_key(id)
    }

    /// Blocked member ids.
    pub fn blocked(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.inner.state.lock().blocked.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// The current topology.
    pub fn topology(&self) -> Arc<Topology> {
        self.inner.topology.borrow().clone()
    }

    /// Watches the latest topology: for users that need the current state,
    /// not every step (a slow reader sees only the last of several changes).
    pub fn subscribe(&self) -> watch::Receiver<Arc<Topology>> {
        self.inner.topology.subscribe()
    }

    /// Every topology change from now on, in order, none skipped however
    /// slowly it is read: joins and leaves (with the new hash), and blocks.
    /// The first event is the topology at the time of the call (all of its
    /// members as `joined`). Events queue without bound until read; drop the
    /// receiver to unsubscribe.
    pub fn events(&self) -> mpsc::UnboundedReceiver<ClusterTopology> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut state = self.inner.state.lock();
        let snapshot = ClusterTopology {
            topology_hash: state.topology.hash,
            members: state.topology.members.clone(),
            joined: state.topology.members.clone(),
            left: Vec::new(),
            blocked: sorted_blocked(&state),
        };
        let _ = tx.send(snapshot);
        state.subscribers.push(tx);
        rx
    }

    /// The current topology hash.
    pub fn topology_hash(&self) -> u64 {
        self.inner.topology.borrow().hash
    }

    /// Active members, sorted by id.
    pub fn members(&self) -> Vec<Member> {
        self.topology().members.clone()
    }

    /// Active members other than this one.
    pub fn other_members(&self) -> Vec<Member> {
        self.topology().members.iter().filter(|m| m.id != self.inner.self_id).cloned().collect()
    }

    /// The active member with `id`.
    pub fn member(&self, id: &str) -> Option<Member> {
        self.topology().member(id).cloned()
    }

    /// True if `id` is an active member.
    pub fn contains(&self, id: &str) -> bool {
        self.topology().member(id).is_some()
    }

    /// True if an active member has the remote address `address`.
    pub fn contains_address(&self, address: &str) -> bool {
        self.topology().members.iter().any(|m| m.address() == address)
    }

    /// Active members hosting `kind`.
    pub fn members_for_kind(&self, kind: &str) -> Vec<Member> {
        self.topology().members_for_kind(kind).cloned().collect()
    }

    /// This member's id (its actor system id).
    pub fn self_id(&self) -> &str {
        &self.inner.self_id
    }

    /// Waits until `pred` holds for the topology, or `timeout` passes.
    pub async fn wait_for(&self, timeout: Duration, mut pred: impl FnMut(&Topology) -> bool) -> bool {
        let mut rx = self.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|t| pred(t))).await.is_ok_and(|r| r.is_ok())
    }

    fn apply(&self, state: &mut State) {
        let inner = &self.inner;
        let now = Instant::now();
        let ttl = inner.block_ttl;
        state.blocked.retain(|_, since| now.duration_since(*since) < ttl);
        let State { vanished, blocked, .. } = &mut *state;
        vanished.retain(|id| blocked.contains_key(id));
        if on_minority_side_of_a_heal(state, &inner.self_id) {
            tracing::warn!(
                member = %inner.self_id,
                "members this member blocked when they vanished are back and outnumber the members it sees: \
                 it was the side cut off, and the others have blocked it"
            );
            state.blocked.insert(inner.self_id.clone(), now);
        }
        if state.blocked.contains_key(&inner.self_id) {
            let _ = inner.effects.send(Effect::SelfBlocked);
            return;
        }
        // One member per address: when a process restarts on the same port
        // the provider may briefly list both; the id we have not seen before
        // is the live one.
        let mut by_address: BTreeMap<String, Member> = BTreeMap::new();
        for m in state.last_view.iter().filter(|m| !state.blocked.contains_key(&m.id)) {
            let replace = match by_address.get(&m.address()) {
                None => true,
                Some(existing) => state.known_ids.contains(&existing.id) && !state.known_ids.contains(&m.id),
            };
            if replace {
                by_address.insert(m.address(), m.clone());
            }
        }
        let mut members: Vec<Member> = by_address.into_values().collect();
        members.sort_by(|a, b| a.id.cmp(&b.id));
        members.dedup_by(|a, b| a.id == b.id);
        let hash = topology_hash(members.iter().map(|m| m.id.as_str()));
        let old = state.topology.clone();
        if hash == old.hash && !old.members.is_empty() {
            return;
        }
        let old_ids: HashSet<&str> = old.members.iter().map(|m| m.id.as_str()).collect();
        let new_ids: HashSet<&str> = members.iter().map(|m| m.id.as_str()).collect();
        let joined: Vec<Member> = members.iter().filter(|m| !old_ids.contains(m.id.as_str())).cloned().collect();
        let left: Vec<Member> = old.members.iter().filter(|m| !new_ids.contains(m.id.as_str())).cloned().collect();
        if joined.is_empty() && left.is_empty() && old.members.len() == members.len() && hash == old.hash {
            return;
        }
        for m in &left {
            if !state.last_view.iter().any(|v| v.id == m.id) {
                state.vanished.insert(m.id.clone());
            }
            // A member that left never comes back under the same id.
            state.blocked.entry(m.id.clone()).or_insert(now);
            inner.remote.block(&m.id);
        }
        for m in &members {
            state.known_ids.insert(m.id.clone());
        }
        let topology = Arc::new(Topology { hash, members: members.clone() });
        state.topology = topology.clone();
        let event = ClusterTopology { topology_hash: hash, members, joined, left, blocked: sorted_blocked(state) };
        // Under the state lock: subscribers see changes in the order they happened.
        notify(state, &event);
        inner.topology.send_replace(topology);
        let _ = inner.effects.send(Effect::Changed { event });
    }
}

/// After a partition heals both sides see each other alive again, each
/// having blocked the other when it vanished. The side whose returning
/// members outnumber the members it still sees (itself included) is the
/// minority: the majority has blocked it, so it must step down (a blocked id
/// never comes back; its process can rejoin under a new id). A tie keeps
/// both sides: with no majority there is no safe choice. Clients (not in
/// the provider's view) never step down.
fn on_minority_side_of_a_heal(state: &State, self_id: &str) -> bool {
    if !state.last_view.iter().any(|m| m.id == self_id) {
        return false;
    }
    let returned = state.last_view.iter().filter(|m| state.vanished.contains(&m.id)).count();
    let seen = state.last_view.iter().filter(|m| !state.blocked.contains_key(&m.id)).count();
    returned > seen
}

fn sorted_blocked(state: &State) -> Vec<String> {
    let mut b: Vec<String> = state.blocked.keys().cloned().collect();
    b.sort();
    b
}

/// Hands `event` to every live subscriber of [`MemberList::events`].
fn notify(state: &mut State, event: &ClusterTopology) {
    state.subscribers.retain(|tx| tx.send(event.clone()).is_ok());
}

impl Inner {
    fn carry_out(&self, effect: Effect) {
        match effect {
            Effect::SelfBlocked => {
                if let Some(f) = self.on_self_blocked.get() {
                    tracing::warn!(member = %self.self_id, "this member is blocked by the cluster; shutting down");
                    f();
                }
            }
            Effect::Changed { event } => {
                let _span = tracing::info_span!(
                    "membership change",
                    hash = event.topology_hash,
                    joined = event.joined.len(),
                    left = event.left.len()
                )
                .entered();
                for m in &event.joined {
                    tracing::info!(member = %m.id, address = %m.address(), kinds = ?m.kinds, "member joined");
                }
                for m in &event.left {
                    tracing::info!(member = %m.id, address = %m.address(), "member left");
                    if m.id != self.self_id {
                        self.remote.terminate_endpoint(&m.address(), "the member left the cluster");
                    }
                }
                self.system.event_stream().publish(event);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use protoactor_remote::RemoteConfig;

    fn member(n: usize) -> Member {
        Member::new("127.0.0.1", 10_000 + n as u16, format!("m{n:03}"), vec!["k".into()])
    }

    #[tokio::test]
    async fn a_slow_subscriber_sees_a_hundred_joins_and_leaves_in_order() {
        let system = ActorSystem::new();
        let remote = Remote::new(&system, RemoteConfig::bind("127.0.0.1", 0));
        let list = MemberList::new(&system, &remote, Duration::from_secs(60));
        let me = Member::new("127.0.0.1", 9_999, system.id(), vec![]);
        list.update_cluster_topology(vec![me.clone()]);
        let mut events = list.events();
        let mut latest = list.subscribe();
        latest.borrow_and_update();
        // Each step: m(i) joins and m(i-1) leaves, before anyone reads.
        for i in 0..100 {
            list.update_cluster_topology(vec![me.clone(), member(i)]);
        }
        let first = events.recv().await.unwrap();
        assert_eq!(first.members, vec![me.clone()], "the first event is the topology at subscribe time");
        for i in 0..100 {
            let e = events.recv().await.unwrap();
            assert_eq!(e.joined, vec![member(i)], "step {i}");
            let left: Vec<Member> = if i == 0 { vec![] } else { vec![member(i - 1)] };
            assert_eq!(e.left, left, "step {i}");
            assert_eq!(e.topology_hash, topology_hash([me.id.as_str(), member(i).id.as_str()]), "step {i}");
            if i > 0 {
                assert!(e.blocked.contains(&member(i - 1).id), "who left is blocked: step {i}");
            }
        }
        assert!(events.try_recv().is_err(), "nothing more");
        // The watch only has the latest state.
        let mut expected = vec![me.clone(), member(99)];
        expected.sort_by(|a, b| a.id.cmp(&b.id));
        assert_eq!(latest.borrow_and_update().members, expected);

        // A block that leaves the members as they are is an event too.
        list.block(["stranger"]);
        let e = events.recv().await.unwrap();
        assert!(e.joined.is_empty() && e.left.is_empty() && e.blocked.contains(&"stranger".to_string()), "{e:?}");
        system.shutdown().await;
    }

    /// A list of `me` plus three peers, with a flag set when it blocks itself.
    fn four(system: &ActorSystem) -> (MemberList, Member, Arc<std::sync::atomic::AtomicBool>) {
        let remote = Remote::new(system, RemoteConfig::bind("127.0.0.1", 0));
        let list = MemberList::new(system, &remote, Duration::from_secs(60));
        let stepped_down = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stepped_down.clone();
        list.on_self_blocked(move || flag.store(true, std::sync::atomic::Ordering::SeqCst));
        let me = Member::new("127.0.0.1", 9_999, system.id(), vec![]);
        list.update_cluster_topology(vec![me.clone(), member(1), member(2), member(3)]);
        (list, me, stepped_down)
    }

    #[tokio::test]
    async fn the_side_cut_off_steps_down_when_the_majority_it_blocked_comes_back() {
        let system = ActorSystem::new();
        let (list, me, stepped_down) = four(&system);
        // Cut off: every peer vanishes from this member's view (and is blocked).
        list.update_cluster_topology(vec![me.clone()]);
        assert_eq!(list.blocked().len(), 3);
        // Healed: the three are back; one member against three.
        list.update_cluster_topology(vec![me.clone(), member(1), member(2), member(3)]);
        assert!(list.is_blocked(&me.id), "the minority blocks itself");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !stepped_down.load(std::sync::atomic::Ordering::SeqCst) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(stepped_down.load(std::sync::atomic::Ordering::SeqCst), "it shuts down through on_self_blocked");
        system.shutdown().await;
    }

    #[tokio::test]
    async fn the_majority_keeps_its_place_when_the_member_it_cut_off_comes_back() {
        let system = ActorSystem::new();
        let (list, me, _) = four(&system);
        list.update_cluster_topology(vec![me.clone(), member(1), member(2)]);
        list.update_cluster_topology(vec![me.clone(), member(1), member(2), member(3)]);
        assert!(!list.is_blocked(&me.id), "three against one: the majority stays");
        assert!(list.is_blocked(&member(3).id), "and the returning member stays blocked");
        system.shutdown().await;
    }

    #[tokio::test]
    async fn members_blocked_while_still_listed_do_not_make_a_minority() {
        // Two of four leave gracefully at once: gossip blocks them while the
        // provider still lists them. They never vanished: no heal, no step down.
        let system = ActorSystem::new();
        let (list, me, _) = four(&system);
        list.block([member(1).id, member(2).id, member(3).id]);
        list.update_cluster_topology(vec![me.clone(), member(1), member(2), member(3)]);
        assert!(!list.is_blocked(&me.id));
        system.shutdown().await;
    }
}
