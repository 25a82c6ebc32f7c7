//! Fast failure suspicion: a member whose address refuses connections is
//! suspected at once by whoever saw it, and blocked once enough members
//! agree, long before a provider's TTL or the heartbeat expiry.
//!
//! * Evidence is a refused connection ([`EndpointUnreachable`] from
//!   remoting: nothing listens at the member's address any more), or another
//!   system answering the handshake at that address. A timeout is not
//!   evidence: a slow, paused or partitioned member is left to the heartbeat
//!   expiry and the provider.
//! * A member that sees evidence suspects the member at once and votes: its
//!   gossip key [`keys::SUSPECTS`] lists the members it suspects, sent to
//!   every other member without waiting for the next gossip tick. It also
//!   probes the suspect itself and withdraws the vote if it answers, or
//!   when no new evidence came for the suspicion timeout.
//! * A member that learns of another's vote probes the suspect (an empty
//!   gossip request); if it answers, this member does not vote; if its
//!   address refuses this member too, that refusal is this member's vote.
//! * Every member counts the votes of members in its topology; a member
//!   that `min(votes, members - 1)` others vote for is blocked (see
//!   [`confirmed`]). The block list rides the gossip, so all members and
//!   clients follow, and it overrides the provider, which may list the
//!   member until its own TTL.
//! * A client does not vote. While it suspects a member it asks a live
//!   member for its block list every tick, so it follows a confirmation as
//!   soon as the members reach it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prost_types::Any;
use protoactor_actor::{Pid, Subscription};
use protoactor_remote::{EndpointConnected, EndpointUnreachable};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};

use super::gossiper::Shared;
use super::{GOSSIP_ACTOR, GossipUpdate, keys};
use crate::member::ClusterTopology;
use crate::member_list::Topology;
use crate::proto::{GossipRequest, GossipResponse, MemberSuspicions};

/// The shortest time between two probes of one member.
const PROBE_SPACING: Duration = Duration::from_millis(500);

/// The longest time between two checks for expired suspicions (and, on a
/// client, between two requests for a member's block list).
const MAX_TICK: Duration = Duration::from_millis(50);

/// What this member's (or client's) failure detector did, published on the
/// actor system's event stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SuspicionEvent {
    /// This member saw `member` at `address` refuse a connection (or another
    /// system answer there) and suspects it; a member also votes it dead.
    Suspected {
        /// The suspected member.
        member: String,
        /// Its address.
        address: String,
        /// The evidence, in words.
        reason: String,
    },
    /// This member no longer suspects `member`.
    Withdrawn {
        /// The member.
        member: String,
        /// Why: it answered, or no new evidence came in time.
        reason: String,
    },
    /// This member probed `member`, suspected here or by another member,
    /// and it answered: this member does not vote against it.
    ProbeAnswered {
        /// The member that answered.
        member: String,
    },
    /// Enough members voted: this member blocks `member`.
    Confirmed {
        /// The blocked member.
        member: String,
        /// The members whose votes counted, sorted.
        voters: Vec<String>,
    },
}

/// The members of `topology` that enough other members of it vote dead, with
/// their voters (sorted). `votes` maps a voter to the members it suspects.
/// A member needs `min(required, members - 1)` votes (at least one) from
/// members of the topology other than itself, so in three or more members
/// one member's view alone never blocks anyone (with `required >= 2`); in
/// two, the other member decides. `required == 0` confirms nothing.
pub(crate) fn confirmed(
    topology: &Topology,
    votes: &HashMap<String, Vec<String>>,
    required: usize,
) -> Vec<(String, Vec<String>)> {
    if required == 0 {
        return Vec::new();
    }
    let needed = required.min(topology.members.len().saturating_sub(1)).max(1);
    let mut tally: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (voter, suspects) in votes {
        if topology.member(voter).is_none() {
            continue;
        }
        for suspect in suspects {
            if suspect != voter && topology.member(suspect).is_some() {
                tally.entry(suspect.as_str()).or_default().insert(voter.as_str());
            }
        }
    }
    tally
        .into_iter()
        .filter(|(_, voters)| voters.len() >= needed)
        .map(|(suspect, voters)| (suspect.to_string(), voters.into_iter().map(str::to_string).collect()))
        .collect()
}

enum Input {
    Unreachable {
        address: String,
        reason: String,
    },
    Connected {
        address: String,
        member_id: String,
    },
    /// A member's votes arrived by gossip.
    Votes {
        voter: String,
    },
    Probed {
        member: String,
        address: String,
        answered: bool,
    },
    Pulled,
}

