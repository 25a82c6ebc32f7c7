//! Consensus checks: does every active member report the same value for a key?

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use prost_types::Any;
use tokio::sync::watch;

use super::state::GossipStore;
use crate::member_list::Topology;

/// The value every member in `members` holds for `key` according to `store`,
/// if they all hold one and `extract` gives the same value for each; `None`
/// if any member has no (decodable) entry, the values differ, or `members`
/// is empty.
pub(crate) fn agreed_value<V: PartialEq>(
    store: &GossipStore,
    key: &str,
    members: &[String],
    extract: impl Fn(&Any) -> Option<V>,
) -> Option<V> {
    let mut agreed: Option<V> = None;
    for member in members {
        let value = extract(store.entry(member, key)?.value.as_ref()?)?;
        match &agreed {
            None => agreed = Some(value),
            Some(first) if *first == value => {}
            Some(_) => return None,
        }
    }
    agreed
}

/// A registered check, re-evaluated when its key or the topology changes.
pub(crate) trait Check: Send + Sync {
    /// The gossip key the check reads.
    fn key(&self) -> &str;
    /// Recomputes the consensus among the members of `topology` and tells
    /// the handles if it changed.
    fn evaluate(&self, store: &GossipStore, topology: &Topology);
    /// True once every handle is gone.
    fn is_abandoned(&self) -> bool;
}

/// The agreed value and the topology (hash) it was agreed among.
type Agreed<V> = Option<(u64, V)>;

/// Decodes an entry and extracts the value to agree on.
type Extractor<V> = Box<dyn Fn(&Any) -> Option<V> + Send + Sync>;

pub(crate) struct TypedCheck<V> {
    key: String,
    extract: Extractor<V>,
    tx: watch::Sender<Agreed<V>>,
}

impl<V: PartialEq + Clone + Send + Sync + 'static> TypedCheck<V> {
    /// A check on `key` and the handle that watches it; `topology` is the
    /// member list's topology watch.
    pub(crate) fn new(
        key: &str,
        extract: impl Fn(&Any) -> Option<V> + Send + Sync + 'static,
        topology: watch::Receiver<Arc<Topology>>,
    ) -> (TypedCheck<V>, ConsensusHandle<V>) {
        let (tx, rx) = watch::channel(None);
        let check = TypedCheck { key: key.to_string(), extract: Box::new(extract), tx };
        (check, ConsensusHandle { key: key.into(), rx, topology })
    }
}

impl<V: PartialEq + Clone + Send + Sync + 'static> Check for TypedCheck<V> {
    fn key(&self) -> &str {
        &self.key
    }

    fn evaluate(&self, store: &GossipStore, topology: &Topology) {
        let ids: Vec<String> = topology.members.iter().map(|m| m.id.clone()).collect();
        let agreed = agreed_value(store, &self.key, &ids, &self.extract).map(|v| (topology.hash, v));
        self.tx.send_if_modified(|current| {
            if *current == agreed {
                return false;
            }
            *current = agreed;
            true
        });
    }

    fn is_abandoned(&self) -> bool {
        self.tx.receiver_count() == 0
    }
}

/// Watches whether every member of the current topology reports the same
/// value for one gossip key; from
/// [`Gossiper::register_consensus_check`](super::Gossiper::register_consensus_check).
/// A consensus reached among an earlier topology does not count once the
/// topology changed. Cheap to clone; the check is dropped with its last handle.
#[derive(Clone)]
pub struct ConsensusHandle<V> {
    key: String,
    rx: watch::Receiver<Agreed<V>>,
    topology: watch::Receiver<Arc<Topology>>,
}

impl<V> fmt::Debug for ConsensusHandle<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsensusHandle").field("key", &self.key).finish_non_exhaustive()
    }
}

