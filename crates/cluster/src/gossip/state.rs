//! The gossip state one member holds: every member's versioned entries, and
//! per (target, owner) what the target has acknowledged. Pure logic: the
//! caller passes the time and the randomness, so it is tested without a
//! clock or a network.

use std::collections::HashMap;

use prost_types::Any;

use super::GossipUpdate;
use crate::proto::gossip_state::GossipMemberState;
use crate::proto::{GossipKeyValue, GossipState};

/// The entries to send to one target and the watermarks to commit once the
/// target acknowledged them.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Delta {
    /// The entries, by owner.
    pub(crate) state: GossipState,
    /// (owner, highest sequence number sent) per owner in `state`.
    pub(crate) pending: Vec<(String, i64)>,
}

impl Delta {
    /// True if there is nothing to send.
    pub(crate) fn is_empty(&self) -> bool {
        self.state.members.is_empty()
    }
}

/// Everyone's gossip state as one member sees it.
#[derive(Debug)]
pub(crate) struct GossipStore {
    self_id: String,
    state: GossipState,
    /// This member's last sequence number; shared by all of its keys.
    sequence: i64,
    /// target -> owner -> highest sequence number the target acknowledged.
    committed: HashMap<String, HashMap<String, i64>>,
}

impl GossipStore {
    pub(crate) fn new(self_id: impl Into<String>) -> Self {
        GossipStore { self_id: self_id.into(), state: GossipState::default(), sequence: 0, committed: HashMap::new() }
    }

    /// Writes this member's `key`; returns the new sequence number.
    pub(crate) fn set(&mut self, key: &str, value: Any, now_ms: i64) -> i64 {
        self.sequence += 1;
        let entry = GossipKeyValue {
            sequence_number: self.sequence,
            value: Some(value),
            local_timestamp_unix_milliseconds: now_ms,
        };
        self.state.members.entry(self.self_id.clone()).or_default().values.insert(key.to_string(), entry);
        self.sequence
    }

    /// Takes every remote entry with a higher sequence number than the one
    /// held (or that is not held at all), stamped with `now_ms`. Entries about
    /// this member are ignored: only this member writes them.
    pub(crate) fn merge(&mut self, remote: &GossipState, now_ms: i64) -> Vec<GossipUpdate> {
        let mut updates = Vec::new();
        for (member_id, remote_member) in &remote.members {
            if *member_id == self.self_id {
                continue;
            }
            let local = self.state.members.entry(member_id.clone()).or_default();
            for (key, remote_entry) in &remote_member.values {
                let newer =
                    local.values.get(key).is_none_or(|held| remote_entry.sequence_number > held.sequence_number);
                if !newer {
                    continue;
                }
                let mut entry = remote_entry.clone();
                entry.local_timestamp_unix_milliseconds = now_ms;
                updates.push(GossipUpdate {
                    member_id: member_id.clone(),
                    key: key.clone(),
                    value: entry.value.clone().unwrap_or_default(),
                    sequence_number: entry.sequence_number,
                });
                local.values.insert(key.clone(), entry);
            }
            if local.values.is_empty() {
                self.state.members.remove(member_id);
            }
        }
        updates
    }

    /// The entry `member` holds under `key`.
    pub(crate) fn entry(&self, member: &str, key: &str) -> Option<&GossipKeyValue> {
        self.state.members.get(member)?.values.get(key)
    }

    /// Every member's entry for `key`.
    pub(crate) fn entries<'a>(&'a self, key: &'a str) -> impl Iterator<Item = (&'a str, &'a GossipKeyValue)> + 'a {
        self.state.members.iter().filter_map(move |(id, m)| m.values.get(key).map(|e| (id.as_str(), e)))
    }

    /// Ids of the members with any state.
    pub(crate) fn member_ids(&self) -> impl Iterator<Item = &str> {
        self.state.members.keys().map(String::as_str)
    }

    /// When this member last accepted an entry of `member` (its own clock).
    pub(crate) fn newest_timestamp(&self, member: &str) -> Option<i64> {
        self.state.members.get(member)?.values.values().map(|e| e.local_timestamp_unix_milliseconds).max()
    }

