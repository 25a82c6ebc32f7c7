//! What each peer answered lately, and so who is in the cluster.
//!
//! Pure bookkeeping (no I/O) so the rules are unit-tested: a peer is a
//! member from its first good answer until `missed_polls` consecutive
//! misses; an answer with another id means the process at that address
//! restarted; an answer for another cluster is not ours.

use std::time::{Duration, Instant};

use protoactor_cluster::Member;

use crate::health::{MemberInfo, MemberStatus};

/// Warn about a peer of another cluster at most this often.
const OTHER_CLUSTER_WARN_EVERY: Duration = Duration::from_secs(60);

/// What this member knows about one configured peer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeerView {
    /// Not polled yet.
    Unknown,
    /// A member of this cluster: answered within the missed-poll limit.
    Member {
        /// Its member id.
        id: String,
        /// Polls missed since its last answer.
        misses: u32,
    },
    /// Answered as a member of another cluster; ignored.
    OtherCluster {
        /// The cluster it belongs to.
        name: String,
    },
    /// Not a member: no answer, or not a protoactor member's answer.
    Missing {
        /// Consecutive polls missed.
        misses: u32,
        /// Why the last poll failed.
        reason: String,
    },
}

/// A transition worth logging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    /// First good answer (or first after it left).
    Joined { peer: String, member: Member },
    /// The peer answers with a new id: the old process is gone.
    Restarted { peer: String, old: Member, new: Member },
    /// Missed the limit of polls in a row.
    Left { peer: String, member: Member, misses: u32 },
    /// Answered for another cluster (throttled: only when worth a warning).
    OtherCluster { peer: String, name: String, dropped: Option<Member> },
    /// A poll failed (for debug logs).
    Missed { peer: String, misses: u32, reason: String },
}

struct Peer {
    address: String,
    member: Option<Member>,
    misses: u32,
    view: PeerView,
    warned_at: Option<Instant>,
}

/// The state of every configured peer.
pub(crate) struct Peers {
    cluster: String,
    missed_polls: u32,
    peers: Vec<Peer>,
}

impl Peers {
    pub(crate) fn new(cluster: &str, addresses: &[String], missed_polls: u32) -> Self {
        let peers = addresses
            .iter()
            .map(|a| Peer { address: a.clone(), member: None, misses: 0, view: PeerView::Unknown, warned_at: None })
            .collect();
        Peers { cluster: cluster.to_string(), missed_polls: missed_polls.max(1), peers }
    }

    /// Records the outcome of polling peer `index` (in configuration order).
    pub(crate) fn record(&mut self, index: usize, answer: Result<MemberInfo, String>, now: Instant) -> Vec<Change> {
        let cluster = self.cluster.clone();
        let limit = self.missed_polls;
        let Some(peer) = self.peers.get_mut(index) else { return Vec::new() };
        let address = peer.address.clone();
        let answer = answer.and_then(|info| match info.status {
            MemberStatus::Alive => Ok(info),
            MemberStatus::Unknown => Err(format!("member {} reports a status this version does not know", info.id)),
        });
        match answer {
            Ok(info) if info.cluster != cluster => {
                let dropped = peer.member.take();
                peer.misses = 0;
                peer.view = PeerView::OtherCluster { name: info.cluster.clone() };
                let due = peer.warned_at.is_none_or(|at| now.duration_since(at) >= OTHER_CLUSTER_WARN_EVERY);
                if due || dropped.is_some() {
                    peer.warned_at = Some(now);
                    return vec![Change::OtherCluster { peer: address, name: info.cluster, dropped }];
                }
                Vec::new()
            }
            Ok(info) => {
                let member = info.to_member();
                peer.misses = 0;
                peer.view = PeerView::Member { id: member.id.clone(), misses: 0 };
                match peer.member.replace(member.clone()) {
                    None => vec![Change::Joined { peer: address, member }],
                    Some(old) if old.id != member.id => vec![Change::Restarted { peer: address, old, new: member }],
                    Some(_) => Vec::new(),
                }
            }
            Err(reason) => {
                peer.misses = peer.misses.saturating_add(1);
                let misses = peer.misses;
                let mut changes = vec![Change::Missed { peer: address.clone(), misses, reason: reason.clone() }];
                match &peer.member {
                    Some(m) if misses < limit => peer.view = PeerView::Member { id: m.id.clone(), misses },
                    _ => {
                        peer.view = PeerView::Missing { misses, reason };
                        if let Some(member) = peer.member.take() {
                            changes.push(Change::Left { peer: address, member, misses });
                        }
                    }
                }
                changes
            }
        }
    }

    /// The peers that are members now, each id once, sorted by id.
    pub(crate) fn members(&self) -> Vec<Member> {
        let mut members: Vec<Member> = self.peers.iter().filter_map(|p| p.member.clone()).collect();
        members.sort_by(|a, b| a.id.cmp(&b.id));
        members.dedup_by(|a, b| a.id == b.id);
        members
    }