/// This detector's own suspicion of one member.
struct Own {
    address: String,
    last_evidence: Instant,
}

/// Starts the detector of a member (votes) or client (follows the members'
/// block lists). Returns its task and the event subscriptions feeding it.
pub(super) fn start(shared: &Arc<Shared>, client: bool) -> (tokio::task::JoinHandle<()>, Vec<Subscription>) {
    let (tx, inbox) = mpsc::unbounded_channel();
    let events = shared.system.event_stream();
    let mut subscriptions = Vec::new();
    let to = tx.clone();
    subscriptions.push(events.subscribe::<EndpointUnreachable>(move |e| {
        let _ = to.send(Input::Unreachable { address: e.address.clone(), reason: e.reason.clone() });
    }));
    let to = tx.clone();
    subscriptions.push(events.subscribe::<EndpointConnected>(move |e| {
        let _ = to.send(Input::Connected { address: e.address.clone(), member_id: e.member_id.clone() });
    }));
    if !client {
        let to = tx.clone();
        subscriptions.push(events.subscribe::<GossipUpdate>(move |u| {
            if u.key == keys::SUSPECTS {
                let _ = to.send(Input::Votes { voter: u.member_id.clone() });
            }
        }));
    }
    let detector = Detector {
        shared: shared.clone(),
        client,
        tx,
        own: HashMap::new(),
        probed: HashMap::new(),
        answered_at: HashMap::new(),
        pulling: false,
        rng: fastrand::Rng::new(),
    };
    let task = shared.system.runtime().spawn(detector.run(inbox));
    (task, subscriptions)
}

struct Detector {
    shared: Arc<Shared>,
    client: bool,
    /// For probes and pulls to report back.
    tx: mpsc::UnboundedSender<Input>,
    own: HashMap<String, Own>,
    /// When each member was last probed.
    probed: HashMap<String, Instant>,
    /// Which member last completed a handshake at each address.
    answered_at: HashMap<String, String>,
    /// A client's request for a block list is in flight.
    pulling: bool,
    rng: fastrand::Rng,
}

static NEXT_PROBE: AtomicU64 = AtomicU64::new(1);