    /// What `target` has not acknowledged yet: for up to `max_send` owners
    /// other than `target`, every entry above the owner's watermark for
    /// `target`. Owners with more unacknowledged entries go first (ties in
    /// random order): every member writes its heartbeat each tick, so without
    /// this the heartbeats crowd real changes (a new topology) out of the
    /// `max_send` slots and consensus after a change takes about twice as long.
    pub(crate) fn delta_for(&self, target: &str, max_send: usize, rng: &mut fastrand::Rng) -> Delta {
        let acknowledged = self.committed.get(target);
        let mut candidates: Vec<(&String, &GossipMemberState, i64, usize)> = self
            .state
            .members
            .iter()
            .filter(|(id, _)| id.as_str() != target)
            .filter_map(|(id, member)| {
                let watermark = acknowledged.and_then(|c| c.get(id)).copied().unwrap_or(0);
                let unsent = member.values.values().filter(|e| e.sequence_number > watermark).count();
                (unsent > 0).then_some((id, member, watermark, unsent))
            })
            .collect();
        // Sorted by id first so a seeded rng gives the same order every run.
        candidates.sort_unstable_by(|a, b| a.0.cmp(b.0));
        rng.shuffle(&mut candidates);
        candidates.sort_by_key(|c| std::cmp::Reverse(c.3));
        let mut delta = Delta::default();
        for (owner, member, watermark, _) in candidates.into_iter().take(max_send) {
            let mut newer = GossipMemberState::default();
            let mut highest = watermark;
            for (key, entry) in &member.values {
                if entry.sequence_number > watermark {
                    highest = highest.max(entry.sequence_number);
                    newer.values.insert(key.clone(), entry.clone());
                }
            }
            delta.state.members.insert(owner.clone(), newer);
            delta.pending.push((owner.clone(), highest));
        }
        delta
    }

    /// `target` acknowledged a delta: raise its watermarks to `pending`.
    pub(crate) fn commit(&mut self, target: &str, pending: &[(String, i64)]) {
        let acknowledged = self.committed.entry(target.to_string()).or_default();
        for (owner, seq) in pending {
            let mark = acknowledged.entry(owner.clone()).or_insert(0);
            *mark = (*mark).max(*seq);
        }
    }

    /// The watermark of `owner` for `target`.
    #[cfg(test)]
    pub(crate) fn watermark(&self, target: &str, owner: &str) -> Option<i64> {
        self.committed.get(target)?.get(owner).copied()
    }

    /// Forgets the state of members `keep` rejects (never this member's), and
    /// every watermark for or about them. Returns the forgotten members.
    pub(crate) fn purge(&mut self, keep: impl Fn(&str) -> bool) -> Vec<String> {
        let me = self.self_id.clone();
        let keep = |id: &str| id == me || keep(id);
        let gone: Vec<String> = self.state.members.keys().filter(|id| !keep(id)).cloned().collect();
        for id in &gone {
            self.state.members.remove(id);
        }
        self.committed.retain(|target, _| keep(target));
        for acknowledged in self.committed.values_mut() {
            acknowledged.retain(|owner, _| keep(owner));
        }
        gone
    }

