//! Request load for protoactor-rs clusters, shared by the chaos tool
//! (`crates/chaos`) and the cluster demo (`examples/cluster_demo`).
//!
//! [`Load::start`] runs `workers` tasks, each sending one request at a time
//! to the targets of a [`Target`] in turn (round-robin over its indices).
//! Each worker records latencies into its own HDR histogram (1 µs..60 s, 3
//! significant digits) behind its own lock, which only the sampler takes
//! besides it: there is no lock shared by the workers on the request path.
//! A sampler calls [`Stats::take_histogram`] once a second, which merges and
//! resets them, so memory stays constant however long a run is.
//!
//! That is a closed loop: a target that stops answering holds every worker
//! that reaches it, and the load stops with it. [`Load::start_paced`] is the
//! open loop: requests go out at a fixed rate whatever the answers (as a
//! service's callers keep arriving), each timed from when it was due, so
//! what the rest of the targets still serve while one is silent shows.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use protoactor_load::{Load, Target};
//!
//! struct Echo;
//! impl Target for Echo {
//!     fn len(&self) -> usize { 4 }
//!     async fn request(&self, _index: usize) -> Result<(), String> { Ok(()) }
//! }
//!
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! let load = Load::start(Arc::new(Echo), 2, Duration::from_secs(5));
//! while load.stats().answered() < 100 {
//!     tokio::time::sleep(Duration::from_millis(1)).await;
//! }
//! let stats = load.stop().await;
//! assert_eq!(stats.take_histogram().len(), stats.answered());
//! # });
//! ```

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

pub use hdrhistogram::Histogram;

/// Highest latency a histogram tracks (µs): a minute.
pub const MAX_MICROS: u64 = 60_000_000;

/// Error messages kept (the count is kept in full).
pub const ERRORS_KEPT: usize = 8;

/// Failure spans kept (the count is kept in full).
const FAILURES_KEPT: usize = 1_000_000;

/// A histogram of latencies in µs, 1 µs..60 s, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    // The constructor fails only for invalid bounds; these are constants.
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("1 µs .. 60 s at 3 significant digits is a valid histogram")
}

/// Locks `m`; a holder that panicked left the data usable (counts only).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the workers send to: `len()` targets, addressed by index.
pub trait Target: Send + Sync + 'static {
    /// How many targets there are (the workers go round-robin over `0..len()`).
    fn len(&self) -> usize;

    /// True if there is no target (the workers then idle).
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// False while the workers should idle (polled between requests).
    fn active(&self) -> bool {
        true
    }

    /// Sends one request to target `index` and waits for its answer; the
    /// error is what to show for a failed request.
    fn request(&self, index: usize) -> impl Future<Output = Result<(), String>> + Send;
}

/// What the workers measured; shared by the workers and the sampler.
#[derive(Debug)]
pub struct Stats {
    sent: AtomicU64,
    shed: AtomicU64,
    answered: AtomicU64,
    failed: AtomicU64,
    hung: AtomicU64,
    /// One per worker, plus one for [`Stats::record`] from outside them.
    histograms: Vec<Mutex<Histogram<u64>>>,
    errors: Mutex<Vec<String>>,
    /// Failed or hung requests: (started, ended) in ms since `epoch`.
    failures: Mutex<Vec<(u64, u64)>>,
    epoch: Instant,
}

impl Stats {
    fn new(workers: usize) -> Stats {
        Stats {
            sent: AtomicU64::new(0),
            shed: AtomicU64::new(0),
            answered: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            hung: AtomicU64::new(0),
            histograms: (0..=workers).map(|_| Mutex::new(histogram())).collect(),
            errors: Mutex::new(Vec::new()),
            failures: Mutex::new(Vec::new()),
            epoch: Instant::now(),
        }
    }

    /// Requests sent.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Paced requests that were due but not sent, because
    /// [`Pacing::max_in_flight`] were already waiting (not in [`sent`](Self::sent)).
    pub fn shed(&self) -> u64 {
        self.shed.load(Ordering::Relaxed)
    }

    /// Requests answered.
    pub fn answered(&self) -> u64 {
        self.answered.load(Ordering::Relaxed)
    }

