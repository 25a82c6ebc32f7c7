//! The load: workers each sending one request at a time, round-robin over
//! the grains (or the baseline's plain actors). Each worker keeps its own
//! HDR histogram behind its own (uncontended) lock; the sampler merges and
//! resets them once a second, so memory stays constant however long a run is.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use protoactor_actor::Pid;
use protoactor_cluster::Cluster;

use crate::backend::KIND;
use crate::proto::{CountReply, Increment};

/// Highest latency a histogram tracks (µs): a minute.
const MAX_MICROS: u64 = 60_000_000;

/// A histogram of latencies in µs, 3 significant digits.
pub(crate) fn histogram() -> Histogram<u64> {
    // The constructor fails only for invalid bounds; these are constants.
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("1 µs .. 60 s at 3 significant digits is a valid histogram")
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

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

/// Counts, shared by all workers (atomics: no lock on the request path).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) sent: AtomicU64,
    pub(crate) answered: AtomicU64,
    /// Answered with an error (after the cluster's retries).
    pub(crate) failed: AtomicU64,
    /// No answer at all within the hang limit: the tool gave up waiting.
    pub(crate) hung: AtomicU64,
}

/// State shared by the workers and the sampler.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) counters: Counters,
    pub(crate) histograms: Vec<Mutex<Histogram<u64>>>,
    /// Acknowledged increments per grain index.
    pub(crate) acknowledged: Vec<AtomicU64>,
    pub(crate) mode: AtomicU8,
    /// The first few error messages.
    pub(crate) errors: Mutex<Vec<String>>,
    /// Every failed or hung request: (started, ended) in ms since `epoch`.
    pub(crate) failures: Mutex<Vec<(u64, u64)>>,
    /// Time zero of the failure records.
    pub(crate) epoch: Instant,
}

impl Shared {
    pub(crate) fn mode(&self) -> Mode {
        match self.mode.load(Ordering::Relaxed) {
            0 => Mode::Plain,
            1 => Mode::Cluster,
            _ => Mode::Idle,
        }
    }

    pub(crate) fn set_mode(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::Relaxed);
    }

    /// Keeps when a failed request started and ended (the first million).
    fn record_failure(&self, started: Instant) {
        let ms = |t: Instant| u64::try_from(t.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX);
        let mut failures = lock(&self.failures);
        if failures.len() < 1_000_000 {
            failures.push((ms(started), ms(Instant::now())));
        }
    }

    /// Takes (and resets) every worker's histogram, merged into one.
    pub(crate) fn take_histogram(&self) -> Histogram<u64> {
        let mut merged = histogram();
        for h in &self.histograms {
            let mut h = lock(h);
            let _ = merged.add(&*h);
            h.reset();
        }
        merged
    }
}

/// Running workers.
#[derive(Debug)]
pub(crate) struct Load {
    pub(crate) shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// What the workers address.
#[derive(Debug)]
pub(crate) struct Targets {
    /// Grain identities.
    pub(crate) ids: Vec<String>,
    /// Plain actor pids, one per grain index (filled before the baseline).
    pub(crate) plain: Vec<Pid>,
}

/// Errors kept to show.
const ERRORS_KEPT: usize = 8;

impl Load {
    pub(crate) fn start(cluster: &Cluster, targets: Arc<Targets>, workers: usize, hang: Duration) -> Load {
        let shared = Arc::new(Shared {
            counters: Counters::default(),
            histograms: (0..workers).map(|_| Mutex::new(histogram())).collect(),
            acknowledged: (0..targets.ids.len()).map(|_| AtomicU64::new(0)).collect(),
            mode: AtomicU8::new(Mode::Idle as u8),
            errors: Mutex::new(Vec::new()),
            failures: Mutex::new(Vec::new()),
            epoch: Instant::now(),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let next = Arc::new(AtomicUsize::new(0));
        let tasks = (0..workers)
            .map(|worker| {
                let (cluster, targets, shared, stop, next) =
                    (cluster.clone(), targets.clone(), shared.clone(), stop.clone(), next.clone());
                tokio::spawn(async move {
                    let root = cluster.system().root();
                    while !stop.load(Ordering::Relaxed) {
                        let mode = shared.mode();
                        if mode == Mode::Idle {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            continue;
                        }
                        let grain = next.fetch_add(1, Ordering::Relaxed) % targets.ids.len();
                        shared.counters.sent.fetch_add(1, Ordering::Relaxed);
                        let started = Instant::now();
                        let result = match mode {
                            Mode::Plain => {
                                tokio::time::timeout(hang, async {
                                    root.request_future::<CountReply, _>(&targets.plain[grain], Increment::next(), hang)
                                        .await
                                        .map_err(|e| e.to_string())
                                })
                                .await
                            }
                            _ => {
                                tokio::time::timeout(hang, async {
                                    cluster
                                        .request::<CountReply, _>(&targets.ids[grain], KIND, Increment::next())
                                        .await
                                        .map_err(|e| e.to_string())
                                })
                                .await
                            }
                        };
                        match result {
                            Ok(Ok(_)) => {
                                let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(MAX_MICROS);
                                let _ = lock(&shared.histograms[worker]).record(micros.clamp(1, MAX_MICROS));
                                shared.counters.answered.fetch_add(1, Ordering::Relaxed);
                                if mode == Mode::Cluster {
                                    shared.acknowledged[grain].fetch_add(1, Ordering::Relaxed);
                                }
                            }
                            Ok(Err(e)) => {
                                shared.counters.failed.fetch_add(1, Ordering::Relaxed);
                                shared.record_failure(started);
                                let mut errors = lock(&shared.errors);
                                if errors.len() < ERRORS_KEPT {
                                    errors.push(e);
                                }
                            }
                            Err(_) => {
                                shared.counters.hung.fetch_add(1, Ordering::Relaxed);
                                shared.record_failure(started);
                            }
                        }
                    }
                })
            })
            .collect();
        Load { shared, stop, tasks }
    }

    /// Stops the workers once their current requests finish.
    pub(crate) async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            let _ = task.await;
        }
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
                            shared.acknowledged[i].fetch_add(1, Ordering::Relaxed);
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