impl Detector {
    async fn run(mut self, mut inbox: mpsc::UnboundedReceiver<Input>) {
        let mut topology = self.shared.member_list.subscribe();
        let mut tick = tokio::time::interval(self.shared.settings.interval.min(MAX_TICK));
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                input = inbox.recv() => match input {
                    Some(input) => self.handle(input),
                    None => return,
                },
                changed = topology.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    topology.mark_unchanged();
                    self.on_topology();
                }
                _ = tick.tick() => self.on_tick(),
            }
        }
    }

    fn handle(&mut self, input: Input) {
        match input {
            Input::Unreachable { address, reason } => {
                if let Some(member) = self.member_at(&address) {
                    self.suspect(member, address, reason);
                }
            }
            Input::Connected { address, member_id } => {
                self.answered_at.insert(address.clone(), member_id.clone());
                if let Some(member) = self.member_at(&address) {
                    if member == member_id {
                        self.withdraw(&member, "it accepted a connection again");
                    } else {
                        let reason = format!("another system ({member_id}) answers at its address");
                        self.suspect(member, address, reason);
                    }
                }
            }
            Input::Votes { voter } => self.on_votes(&voter),
            Input::Probed { member, address, answered } => {
                // Silence is not evidence either way: a refusal arrives as
                // its own event, and slowness is for the heartbeat expiry.
                if !answered || self.answered_at.get(&address).is_some_and(|id| *id != member) {
                    return;
                }
                tracing::debug!(%member, "a probed member answered");
                self.shared.system.event_stream().publish(SuspicionEvent::ProbeAnswered { member: member.clone() });
                self.withdraw(&member, "it answered a probe");
            }
            Input::Pulled => self.pulling = false,
        }
    }

    /// The other member of the topology at `address`.
    fn member_at(&self, address: &str) -> Option<String> {
        let topology = self.shared.member_list.topology();
        topology.members.iter().find(|m| m.id != self.shared.me && m.address() == address).map(|m| m.id.clone())
    }

    fn suspect(&mut self, member: String, address: String, reason: String) {
        let now = Instant::now();
        if let Some(own) = self.own.get_mut(&member) {
            own.last_evidence = now;
            return;
        }
        tracing::warn!(%member, %address, %reason, "suspecting a member: its address refuses connections");
        self.own.insert(member.clone(), Own { address: address.clone(), last_evidence: now });
        self.shared.system.event_stream().publish(SuspicionEvent::Suspected {
            member: member.clone(),
            address: address.clone(),
            reason,
        });
        if !self.client {
            self.write_votes();
            self.evaluate();
            // The others learn of the vote now, not at the next tick.
            self.shared.urgent.notify_one();
        } else if !self.pulling {
            self.pull();
        }
        self.probe(member, address);
    }

    fn withdraw(&mut self, member: &str, reason: &str) {
        if self.own.remove(member).is_none() {
            return;
        }
        tracing::info!(%member, %reason, "no longer suspecting a member");
        self.shared
            .system
            .event_stream()
            .publish(SuspicionEvent::Withdrawn { member: member.to_string(), reason: reason.to_string() });
        if !self.client {
            self.write_votes();
        }
    }

    /// Another member's votes changed: count them, and probe whom it
    /// suspects (that probe's refusal, if any, is this member's vote).
    fn on_votes(&mut self, voter: &str) {
        self.evaluate();
        if voter == self.shared.me {
            return;
        }
        let topology = self.shared.member_list.topology();
        let suspects = self.shared.votes().remove(voter).unwrap_or_default();
        for suspect in suspects {
            if suspect == self.shared.me || self.own.contains_key(&suspect) {
                continue;
            }
            if let Some(m) = topology.member(&suspect) {
                self.probe(m.id.clone(), m.address());
            }
        }
    }

    fn on_topology(&mut self) {
        let topology = self.shared.member_list.topology();
        let before = self.own.len();
        // Suspects that left (blocked, or gone from the provider) need no vote.
        self.own.retain(|id, _| topology.member(id).is_some());
        self.probed.retain(|id, _| topology.member(id).is_some());
        if !self.client {
            if self.own.len() != before {
                self.write_votes();
            }
            self.evaluate();
        }
    }

    fn on_tick(&mut self) {
        let timeout = self.shared.settings.suspicion_timeout;
        let stale: Vec<String> =
            self.own.iter().filter(|(_, o)| o.last_evidence.elapsed() > timeout).map(|(id, _)| id.clone()).collect();
        for member in stale {
            self.withdraw(&member, "no new evidence within the suspicion timeout");
        }
        // Keep probing whom this member suspects: an answer withdraws the
        // vote, and traffic to a dead address refreshes the evidence.
        let suspects: Vec<(String, String)> = self.own.iter().map(|(id, o)| (id.clone(), o.address.clone())).collect();
        for (member, address) in suspects {
            self.probe(member, address);
        }
        if self.client && !self.own.is_empty() && !self.pulling {
            self.pull();
        }
    }

    /// Publishes this member's votes.
    fn write_votes(&self) {
        let mut member_ids: Vec<String> = self.own.keys().cloned().collect();
        member_ids.sort();
        match Any::from_msg(&MemberSuspicions { member_ids }) {
            Ok(any) => self.shared.set_any(keys::SUSPECTS, any),
            Err(e) => tracing::warn!(error = %e, "could not encode this member's suspicions"),
        }
    }

    /// Blocks the members enough others vote dead.
    fn evaluate(&self) {
        let list = &self.shared.member_list;
        let topology = list.topology();
        if topology.member(&self.shared.me).is_none() {
            return;
        }
        let votes = self.shared.votes();
        let mut blocked = Vec::new();
        for (member, voters) in confirmed(&topology, &votes, self.shared.settings.suspicion_votes) {
            if list.is_blocked(&member) {
                continue;
            }
            tracing::warn!(%member, ?voters, "members agree that a member's address refuses connections; blocking it");
            self.shared.system.event_stream().publish(SuspicionEvent::Confirmed { member: member.clone(), voters });
            blocked.push(member);
        }
        if !blocked.is_empty() {
            list.block(blocked);
            // The new block list goes to every member now.
            self.shared.publish_topology();
            self.shared.urgent.notify_one();
        }
    }

    /// Sends `member` an empty gossip request (any answer means alive),
    /// unless it was probed moments ago.
    fn probe(&mut self, member: String, address: String) {
        let now = Instant::now();
        if self.probed.get(&member).is_some_and(|at| now.duration_since(*at) < PROBE_SPACING) {
            return;
        }
        self.probed.insert(member.clone(), now);
        let shared = self.shared.clone();
        let tx = self.tx.clone();
        let request_id = format!("probe-{}", NEXT_PROBE.fetch_add(1, Ordering::Relaxed));
        shared.system.runtime().clone().spawn(async move {
            let pid = Pid::new(address.as_str(), GOSSIP_ACTOR);
            let request = GossipRequest { state: None, member_id: shared.me.clone(), request_id };
            let reply = shared
                .system
                .root()
                .request_future::<GossipResponse, _>(&pid, request, shared.settings.request_timeout)
                .await;
            let _ = tx.send(Input::Probed { member, address, answered: reply.is_ok() });
        });
    }

    /// A client asks a member it does not suspect for its block list, and
    /// adopts it.
    fn pull(&mut self) {
        let topology = self.shared.member_list.topology();
        let candidates: Vec<_> =
            topology.members.iter().filter(|m| m.id != self.shared.me && !self.own.contains_key(&m.id)).collect();
        let Some(target) = (!candidates.is_empty()).then(|| candidates[self.rng.usize(..candidates.len())]) else {
            return;
        };
        self.pulling = true;
        let shared = self.shared.clone();
        let tx = self.tx.clone();
        let pid = Pid::new(target.address(), GOSSIP_ACTOR);
        let request_id = format!("read-{}", NEXT_PROBE.fetch_add(1, Ordering::Relaxed));
        shared.system.runtime().clone().spawn(async move {
            let request = GossipRequest { state: None, member_id: shared.me.clone(), request_id };
            let reply = shared
                .system
                .root()
                .request_future::<GossipResponse, _>(&pid, request, shared.settings.request_timeout)
                .await;
            if let Ok(GossipResponse { state: Some(state), .. }) = reply {
                let list = &shared.member_list;
                let mut blocked: Vec<String> = state
                    .members
                    .values()
                    .filter_map(|m| m.values.get(keys::TOPOLOGY)?.value.as_ref()?.to_msg::<ClusterTopology>().ok())
                    .flat_map(|t| t.blocked)
                    .filter(|id| !list.is_blocked(id))
                    .collect();
                if !blocked.is_empty() {
                    blocked.sort();
                    blocked.dedup();
                    tracing::info!(members = ?blocked, "adopting the members' block list");
                    list.block(blocked);
                }
            }
            let _ = tx.send(Input::Pulled);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::member::{Member, topology_hash};

    fn topology(ids: &[&str]) -> Topology {
        let members: Vec<Member> = ids.iter().map(|id| Member::new("h", 1, *id, Vec::new())).collect();
        Topology { hash: topology_hash(ids.iter().copied()), members }
    }

    fn votes(entries: &[(&str, &[&str])]) -> HashMap<String, Vec<String>> {
        entries.iter().map(|(v, s)| (v.to_string(), s.iter().map(|x| x.to_string()).collect())).collect()
    }

    #[test]
    fn one_vote_in_three_blocks_nobody_two_do() {
        let t = topology(&["a", "b", "x"]);
        assert!(confirmed(&t, &votes(&[("a", &["x"])]), 2).is_empty(), "a single member's view is not enough");
        let both = confirmed(&t, &votes(&[("a", &["x"]), ("b", &["x"])]), 2);
        assert_eq!(both, vec![("x".to_string(), vec!["a".to_string(), "b".to_string()])]);
    }

    #[test]
    fn only_votes_of_members_about_members_count() {
        let t = topology(&["a", "b", "c", "x"]);
        // A voter outside the topology (a client, a blocked member), a vote
        // for oneself, duplicates, and a suspect outside the topology.
        let v = votes(&[("a", &["x", "x", "gone"]), ("stranger", &["x"]), ("x", &["x"])]);
        assert!(confirmed(&t, &v, 2).is_empty());
        let v = votes(&[("a", &["x"]), ("c", &["x", "b"])]);
        assert_eq!(confirmed(&t, &v, 2), vec![("x".to_string(), vec!["a".to_string(), "c".to_string()])]);
    }

    #[test]
    fn two_members_need_the_other_one_and_zero_disables() {
        let t = topology(&["a", "x"]);
        assert_eq!(confirmed(&t, &votes(&[("a", &["x"])]), 2).len(), 1);
        assert!(confirmed(&t, &votes(&[("a", &["x"])]), 0).is_empty());
        let t = topology(&["a", "b", "c", "d", "x"]);
        assert!(confirmed(&t, &votes(&[("a", &["x"]), ("b", &["x"])]), 3).is_empty());
        assert_eq!(confirmed(&t, &votes(&[("a", &["x"]), ("b", &["x"]), ("d", &["x"])]), 3).len(), 1);
    }
}