    /// Requests answered with an error.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// Requests given up on: no answer within the hang limit.
    pub fn hung(&self) -> u64 {
        self.hung.load(Ordering::Relaxed)
    }

    /// The first [`ERRORS_KEPT`] error messages.
    pub fn errors(&self) -> Vec<String> {
        lock(&self.errors).clone()
    }

    /// Failed and hung requests (the first million): when each started and
    /// ended, in ms since [`epoch`](Self::epoch).
    pub fn failures(&self) -> Vec<(u64, u64)> {
        lock(&self.failures).clone()
    }

    /// Time zero of [`failures`](Self::failures).
    pub fn epoch(&self) -> Instant {
        self.epoch
    }

    /// Takes (and resets) every worker's histogram, merged into one.
    pub fn take_histogram(&self) -> Histogram<u64> {
        let mut merged = histogram();
        for h in &self.histograms {
            let mut h = lock(h);
            // Same bounds everywhere, so adding cannot fail.
            let _ = merged.add(&*h);
            h.reset();
        }
        merged
    }

    /// Records a request made outside the workers (e.g. a one-off
    /// activation): counted and its latency kept like theirs.
    pub fn record(&self, started: Instant, result: Result<(), String>) {
        self.sent.fetch_add(1, Ordering::Relaxed);
        self.outcome(self.histograms.len() - 1, started, Ok(result));
    }

    /// Counts one outcome; `Err(())` is a hung request.
    fn outcome(&self, slot: usize, started: Instant, result: Result<Result<(), String>, ()>) {
        match result {
            Ok(Ok(())) => {
                let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(MAX_MICROS);
                let _ = lock(&self.histograms[slot]).record(micros.clamp(1, MAX_MICROS));
                self.answered.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Err(e)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                self.failure(started);
                let mut errors = lock(&self.errors);
                if errors.len() < ERRORS_KEPT {
                    errors.push(e);
                }
            }
            Err(()) => {
                self.hung.fetch_add(1, Ordering::Relaxed);
                self.failure(started);
            }
        }
    }

    fn failure(&self, started: Instant) {
        let ms = |t: Instant| u64::try_from(t.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX);
        let mut failures = lock(&self.failures);
        if failures.len() < FAILURES_KEPT {
            failures.push((ms(started), ms(Instant::now())));
        }
    }
}

/// An open loop's schedule: see [`Load::start_paced`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pacing {
    /// Requests a second.
    pub rate: u64,
    /// Requests waiting at once beyond which due ones are shed (counted,
    /// not sent), so a silent target cannot grow the load without bound.
    pub max_in_flight: usize,
}

/// Histogram slots of a paced load (its requests run on any thread).
const PACED_SLOTS: usize = 16;

/// How often the pacer sends what fell due.
const PACE_TICK: Duration = Duration::from_millis(1);