    /// Members whose heartbeat (`heartbeat_key`) is older than
    /// `expiration_ms` on this member's clock, plus members of the topology
    /// (`first_seen`: id -> when this member first saw it there) that sent
    /// none yet although they have been in the topology for longer than that.
    /// A member we never heard from is not expired before it had the time to
    /// start, so slow starters in big clusters are not blocked.
    pub(crate) fn expired_members(
        &self,
        heartbeat_key: &str,
        now_ms: i64,
        expiration_ms: i64,
        first_seen: &HashMap<String, i64>,
    ) -> Vec<String> {
        let mut expired: Vec<String> = self
            .entries(heartbeat_key)
            .filter(|(id, e)| *id != self.self_id && now_ms - e.local_timestamp_unix_milliseconds > expiration_ms)
            .map(|(id, _)| id.to_string())
            .collect();
        for (id, since) in first_seen {
            if *id != self.self_id && self.entry(id, heartbeat_key).is_none() && now_ms - since > expiration_ms {
                expired.push(id.clone());
            }
        }
        expired.sort();
        expired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn any(text: &str) -> Any {
        Any { type_url: "test/Text".into(), value: text.as_bytes().to_vec() }
    }

    fn text(store: &GossipStore, member: &str, key: &str) -> Option<String> {
        let v = store.entry(member, key)?.value.as_ref()?;
        Some(String::from_utf8(v.value.clone()).expect("utf8"))
    }

    /// A remote state where `member` holds `key` = `value` at `seq`.
    fn remote(member: &str, key: &str, value: &str, seq: i64) -> GossipState {
        let mut m = GossipMemberState::default();
        m.values.insert(
            key.into(),
            GossipKeyValue {
                sequence_number: seq,
                value: Some(any(value)),
                local_timestamp_unix_milliseconds: 999_999,
            },
        );
        let mut s = GossipState::default();
        s.members.insert(member.into(), m);
        s
    }

    #[test]
    fn set_bumps_one_sequence_shared_by_all_keys() {
        let mut s = GossipStore::new("me");
        assert_eq!(s.set("a", any("1"), 10), 1);
        assert_eq!(s.set("b", any("2"), 11), 2);
        assert_eq!(s.set("a", any("3"), 12), 3);
        assert_eq!(s.entry("me", "a").map(|e| e.sequence_number), Some(3));
        assert_eq!(text(&s, "me", "a").as_deref(), Some("3"));
        assert_eq!(s.entry("me", "b").map(|e| e.local_timestamp_unix_milliseconds), Some(11));
    }

    #[test]
    fn merge_takes_only_higher_sequence_numbers_and_stamps_local_time() {
        let mut s = GossipStore::new("me");
        let updates = s.merge(&remote("m1", "k", "v5", 5), 100);
        assert_eq!(updates.len(), 1);
        assert_eq!(updates[0].member_id, "m1");
        assert_eq!(updates[0].sequence_number, 5);
        // The sender's timestamp is replaced by ours.
        assert_eq!(s.entry("m1", "k").map(|e| e.local_timestamp_unix_milliseconds), Some(100));

        // Older and equal: ignored, no update, timestamp unchanged.
        assert!(s.merge(&remote("m1", "k", "v3", 3), 200).is_empty());
        assert!(s.merge(&remote("m1", "k", "v5-again", 5), 200).is_empty());
        assert_eq!(text(&s, "m1", "k").as_deref(), Some("v5"));
        assert_eq!(s.entry("m1", "k").map(|e| e.local_timestamp_unix_milliseconds), Some(100));

        // Higher: taken.
        let updates = s.merge(&remote("m1", "k", "v9", 9), 300);
        assert_eq!(updates.len(), 1);
        assert_eq!(text(&s, "m1", "k").as_deref(), Some("v9"));
        assert_eq!(s.entry("m1", "k").map(|e| e.local_timestamp_unix_milliseconds), Some(300));
    }

    #[test]
    fn merge_ignores_entries_about_self() {
        let mut s = GossipStore::new("me");
        s.set("k", any("mine"), 1);
        assert!(s.merge(&remote("me", "k", "forged", 100), 2).is_empty());
        assert_eq!(text(&s, "me", "k").as_deref(), Some("mine"));
    }

    #[test]
    fn delta_excludes_the_target_and_respects_watermarks() {
        let mut rng = fastrand::Rng::with_seed(1);
        let mut s = GossipStore::new("me");
        s.set("k", any("a"), 1);
        s.merge(&remote("t", "k", "t's", 4), 1);
        s.merge(&remote("o", "k", "o's", 7), 1);

        let d = s.delta_for("t", 50, &mut rng);
        let mut owners: Vec<&String> = d.state.members.keys().collect();
        owners.sort();
        assert_eq!(owners, ["me", "o"], "the target's own state is never sent back to it");
        let mut pending = d.pending.clone();
        pending.sort();
        assert_eq!(pending, vec![("me".to_string(), 1), ("o".to_string(), 7)]);

        s.commit("t", &d.pending);
        assert!(s.delta_for("t", 50, &mut rng).is_empty(), "everything acknowledged");

        // A new write is above the watermark and goes alone.
        s.set("k2", any("b"), 2);
        let d = s.delta_for("t", 50, &mut rng);
        assert_eq!(d.pending, vec![("me".to_string(), 2)]);
        let mine = &d.state.members["me"];
        assert_eq!(mine.values.keys().collect::<Vec<_>>(), ["k2"], "only entries above the watermark");
    }

    #[test]
    fn delta_sends_at_most_max_send_member_states() {
        let mut rng = fastrand::Rng::with_seed(2);
        let mut s = GossipStore::new("me");
        for i in 0..10 {
            s.merge(&remote(&format!("m{i}"), "k", "v", 1), 1);
        }
        let mut seen = std::collections::HashSet::new();
        for _ in 0..4 {
            let d = s.delta_for("t", 3, &mut rng);
            assert!(d.state.members.len() <= 3);
            assert_eq!(d.state.members.len(), d.pending.len());
            seen.extend(d.state.members.keys().cloned());
            s.commit("t", &d.pending);
        }
        assert_eq!(seen.len(), 10, "later deltas carry the rest");
        assert!(s.delta_for("t", 3, &mut rng).is_empty());
    }

    #[test]
    fn delta_prefers_owners_with_more_unacknowledged_entries() {
        let mut rng = fastrand::Rng::with_seed(5);
        let mut s = GossipStore::new("me");
        for i in 0..20 {
            s.merge(&remote(&format!("m{i:02}"), "hb", "v", 1), 1);
        }
        // m07 wrote a new heartbeat and a new topology; the others nothing.
        s.merge(&remote("m07", "hb", "v", 2), 2);
        s.merge(&remote("m07", "topology", "new", 3), 2);
        for i in 0..20 {
            let d = s.delta_for("t", 20, &mut rng);
            s.commit("t", &d.pending);
            if i == 0 {
                assert_eq!(d.pending.len(), 20);
            }
        }
        s.merge(&remote("m03", "hb", "v", 5), 3);
        s.merge(&remote("m11", "hb", "v", 5), 3);
        s.merge(&remote("m07", "hb", "v", 6), 3);
        s.merge(&remote("m07", "topology", "newer", 7), 3);
        for _ in 0..5 {
            let d = s.delta_for("t", 1, &mut rng);
            assert_eq!(d.pending, vec![("m07".to_string(), 7)], "two new entries beat one");
        }
    }

    #[test]
    fn watermarks_move_only_on_commit() {
        let mut rng = fastrand::Rng::with_seed(3);
        let mut s = GossipStore::new("me");
        s.set("k", any("a"), 1);
        let first = s.delta_for("t", 50, &mut rng);
        assert!(!first.is_empty());
        // No ack (timeout, rejection): the same entries go again.
        let again = s.delta_for("t", 50, &mut rng);
        assert_eq!(again, first);
        assert_eq!(s.watermark("t", "me"), None);
        // Another target's ack does not count for `t`.
        s.commit("u", &first.pending);
        assert_eq!(s.delta_for("t", 50, &mut rng), first);
        s.commit("t", &first.pending);
        assert_eq!(s.watermark("t", "me"), Some(1));
        // A late ack of an older delta never lowers a watermark.
        s.set("k", any("b"), 2);
        let newer = s.delta_for("t", 50, &mut rng);
        s.commit("t", &newer.pending);
        s.commit("t", &first.pending);
        assert_eq!(s.watermark("t", "me"), Some(2));
    }

    #[test]
    fn purge_forgets_state_and_watermarks_but_never_self() {
        let mut rng = fastrand::Rng::with_seed(4);
        let mut s = GossipStore::new("me");
        s.set("k", any("a"), 1);
        s.merge(&remote("gone", "k", "v", 1), 1);
        s.merge(&remote("stays", "k", "v", 1), 1);
        let d = s.delta_for("stays", 50, &mut rng);
        s.commit("stays", &d.pending);
        let d = s.delta_for("gone", 50, &mut rng);
        s.commit("gone", &d.pending);
        assert_eq!(s.watermark("stays", "gone"), Some(1));

        let removed = s.purge(|id| id == "stays");
        assert_eq!(removed, vec!["gone".to_string()]);
        assert!(s.entry("gone", "k").is_none());
        assert!(s.entry("me", "k").is_some(), "own state is never purged");
        assert_eq!(s.watermark("gone", "me"), None, "watermarks for a purged target are gone");
        assert_eq!(s.watermark("stays", "gone"), None, "watermarks about a purged owner are gone");
        assert_eq!(s.watermark("stays", "me"), Some(1));
    }

    #[test]
    fn expiry_uses_local_ages_and_spares_members_that_had_no_time_to_start() {
        let mut s = GossipStore::new("me");
        s.set("hb", any("mine"), 0);
        s.merge(&remote("old", "hb", "x", 1), 1_000);
        s.merge(&remote("fresh", "hb", "x", 1), 9_000);
        let mut first_seen = HashMap::new();
        first_seen.insert("old".to_string(), 0);
        first_seen.insert("fresh".to_string(), 0);
        first_seen.insert("silent-new".to_string(), 8_000);
        first_seen.insert("silent-long".to_string(), 1_000);
        first_seen.insert("me".to_string(), 0);
        let expired = s.expired_members("hb", 10_000, 5_000, &first_seen);
        assert_eq!(expired, vec!["old".to_string(), "silent-long".to_string()]);
    }
}