impl<V: Clone + Send + Sync + 'static> ConsensusHandle<V> {
    /// The agreed value now, or `None` if the members disagree, some have not
    /// reported yet, or the topology changed since they agreed.
    pub fn current(&self) -> Option<V> {
        let hash = self.topology.borrow().hash;
        self.rx.borrow().as_ref().filter(|(h, _)| *h == hash).map(|(_, v)| v.clone())
    }

    /// Waits up to `timeout` for consensus and returns the agreed value, or
    /// `None` on timeout.
    pub async fn wait(&self, timeout: Duration) -> Option<V> {
        self.wait_matching(timeout, |_, _| true).await
    }

    /// Waits up to `timeout` for a consensus value for which `accept(hash of
    /// the topology it was agreed among, value)` holds.
    pub(crate) async fn wait_matching(&self, timeout: Duration, accept: impl Fn(u64, &V) -> bool) -> Option<V> {
        let mut rx = self.rx.clone();
        let mut topology = self.topology.clone();
        let watch = async move {
            loop {
                // Mark both as seen before looking, so no change slips between.
                let hash = topology.borrow_and_update().hash;
                if let Some((h, v)) = rx.borrow_and_update().as_ref()
                    && *h == hash
                    && accept(*h, v)
                {
                    return Some(v.clone());
                }
                tokio::select! {
                    r = rx.changed() => r.ok()?,
                    r = topology.changed() => r.ok()?,
                }
            }
        };
        tokio::time::timeout(timeout, watch).await.ok().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::member::Member;
    use crate::proto::gossip_state::GossipMemberState;
    use crate::proto::{GossipKeyValue, GossipState};

    fn any(n: u8) -> Any {
        Any { type_url: "test/Byte".into(), value: vec![n] }
    }

    fn store_with(values: &[(&str, u8)]) -> GossipStore {
        let mut store = GossipStore::new("me");
        let mut remote = GossipState::default();
        for (member, v) in values {
            if *member == "me" {
                store.set("k", any(*v), 0);
                continue;
            }
            let mut m = GossipMemberState::default();
            m.values.insert(
                "k".into(),
                GossipKeyValue { sequence_number: 1, value: Some(any(*v)), local_timestamp_unix_milliseconds: 0 },
            );
            remote.members.insert(member.to_string(), m);
        }
        store.merge(&remote, 0);
        store
    }

    fn byte(a: &Any) -> Option<u8> {
        a.value.first().copied()
    }

    fn topology(ids: &[&str]) -> Topology {
        let members: Vec<Member> = ids.iter().map(|id| Member::new("h", 1, *id, Vec::new())).collect();
        Topology { hash: crate::member::topology_hash(ids.iter().copied()), members }
    }

    fn ids(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn agrees_only_when_every_member_reports_the_same_value() {
        let store = store_with(&[("me", 7), ("a", 7), ("b", 7), ("c", 8)]);
        assert_eq!(agreed_value(&store, "k", &ids(&["me", "a", "b"]), byte), Some(7));
        assert_eq!(agreed_value(&store, "k", &ids(&["me", "a", "c"]), byte), None, "c differs");
        assert_eq!(agreed_value(&store, "k", &ids(&["me", "a", "d"]), byte), None, "d has not reported");
        assert_eq!(agreed_value(&store, "k", &[], byte), None, "no members, no consensus");
        assert_eq!(agreed_value(&store, "other", &ids(&["me"]), byte), None);
        // Members with state but outside the topology do not count.
        assert_eq!(agreed_value(&store, "k", &ids(&["me", "a"]), byte), Some(7));
    }

    #[test]
    fn handle_follows_the_check_and_the_check_knows_when_it_is_abandoned() {
        let two = topology(&["me", "a"]);
        let (topology_tx, topology_rx) = watch::channel(Arc::new(two.clone()));
        let (check, handle) = TypedCheck::new("k", byte, topology_rx);
        let store = store_with(&[("me", 1), ("a", 1)]);
        check.evaluate(&store, &two);
        assert_eq!(handle.current(), Some(1));
        // A new topology voids the old consensus until it is re-evaluated.
        let three = topology(&["me", "a", "b"]);
        topology_tx.send_replace(Arc::new(three.clone()));
        assert_eq!(handle.current(), None);
        check.evaluate(&store, &two);
        assert_eq!(handle.current(), None, "agreed among an older topology");
        let store = store_with(&[("me", 1), ("a", 1), ("b", 1)]);
        check.evaluate(&store, &three);
        assert_eq!(handle.current(), Some(1));
        let store = store_with(&[("me", 1), ("a", 2), ("b", 1)]);
        check.evaluate(&store, &three);
        assert_eq!(handle.current(), None);
        let copy = handle.clone();
        drop(handle);
        assert!(!check.is_abandoned());
        drop(copy);
        assert!(check.is_abandoned());
    }
}
