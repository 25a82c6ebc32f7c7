//! The load: the workers of `protoactor-load` (shared with the chaos tool:
//! per-worker HDR latency histograms merged once a second, so memory stays
//! constant, and no lock shared by the workers) sending `Increment` to the
//! counter grains round-robin, and what their answers tell: where each grain
//! lives, how the grains of a killed member came back.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use protoactor_cluster::Cluster;
use protoactor_load::{Target, lock};

use crate::{CountReply, Increment, KIND};

/// A grain of the killed member that answered again from a live one.
#[derive(Clone)]
pub(crate) struct Moved {
    /// The member it answers from now.
    pub(crate) to: String,
    /// Its count started again (it is a new activation).
    pub(crate) restarted: bool,
    /// Time from the kill to its first answer from `to`.
    pub(crate) after: Duration,
}

/// What one grain's answers told. Each grain has its own lock: two workers
/// meet on it only when they ask the same grain at once.
#[derive(Default)]
struct Slot {
    /// The member it answered from last (`None`: not answered yet).
    member: Option<String>,
    /// Its count then.
    count: u64,
    /// A grain of the killed member not back yet: its count before the kill.
    pending: Option<u64>,
    /// A grain of the killed member that answered again elsewhere.
    moved: Option<Moved>,
}

/// The killed member and when.
struct Victim {
    address: String,
    killed_at: Instant,
}

/// The load's grains, as a `protoactor_load::Target`.
pub(crate) struct Grains {
    cluster: Cluster,
    pub(crate) ids: Vec<String>,
    slots: Vec<Mutex<Slot>>,
    acknowledged: Vec<AtomicU64>,
    /// Grains that answered at least once.
    active: AtomicUsize,
    all_active_at: OnceLock<Instant>,
    victim: OnceLock<Victim>,
    /// Grains of the killed member, and those of them not back yet.
    victim_grains: AtomicUsize,
    pending: AtomicUsize,
}

impl Target for Grains {
    fn len(&self) -> usize {
        self.ids.len()
    }

    async fn request(&self, grain: usize) -> Result<(), String> {
        let identity = &self.ids[grain];
        let reply = self
            .cluster
            .request::<CountReply, _>(identity, KIND, Increment::next())
            .await
            .map_err(|e| format!("{identity}: {e}"))?;
        self.acknowledged[grain].fetch_add(1, Ordering::Relaxed);
        self.note(grain, reply);
        Ok(())
    }
}

impl Grains {
    /// The grains named `ids`, asked through `cluster`.
    pub(crate) fn new(cluster: Cluster, ids: Vec<String>) -> Self {
        Grains {
            cluster,
            slots: ids.iter().map(|_| Mutex::new(Slot::default())).collect(),
            acknowledged: ids.iter().map(|_| AtomicU64::new(0)).collect(),
            ids,
            active: AtomicUsize::new(0),
            all_active_at: OnceLock::new(),
            victim: OnceLock::new(),
            victim_grains: AtomicUsize::new(0),
            pending: AtomicUsize::new(0),
        }
    }

    /// Keeps where grain `grain` answered from.
    fn note(&self, grain: usize, reply: CountReply) {
        let mut slot = lock(&self.slots[grain]);
        if let Some(victim) = self.victim.get() {
            if reply.member != victim.address {
                if let Some(before) = slot.pending.take() {
                    slot.moved = Some(Moved {
                        to: reply.member.clone(),
                        restarted: reply.count < before,
                        after: victim.killed_at.elapsed(),
                    });
                    self.pending.fetch_sub(1, Ordering::Relaxed);
                }
            } else if slot.pending.is_none() && slot.moved.is_none() {
                // Answered by the victim just before the kill.
                self.track(&mut slot, reply.count);
            }
        }
        if slot.member.is_none() && self.active.fetch_add(1, Ordering::Relaxed) + 1 == self.ids.len() {
            let _ = self.all_active_at.set(Instant::now());
        }
        slot.member = Some(reply.member);
        slot.count = reply.count;
    }

    fn track(&self, slot: &mut Slot, count: u64) {
        slot.pending = Some(count);
        self.victim_grains.fetch_add(1, Ordering::Relaxed);
        self.pending.fetch_add(1, Ordering::Relaxed);
    }

    /// When the last grain answered for the first time.
    pub(crate) fn all_active_at(&self) -> Option<Instant> {
        self.all_active_at.get().copied()
    }

    /// Grains per member address, by where they answered from last.
    pub(crate) fn per_member(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for slot in &self.slots {
            if let Some(member) = &lock(slot).member {
                *counts.entry(member.clone()).or_default() += 1;
            }
        }
        counts
    }

    /// Starts following the grains that last answered from `victim` (once
    /// per run); returns how many there are and the first few identities.
    pub(crate) fn start_recovery(&self, victim: &str, killed_at: Instant) -> (usize, Vec<String>) {
        let _ = self.victim.set(Victim { address: victim.to_string(), killed_at });
        let mut sample = Vec::new();
        for (i, slot) in self.slots.iter().enumerate() {
            let mut slot = lock(slot);
            if slot.member.as_deref() == Some(victim) && slot.pending.is_none() && slot.moved.is_none() {
                let count = slot.count;
                self.track(&mut slot, count);
                if sample.len() < 4 {
                    sample.push(self.ids[i].clone());
                }
            }
        }
        (self.victim_grains.load(Ordering::Relaxed), sample)
    }

    /// Grains of the killed member back so far, and of how many.
    pub(crate) fn back(&self) -> (usize, usize) {
        let of = self.victim_grains.load(Ordering::Relaxed);
        (of - self.pending.load(Ordering::Relaxed).min(of), of)
    }

    /// Grains of the killed member not answered again yet.
    pub(crate) fn pending(&self) -> usize {
        self.pending.load(Ordering::Relaxed)
    }

    /// The grains of the killed member that answered again elsewhere.
    pub(crate) fn moved(&self) -> Vec<Moved> {
        self.slots.iter().filter_map(|slot| lock(slot).moved.clone()).collect()
    }

    /// When the last of them answered again (once all did).
    pub(crate) fn recovered_after(&self) -> Option<Duration> {
        if self.victim.get().is_none() || self.pending() > 0 {
            return None;
        }
        Some(self.moved().iter().map(|m| m.after).max().unwrap_or_default())
    }

    /// Acknowledged increments per grain identity.
    pub(crate) fn acknowledged(&self) -> HashMap<String, u64> {
        self.ids.iter().zip(&self.acknowledged).map(|(id, n)| (id.clone(), n.load(Ordering::Relaxed))).collect()
    }
}
