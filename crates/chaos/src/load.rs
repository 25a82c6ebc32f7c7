//! The load: the shared workers of `protoactor-load` (per-worker HDR
//! histograms merged once a second, no lock shared on the request path),
//! sending to the grains or, in the baseline, to the plain actors.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use protoactor_actor::Pid;
use protoactor_cluster::Cluster;
use protoactor_load::Stats;
pub(crate) use protoactor_load::{histogram, lock};

use crate::backend::KIND;
use crate::proto::{CountReply, Increment};

/// Requests an open loop (`--rate`) lets wait at once.
const MAX_IN_FLIGHT: usize = 100_000;

/// What the workers send to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Mode {
    /// Plain remote requests to actors pre-spawned on the members.
    Plain = 0,
    /// Cluster requests to grains.
    Cluster = 1,
    /// Nothing (workers idle).
    Idle = 2,
}

/// What the workers address.
#[derive(Debug)]
pub(crate) struct Targets {
    /// Grain identities.
    pub(crate) ids: Vec<String>,
    /// Plain actor pids, one per grain index (filled before the baseline).
    pub(crate) plain: Vec<Pid>,
}

/// The grains and plain actors as a `protoactor_load::Target`.
#[derive(Debug)]
pub(crate) struct Counters {
    cluster: Cluster,
    targets: Arc<Targets>,
    mode: AtomicU8,
    hang: Duration,
    /// Acknowledged increments per grain index.
    pub(crate) acknowledged: Vec<AtomicU64>,
}

impl Counters {
    fn mode(&self) -> Mode {
        match self.mode.load(Ordering::Relaxed) {
            0 => Mode::Plain,
            1 => Mode::Cluster,
            _ => Mode::Idle,
        }
    }
}

impl protoactor_load::Target for Counters {
    fn len(&self) -> usize {
        self.targets.ids.len()
    }

    fn active(&self) -> bool {
        self.mode() != Mode::Idle
    }

    async fn request(&self, grain: usize) -> Result<(), String> {
        match self.mode() {
            Mode::Plain => {
                let root = self.cluster.system().root();
                root.request_future::<CountReply, _>(&self.targets.plain[grain], Increment::next(), self.hang)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            _ => {
                self.cluster
                    .request::<CountReply, _>(&self.targets.ids[grain], KIND, Increment::next())
                    .await
                    .map_err(|e| e.to_string())?;
                self.acknowledged[grain].fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }
}

/// State shared by the workers and the sampler.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) counters: Arc<Counters>,
    pub(crate) stats: Arc<Stats>,
}

impl Shared {
    pub(crate) fn mode(&self) -> Mode {
        self.counters.mode()
    }

    pub(crate) fn set_mode(&self, mode: Mode) {
        self.counters.mode.store(mode as u8, Ordering::Relaxed);
    }

    /// Takes (and resets) every worker's histogram, merged into one.
    pub(crate) fn take_histogram(&self) -> Histogram<u64> {
        self.stats.take_histogram()
    }
}

/// Running workers.
#[derive(Debug)]
pub(crate) struct Load {
    pub(crate) shared: Arc<Shared>,
    load: protoactor_load::Load,
}

impl Load {
    /// `workers` closed-loop workers, or with `rate` an open loop.
    pub(crate) fn start(
        cluster: &Cluster,
        targets: Arc<Targets>,
        workers: usize,
        rate: Option<u64>,
        hang: Duration,
    ) -> Load {
        let counters = Arc::new(Counters {
            cluster: cluster.clone(),
            acknowledged: (0..targets.ids.len()).map(|_| AtomicU64::new(0)).collect(),
            targets,
            mode: AtomicU8::new(Mode::Idle as u8),
            hang,
        });
        let load = match rate {
            Some(rate) => protoactor_load::Load::start_paced(
                counters.clone(),
                protoactor_load::Pacing { rate, max_in_flight: MAX_IN_FLIGHT },
                hang,
            ),
            None => protoactor_load::Load::start(counters.clone(), workers, hang),
        };
        Load { shared: Arc::new(Shared { counters, stats: load.stats().clone() }), load }
    }

    /// Stops the workers once their current requests finish.
    pub(crate) async fn stop(self) {
        self.load.stop().await;
    }
}

/// Sends one request to every grain (`workers` at a time), so the measured
/// phases start with every grain activated. Returns the failures.
pub(crate) async fn activate_all(cluster: &Cluster, targets: Arc<Targets>, shared: Arc<Shared>, workers: usize) -> u64 {
    let next = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let (cluster, targets, shared, next, failed) =
                (cluster.clone(), targets.clone(), shared.clone(), next.clone(), failed.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(id) = targets.ids.get(i) else { break };
                    match cluster.request::<CountReply, _>(id, KIND, Increment::next()).await {
                        Ok(_) => {
                            shared.counters.acknowledged[i].fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        let _ = task.await;
    }
    failed.load(Ordering::Relaxed)
}