/// Running workers.
#[derive(Debug)]
pub struct Load {
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// How long an idle worker waits before it looks again.
const IDLE_POLL: Duration = Duration::from_millis(20);

impl Load {
    /// Starts `workers` tasks on the current tokio runtime. A request
    /// without an answer after `hang` counts as hung (the worker moves on).
    pub fn start<T: Target>(target: Arc<T>, workers: usize, hang: Duration) -> Load {
        let stats = Arc::new(Stats::new(workers));
        let stop = Arc::new(AtomicBool::new(false));
        let next = Arc::new(AtomicUsize::new(0));
        let tasks = (0..workers)
            .map(|worker| {
                let (target, stats, stop, next) = (target.clone(), stats.clone(), stop.clone(), next.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        if !target.active() || target.is_empty() {
                            tokio::time::sleep(IDLE_POLL).await;
                            continue;
                        }
                        let index = next.fetch_add(1, Ordering::Relaxed) % target.len();
                        stats.sent.fetch_add(1, Ordering::Relaxed);
                        let started = Instant::now();
                        let result = tokio::time::timeout(hang, target.request(index)).await.map_err(|_| ());
                        stats.outcome(worker, started, result);
                        // A target that answers without awaiting anything
                        // would otherwise never yield: the worker thread
                        // would stop driving timers and I/O.
                        tokio::task::consume_budget().await;
                    }
                })
            })
            .collect();
        Load { stats, stop, tasks }
    }

    /// Starts an open loop on the current tokio runtime: `pacing.rate`
    /// requests a second to the targets in turn, each in its own task,
    /// whether or not earlier ones were answered. A request's latency counts
    /// from when it was due, so a stalled pacer shows as latency (no
    /// coordinated omission). While the target is inactive nothing is due.
    pub fn start_paced<T: Target>(target: Arc<T>, pacing: Pacing, hang: Duration) -> Load {
        let stats = Arc::new(Stats::new(PACED_SLOTS));
        let stop = Arc::new(AtomicBool::new(false));
        let (stats2, stop2) = (stats.clone(), stop.clone());
        let pacer = tokio::spawn(async move {
            let (stats, stop) = (stats2, stop2);
            let in_flight = Arc::new(AtomicUsize::new(0));
            let mut requests = tokio::task::JoinSet::new();
            let mut tick = tokio::time::interval(PACE_TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut next = 0usize;
            // Due requests count from `since`, reset whenever the target idles.
            let mut since: Option<(Instant, u64)> = None;
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                while requests.try_join_next().is_some() {}
                if !target.active() || target.is_empty() {
                    since = None;
                    continue;
                }
                let (start, issued) = since.get_or_insert((Instant::now(), 0));
                let elapsed = start.elapsed();
                let due = (elapsed.as_micros() as u64).saturating_mul(pacing.rate) / 1_000_000;
                while *issued < due {
                    // When this one was due, for its latency.
                    let due_at = *start + Duration::from_micros(*issued * 1_000_000 / pacing.rate.max(1));
                    *issued += 1;
                    if in_flight.load(Ordering::Relaxed) >= pacing.max_in_flight {
                        stats.shed.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    let index = next % target.len();
                    next = next.wrapping_add(1);
                    let slot = index % PACED_SLOTS;
                    let (target, stats, in_flight) = (target.clone(), stats.clone(), in_flight.clone());
                    in_flight.fetch_add(1, Ordering::Relaxed);
                    stats.sent.fetch_add(1, Ordering::Relaxed);
                    requests.spawn(async move {
                        let result = tokio::time::timeout(hang, target.request(index)).await.map_err(|_| ());
                        stats.outcome(slot, due_at, result);
                        in_flight.fetch_sub(1, Ordering::Relaxed);
                    });
                }
            }
            // Stopping: what was sent finishes (each within `hang`).
            while requests.join_next().await.is_some() {}
        });
        Load { stats, stop, tasks: vec![pacer] }
    }

    /// What the workers measured so far.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// Stops the workers once their current requests finish; the final counts.
    pub async fn stop(self) -> Arc<Stats> {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            let _ = task.await;
        }
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Target 0 answers, 1 fails, 2 never answers.
    struct Mixed;

    impl Target for Mixed {
        fn len(&self) -> usize {
            3
        }
        async fn request(&self, index: usize) -> Result<(), String> {
            match index {
                0 => Ok(()),
                1 => Err(format!("target {index} refused")),
                _ => std::future::pending().await,
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_request_is_answered_failed_or_hung_and_only_answers_have_latencies() {
        let load = Load::start(Arc::new(Mixed), 3, Duration::from_millis(50));
        let deadline = Instant::now() + Duration::from_secs(30);
        while load.stats().hung() < 3 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let stats = load.stop().await;
        assert!(stats.hung() >= 3, "the never-answering target counts as hung");
        assert!(stats.failed() >= 1);
        assert_eq!(stats.sent(), stats.answered() + stats.failed() + stats.hung());
        assert_eq!(stats.take_histogram().len(), stats.answered());
        assert_eq!(stats.failures().len() as u64, stats.failed() + stats.hung());
        assert_eq!(stats.errors()[0], "target 1 refused");
    }

    /// Answers at once, never awaiting anything.
    struct AnswersAtOnce;

    impl Target for AnswersAtOnce {
        fn len(&self) -> usize {
            4
        }
        async fn request(&self, _index: usize) -> Result<(), String> {
            Ok(())
        }
    }

    /// Workers on a target that never awaits still let the runtime's
    /// timers fire (they once spun without yielding: a sleep next to them
    /// never woke). Run on its own thread so a regression fails, not hangs.
    #[test]
    fn workers_on_a_target_that_never_awaits_leave_timers_running() {
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build();
            let answered = runtime.expect("runtime").block_on(async {
                let load = Load::start(Arc::new(AnswersAtOnce), 2, Duration::from_secs(5));
                tokio::time::sleep(Duration::from_millis(50)).await;
                load.stop().await.answered()
            });
            let _ = done.send(answered);
        });
        let answered = finished.recv_timeout(Duration::from_secs(60)).expect("a timer beside the workers fired");
        assert!(answered > 0);
    }

    /// Answers every target but the last, which never answers.
    struct OneSilent;

    impl Target for OneSilent {
        fn len(&self) -> usize {
            3
        }
        async fn request(&self, index: usize) -> Result<(), String> {
            if index == 2 {
                std::future::pending::<()>().await;
            }
            tokio::task::yield_now().await;
            Ok(())
        }
    }

    /// The closed loop's workers all end up waiting on a silent target; the
    /// paced loop keeps the others answered.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_paced_load_keeps_the_answering_targets_served_beside_a_silent_one() {
        let closed = Load::start(Arc::new(OneSilent), 4, Duration::from_secs(60));
        let paced = Load::start_paced(
            Arc::new(OneSilent),
            Pacing { rate: 2_000, max_in_flight: 10_000 },
            Duration::from_secs(60),
        );
        // Let both settle, then count what each answers in a second window.
        let deadline = Instant::now() + Duration::from_secs(30);
        while paced.stats().answered() < 200 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let (c0, p0) = (closed.stats().answered(), paced.stats().answered());
        let window = Instant::now();
        while paced.stats().answered() < p0 + 500 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(paced.stats().answered() >= p0 + 500, "the paced load went on answering");
        assert_eq!(closed.stats().answered(), c0, "every closed-loop worker waits on the silent target");
        assert!(window.elapsed() < Duration::from_secs(30));
        let paced = paced.stats().clone();
        assert!(paced.sent() >= paced.answered() + 100, "requests to the silent target are still waiting");
        assert_eq!(paced.shed(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_paced_load_sheds_past_its_in_flight_cap_and_counts_it() {
        struct Silent;
        impl Target for Silent {
            fn len(&self) -> usize {
                1
            }
            async fn request(&self, _index: usize) -> Result<(), String> {
                std::future::pending().await
            }
        }
        let load =
            Load::start_paced(Arc::new(Silent), Pacing { rate: 5_000, max_in_flight: 50 }, Duration::from_millis(200));
        let deadline = Instant::now() + Duration::from_secs(30);
        while load.stats().hung() < 50 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let stats = load.stop().await;
        assert!(stats.shed() > 0, "due requests beyond the cap were shed");
        assert!(stats.hung() >= 50);
        assert_eq!(stats.sent(), stats.answered() + stats.failed() + stats.hung(), "stop waits for what was sent");
    }

    #[test]
    fn take_histogram_merges_every_slot_and_resets_them() {
        let stats = Stats::new(2);
        stats.record(Instant::now(), Ok(()));
        stats.record(Instant::now(), Err("no".into()));
        let _ = lock(&stats.histograms[0]).record(7);
        assert_eq!(stats.take_histogram().len(), 2);
        assert_eq!(stats.take_histogram().len(), 0, "a second take finds them reset");
        assert_eq!((stats.sent(), stats.answered(), stats.failed()), (2, 1, 1));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn inactive_targets_get_no_requests() {
        struct Off;
        impl Target for Off {
            fn len(&self) -> usize {
                1
            }
            fn active(&self) -> bool {
                false
            }
            async fn request(&self, _index: usize) -> Result<(), String> {
                Ok(())
            }
        }
        let load = Load::start(Arc::new(Off), 2, Duration::from_secs(1));
        tokio::time::sleep(IDLE_POLL * 3).await;
        assert_eq!(load.stop().await.sent(), 0);
    }
}
