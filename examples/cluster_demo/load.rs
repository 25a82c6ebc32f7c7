//! The load: workers sending `Increment` to the counter grains round-robin,
//! and what their answers tell (latencies, failures, where each grain
//! lives, how the grains of a killed member came back).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use protoactor_cluster::Cluster;

use crate::{CountReply, Increment, KIND};

/// Errors kept to show (the count is kept in full).
const ERRORS_KEPT: usize = 5;

/// Where a grain answered from last, and its count then.
pub(crate) struct Placement {
    pub(crate) member: String,
    pub(crate) count: u64,
}

/// A grain of the killed member that answered again from a live one.
pub(crate) struct Moved {
    /// The member it answers from now.
    pub(crate) to: String,
    /// Its count started again (it is a new activation).
    pub(crate) restarted: bool,
    /// Time from the kill to its first answer from `to`.
    pub(crate) after: Duration,
}

/// Follows the grains of a killed member until each answered from elsewhere.
pub(crate) struct Recovery {
    pub(crate) victim: String,
    pub(crate) killed_at: Instant,
    /// Grain index -> its count before the kill, for those not back yet.
    pending: HashMap<usize, u64>,
    pub(crate) moved: Vec<Moved>,
}

impl Recovery {
    /// Grains of the killed member.
    pub(crate) fn grains(&self) -> usize {
        self.pending.len() + self.moved.len()
    }

    /// Grains not answered again yet.
    pub(crate) fn pending(&self) -> usize {
        self.pending.len()
    }

    /// When the last of them answered again (once all did).
    pub(crate) fn recovered_after(&self) -> Option<Duration> {
        if !self.pending.is_empty() {
            return None;
        }
        Some(self.moved.iter().map(|m| m.after).max().unwrap_or_default())
    }
}

/// Everything the workers measured.
pub(crate) struct Stats {
    pub(crate) ok: u64,
    pub(crate) failed: u64,
    /// Latency of every answered request, in microseconds.
    pub(crate) latencies: Vec<u32>,
    window: Vec<u32>,
    window_done: u64,
    /// The first few failures, with their grain.
    pub(crate) errors: Vec<String>,
    /// By grain index.
    pub(crate) placement: Vec<Option<Placement>>,
    active: usize,
    /// When the last of the load's grains answered for the first time.
    pub(crate) all_active_at: Option<Instant>,
    pub(crate) recovery: Option<Recovery>,
    /// Acknowledged increments per grain identity.
    pub(crate) acknowledged: HashMap<String, u64>,
}

/// What happened in one window (since the previous [`Stats::take_window`]).
pub(crate) struct Window {
    pub(crate) done: u64,
    pub(crate) p99: Option<u32>,
}

impl Stats {
    pub(crate) fn new(grains: usize) -> Self {
        Stats {
            ok: 0,
            failed: 0,
            latencies: Vec::new(),
            window: Vec::new(),
            window_done: 0,
            errors: Vec::new(),
            placement: (0..grains).map(|_| None).collect(),
            active: 0,
            all_active_at: None,
            recovery: None,
            acknowledged: HashMap::new(),
        }
    }

    /// Records one request to `identity` (grain index `grain` if it is one
    /// of the load's) and its outcome.
    pub(crate) fn record(
        &mut self,
        identity: &str,
        grain: Option<usize>,
        result: &Result<CountReply, protoactor_cluster::Error>,
        latency: Duration,
    ) {
        self.window_done += 1;
        let reply = match result {
            Ok(reply) => reply,
            Err(e) => {
                self.failed += 1;
                if self.errors.len() < ERRORS_KEPT {
                    self.errors.push(format!("{identity}: {e}"));
                }
                return;
            }
        };
        self.ok += 1;
        *self.acknowledged.entry(identity.to_string()).or_default() += 1;
        let micros = u32::try_from(latency.as_micros()).unwrap_or(u32::MAX);
        self.latencies.push(micros);
        self.window.push(micros);
        let Some(grain) = grain else { return };
        if let Some(recovery) = &mut self.recovery
            && reply.member != recovery.victim
            && let Some(before) = recovery.pending.remove(&grain)
        {
            recovery.moved.push(Moved {
                to: reply.member.clone(),
                restarted: reply.count < before,
                after: recovery.killed_at.elapsed(),
            });
        }
        let grains = self.placement.len();
        if let Some(slot) = self.placement.get_mut(grain) {
            if slot.is_none() {
                self.active += 1;
                if self.active == grains {
                    self.all_active_at = Some(Instant::now());
                }
            }
            *slot = Some(Placement { member: reply.member.clone(), count: reply.count });
        }
    }

    /// Requests finished since the last call, and their p99 latency.
    pub(crate) fn take_window(&mut self) -> Window {
        let mut window = std::mem::take(&mut self.window);
        window.sort_unstable();
        let done = std::mem::take(&mut self.window_done);
        Window { done, p99: percentile(&window, 0.99) }
    }

    /// Grains per member address, by where they answered from last.
    pub(crate) fn per_member(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for p in self.placement.iter().flatten() {
            *counts.entry(p.member.clone()).or_default() += 1;
        }
        counts
    }

    /// Starts following the grains that last answered from `victim`;
    /// returns how many there are.
    pub(crate) fn start_recovery(&mut self, victim: &str, killed_at: Instant) -> usize {
        let pending: HashMap<usize, u64> = self
            .placement
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.as_ref().filter(|p| p.member == victim).map(|p| (i, p.count)))
            .collect();
        let n = pending.len();
        self.recovery = Some(Recovery { victim: victim.to_string(), killed_at, pending, moved: Vec::new() });
        n
    }
}

/// The `q` quantile of `sorted` (ascending), `None` if empty.
pub(crate) fn percentile(sorted: &[u32], q: f64) -> Option<u32> {
    let last = sorted.len().checked_sub(1)?;
    // Truncation is the point: an index into the sorted samples.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
    let i = ((sorted.len() as f64) * q) as usize;
    sorted.get(i.min(last)).copied()
}

/// Locks the stats; a worker that panicked holding the lock left them usable.
pub(crate) fn lock(stats: &Mutex<Stats>) -> MutexGuard<'_, Stats> {
    stats.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Running workers.
pub(crate) struct Load {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// `workers` tasks, each sending one request at a time to the grains
    /// named `ids`, in turn.
    pub(crate) fn start(cluster: &Cluster, ids: Arc<Vec<String>>, workers: usize, stats: Arc<Mutex<Stats>>) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let next = Arc::new(AtomicUsize::new(0));
        let tasks = (0..workers)
            .map(|_| {
                let (cluster, ids, stats, stop, next) =
                    (cluster.clone(), ids.clone(), stats.clone(), stop.clone(), next.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let grain = next.fetch_add(1, Ordering::Relaxed) % ids.len();
                        let identity = &ids[grain];
                        let started = Instant::now();
                        let result = cluster.request::<CountReply, _>(identity, KIND, Increment::next()).await;
                        lock(&stats).record(identity, Some(grain), &result, started.elapsed());
                    }
                })
            })
            .collect();
        Load { stop, tasks }
    }

    /// Stops the workers once their current requests finish.
    pub(crate) async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}