    /// Every peer's address and state, in configuration order.
    pub(crate) fn views(&self) -> Vec<(String, PeerView)> {
        self.peers.iter().map(|p| (p.address.clone(), p.view.clone())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(cluster: &str, id: &str) -> MemberInfo {
        MemberInfo {
            cluster: cluster.into(),
            id: id.into(),
            host: "127.0.0.1".into(),
            port: 4000,
            kinds: vec!["echo".into()],
            status: MemberStatus::Alive,
        }
    }

    fn ids(peers: &Peers) -> Vec<String> {
        peers.members().into_iter().map(|m| m.id).collect()
    }

    #[test]
    fn member_leaves_after_the_missed_poll_limit_only() {
        let now = Instant::now();
        let mut peers = Peers::new("c", &["a:1".into()], 3);
        assert_eq!(peers.views()[0].1, PeerView::Unknown);
        assert!(matches!(peers.record(0, Ok(info("c", "m1")), now)[..], [Change::Joined { .. }]));
        for misses in 1..3 {
            let changes = peers.record(0, Err("refused".into()), now);
            assert!(matches!(changes[..], [Change::Missed { .. }]), "still a member after {misses} misses");
            assert_eq!(ids(&peers), ["m1"]);
            assert_eq!(peers.views()[0].1, PeerView::Member { id: "m1".into(), misses });
        }
        let changes = peers.record(0, Err("refused".into()), now);
        assert!(matches!(&changes[..], [Change::Missed { .. }, Change::Left { misses: 3, .. }]));
        assert!(ids(&peers).is_empty());
        assert_eq!(peers.views()[0].1, PeerView::Missing { misses: 3, reason: "refused".into() });
    }

    #[test]
    fn an_answer_resets_the_miss_count() {
        let now = Instant::now();
        let mut peers = Peers::new("c", &["a:1".into()], 2);
        peers.record(0, Ok(info("c", "m1")), now);
        peers.record(0, Err("timeout".into()), now);
        assert!(peers.record(0, Ok(info("c", "m1")), now).is_empty(), "same member again: no change");
        peers.record(0, Err("timeout".into()), now);
        assert_eq!(ids(&peers), ["m1"]);
    }

    #[test]
    fn a_new_id_at_the_same_address_replaces_the_old_one_at_once() {
        let now = Instant::now();
        let mut peers = Peers::new("c", &["a:1".into()], 3);
        peers.record(0, Ok(info("c", "old")), now);
        peers.record(0, Err("refused".into()), now);
        let changes = peers.record(0, Ok(info("c", "new")), now);
        assert!(
            matches!(&changes[..], [Change::Restarted { old, new, .. }] if old.id == "old" && new.id == "new"),
            "{changes:?}"
        );
        assert_eq!(ids(&peers), ["new"]);
    }

    #[test]
    fn other_clusters_are_ignored_and_warned_about_rarely() {
        let now = Instant::now();
        let mut peers = Peers::new("c", &["a:1".into()], 3);
        let first = peers.record(0, Ok(info("other", "x")), now);
        assert!(matches!(&first[..], [Change::OtherCluster { name, dropped: None, .. }] if name == "other"));
        assert!(peers.record(0, Ok(info("other", "x")), now + Duration::from_secs(1)).is_empty(), "throttled");
        assert_eq!(peers.record(0, Ok(info("other", "x")), now + OTHER_CLUSTER_WARN_EVERY).len(), 1);
        assert!(ids(&peers).is_empty());
        assert_eq!(peers.views()[0].1, PeerView::OtherCluster { name: "other".into() });
    }

    #[test]
    fn a_member_that_switches_cluster_is_dropped_at_once() {
        let now = Instant::now();
        let mut peers = Peers::new("c", &["a:1".into()], 3);
        peers.record(0, Ok(info("c", "m1")), now);
        let changes = peers.record(0, Ok(info("other", "m1")), now);
        assert!(matches!(&changes[..], [Change::OtherCluster { dropped: Some(m), .. }] if m.id == "m1"));
        assert!(ids(&peers).is_empty());
    }

    #[test]
    fn unknown_status_counts_as_a_miss_and_duplicates_collapse() {
        let now = Instant::now();
        let mut peers = Peers::new("c", &["a:1".into(), "a-alias:1".into()], 1);
        peers.record(0, Ok(info("c", "m1")), now);
        peers.record(1, Ok(info("c", "m1")), now);
        assert_eq!(ids(&peers), ["m1"], "one member reachable under two addresses counts once");
        let mut leaving = info("c", "m1");
        leaving.status = MemberStatus::Unknown;
        let changes = peers.record(0, Ok(leaving), now);
        assert!(matches!(&changes[..], [Change::Missed { .. }, Change::Left { .. }]));
        assert_eq!(ids(&peers), ["m1"], "still answering under the other address");
    }
}
