//! The gossip loop: once this member is in the topology, every interval it
//! blocks expired and departed members, writes its heartbeat and sends
//! deltas to a few members. Exchanges run concurrently, each bounded by the
//! request timeout, so a dead or slow peer never holds up a tick.

use std::collections::{HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::task::{Id, JoinSet};
use tokio::time::MissedTickBehavior;

use super::gossiper::Shared;
use super::keys;
use crate::proto::{ActorStatistics, MemberHeartbeat};

/// What the loop remembers between ticks.
struct LoopState {
    exchanges: JoinSet<String>,
    /// Targets with an exchange in flight (by task, to clear them even if one panics).
    busy: HashMap<Id, String>,
    busy_targets: HashSet<String>,
    /// When each topology member was first seen here (own clock, ms).
    first_seen: HashMap<String, i64>,
    last_tick: Option<i64>,
    rng: fastrand::Rng,
}

pub(super) async fn run(shared: Arc<Shared>) {
    let me = shared.me.clone();
    let mut topology = shared.member_list.subscribe();
    // Gossip starts once this member joined; clients never get here.
    if topology.wait_for(|t| t.member(&me).is_some()).await.is_err() {
        return;
    }
    topology.mark_unchanged();
    shared.joined.store(true, Ordering::Release);
    shared.publish_topology();
    tracing::debug!(member = %me, "gossip loop started");
    let mut ticker = tokio::time::interval(shared.settings.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut state = LoopState {
        exchanges: JoinSet::new(),
        busy: HashMap::new(),
        busy_targets: HashSet::new(),
        first_seen: HashMap::new(),
        last_tick: None,
        rng: fastrand::Rng::new(),
    };
    loop {
        tokio::select! {
            changed = topology.changed() => {
                if changed.is_err() {
                    return;
                }
                topology.mark_unchanged();
                shared.publish_topology();
            }
            _ = ticker.tick() => {
                if shared.system.is_shutting_down() {
                    return;
                }
                // A bug in one tick must not end gossip for good.
                if std::panic::catch_unwind(AssertUnwindSafe(|| state.tick(&shared))).is_err() {
                    tracing::error!("a gossip tick panicked; continuing with the next one");
                }
            }
            () = shared.urgent.notified() => {
                if std::panic::catch_unwind(AssertUnwindSafe(|| state.send_to_all(&shared))).is_err() {
                    tracing::error!("an urgent gossip send panicked; continuing");
                }
            }
            Some(done) = state.exchanges.join_next_with_id(), if !state.exchanges.is_empty() => {
                let id = match done {
                    Ok((id, _)) => id,
                    Err(e) => {
                        tracing::warn!(error = %e, "a gossip exchange failed");
                        e.id()
                    }
                };
                if let Some(target) = state.busy.remove(&id) {
                    state.busy_targets.remove(&target);
                }
            }
        }
    }
}

impl LoopState {
    fn tick(&mut self, shared: &Arc<Shared>) {
        let now = shared.now_ms();
        let list = &shared.member_list;
        let topology = list.topology();
        if topology.member(&shared.me).is_none() {
            tracing::debug!("not in the topology (leaving or blocked); not gossiping");
            return;
        }
        self.first_seen.retain(|id, _| topology.member(id).is_some());
        for m in &topology.members {
            self.first_seen.entry(m.id.clone()).or_insert(now);
        }
        let interval_ms = i64::try_from(shared.settings.interval.as_millis()).unwrap_or(i64::MAX);
        // After a stall here (a pause of this process), every heartbeat looks
        // old; give the gossip that queued meanwhile one tick to land first.
        let stalled = self.last_tick.is_some_and(|last| now - last > 2 * interval_ms);
        self.last_tick = Some(now);

        if let Some(expiration) = shared.settings.heartbeat_expiration {
            if stalled {
                tracing::debug!("this member was stalled; heartbeat expiry skipped this tick");
            } else {
                let expired = shared.expired_members(now, expiration, &self.first_seen);
                if !expired.is_empty() {
                    tracing::warn!(members = ?expired, ?expiration, "blocking members whose gossip heartbeat expired");
                    list.block(expired);
                }
            }
        }

        let left = shared.left_members();
        if !left.is_empty() {
            tracing::info!(members = ?left, "blocking members that left gracefully");
            list.block(left);
        }

        let heartbeat =
            MemberHeartbeat { actor_statistics: Some(ActorStatistics { actor_count: (shared.statistics)() }) };
        match prost_types::Any::from_msg(&heartbeat) {
            Ok(any) => shared.set_any(keys::HEARTBEAT, any),
            Err(e) => tracing::warn!(error = %e, "could not encode the heartbeat"),
        }

        let topology = list.topology();
        shared.purge(&topology, now);
        self.send(shared, &topology);
    }

    /// Sends what is new to every other member now, except those this member
    /// suspects, even where an exchange is in flight (news of a failure must
    /// not wait for a slow exchange or the next tick).
    fn send_to_all(&mut self, shared: &Arc<Shared>) {
        let topology = shared.member_list.topology();
        if topology.member(&shared.me).is_none() {
            return;
        }
        let suspected = shared.votes().remove(&shared.me).unwrap_or_default();
        for member in topology.members.iter().filter(|m| m.id != shared.me && !suspected.contains(&m.id)) {
            let delta = shared.delta_for(&member.id, &mut self.rng);
            if !delta.is_empty() {
                // Not marked busy: the regular exchange with it stays tracked.
                self.exchanges.spawn(shared.clone().exchange(member.clone(), delta));
            }
        }
    }

    /// Starts exchanges with up to `fanout` random other members that have
    /// something new and no exchange in flight.
    fn send(&mut self, shared: &Arc<Shared>, topology: &crate::member_list::Topology) {
        let mut others: Vec<_> = topology.members.iter().filter(|m| m.id != shared.me).collect();
        self.rng.shuffle(&mut others);
        let mut started = 0;
        for member in others {
            if started >= shared.settings.fanout {
                break;
            }
            if self.busy_targets.contains(&member.id) {
                continue;
            }
            let delta = shared.delta_for(&member.id, &mut self.rng);
            if delta.is_empty() {
                continue;
            }
            let handle = self.exchanges.spawn(shared.clone().exchange(member.clone(), delta));
            self.busy.insert(handle.id(), member.id.clone());
            self.busy_targets.insert(member.id.clone());
            started += 1;
        }
    }
}
