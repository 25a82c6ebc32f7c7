//! Fixtures for the churn, failure and process tests: a grain kind that
//! detects concurrent duplicate activations, request loads that record
//! every outcome, and a cluster provider that spans OS processes
//! ([`dir_provider`]).

pub mod dir_provider;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use protoactor_actor::prelude::*;
use protoactor_cluster::{Cluster, ClusterConfig, ClusterProvider, GrainContext, Kind};

use crate::{Ping, Pong, test_lookup};

/// A cluster configuration like [`crate::test_config`] on any provider.
pub fn config_with(provider: impl ClusterProvider, kinds: &[Kind]) -> ClusterConfig {
    crate::config_from(provider, test_lookup(), kinds)
}

/// `n` identities `prefix-0 .. prefix-(n-1)`.
pub fn identities(prefix: &str, n: usize) -> Arc<Vec<String>> {
    Arc::new((0..n).map(|i| format!("{prefix}-{i}")).collect())
}

// ----- single activation -----

#[derive(Debug, Default)]
struct LiveState {
    live: HashMap<String, i64>,
    activations: u64,
    violations: Vec<String>,
}

/// Counts live activations per identity across the whole process (every
/// member of a test shares one) and records each moment an identity had
/// more than one.
#[derive(Debug, Default)]
pub struct LiveTracker {
    state: Mutex<LiveState>,
}

impl LiveTracker {
    fn started(&self, key: &str, address: &str) {
        let mut state = self.state.lock();
        state.activations += 1;
        let live = state.live.entry(key.to_string()).or_insert(0);
        *live += 1;
        if *live > 1 {
            let n = *live;
            state.violations.push(format!("{key} had {n} live activations (the newest on {address})"));
        }
    }

    fn stopped(&self, key: &str, address: &str) {
        let mut state = self.state.lock();
        let live = state.live.entry(key.to_string()).or_insert(0);
        *live -= 1;
        if *live < 0 {
            let n = *live;
            state.violations.push(format!("{key} stopped more often than started ({n}, on {address})"));
        }
    }

    /// Every time an identity had more than one live activation (or a stop
    /// without a start).
    pub fn violations(&self) -> Vec<String> {
        self.state.lock().violations.clone()
    }

    /// Activations started so far.
    pub fn activations(&self) -> u64 {
        self.state.lock().activations
    }

    /// Identities with a live activation now, and how many each has.
    pub fn live(&self) -> Vec<(String, i64)> {
        let state = self.state.lock();
        let mut live: Vec<(String, i64)> =
            state.live.iter().filter(|(_, n)| **n != 0).map(|(k, n)| (k.clone(), *n)).collect();
        live.sort();
        live
    }
}

/// A [`Ping`] with this message makes a tracked grain answer and then stop
/// itself, so its next request activates it again.
pub const DIE: &str = "die";

/// How long a tracked grain's `Stopped` handler takes.
const STOPPING_TAKES: Duration = Duration::from_millis(20);

struct Tracked {
    count: u64,
    tracker: Arc<LiveTracker>,
}

impl Tracked {
    fn key(ctx: &Context) -> String {
        ctx.cluster_identity().map(|i| i.key()).unwrap_or_default()
    }
}

impl Actor for Tracked {
    async fn receive(&mut self, ctx: &mut Context) -> ActorResult {
        if ctx.message_is::<Started>() {
            self.tracker.started(&Self::key(ctx), &ctx.system().address());
        } else if ctx.message_is::<Stopped>() {
            // A deactivation that takes a while (saving state, say): a new
            // activation must not start before it is over.
            tokio::time::sleep(STOPPING_TAKES).await;
            self.tracker.stopped(&Self::key(ctx), &ctx.system().address());
        } else if let Some(ping) = ctx.message::<Ping>() {
            self.count += 1;
            let die = ping.message == DIE;
            let (identity, kind) =
                ctx.cluster_identity().map(|i| (i.identity.clone(), i.kind.clone())).unwrap_or_default();
            let pong = Pong {
                message: ping.message.clone(),
                identity,
                kind,
                address: ctx.system().address().to_string(),
                count: self.count,
            };
            ctx.respond(pong);
            if die {
                let me = ctx.self_pid().clone();
                ctx.stop(&me);
            }
        }
        Ok(())
    }
}

/// A kind `name` of echo grains (answering [`Ping`] with [`Pong`]) whose
/// activations report to `tracker`; a ping saying [`DIE`] stops the grain.
pub fn tracked_kind(name: &str, tracker: &Arc<LiveTracker>) -> Kind {
    let tracker = tracker.clone();
    Kind::new(name, Props::from_producer(move || Tracked { count: 0, tracker: tracker.clone() }))
}

// ----- load -----

/// What a request load saw.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Requests answered.
    pub ok: u64,
    /// Requests that failed: identity and the error's text.
    pub errors: Vec<(String, String)>,
    /// Requests still pending when their tokio timeout fired (a hang).
    pub hung: Vec<String>,
    /// The last answer per identity.
    pub last: HashMap<String, Pong>,
}

impl LoadReport {
    /// Adds `other`; where both have an answer for an identity, `self`'s is kept.
    pub fn merge(&mut self, other: LoadReport) {
        self.ok += other.ok;
        self.errors.extend(other.errors);
        self.hung.extend(other.hung);
        for (k, v) in other.last {
            self.last.entry(k).or_insert(v);
        }
    }

    /// Requests made in total.
    pub fn total(&self) -> u64 {
        self.ok + self.errors.len() as u64 + self.hung.len() as u64
    }
}

/// Settings of one request loop.
#[derive(Debug, Clone)]
pub struct Load {
    /// The grain kind.
    pub kind: String,
    /// Identities to pick from at random.
    pub identities: Arc<Vec<String>>,
    /// A tokio timeout around each request; firing means the request hung.
    pub hang_after: Duration,
    /// Pause between requests, only to pace the load.
    pub pace: Duration,
    /// Fraction (0..1) of pings that say [`DIE`].
    pub die_ratio: f64,
}

/// Stops request loops, and counts the requests they got answered.
#[derive(Debug, Clone, Default)]
pub struct StopFlag {
    raised: Arc<AtomicBool>,
    answered: Arc<std::sync::atomic::AtomicU64>,
}

impl StopFlag {
    /// A flag not yet raised.
    pub fn new() -> Self {
        Self::default()
    }
    /// Requests answered so far by the loops started with this flag.
    pub fn answered(&self) -> u64 {
        self.answered.load(Ordering::SeqCst)
    }
    /// Waits until the loops have had `more` requests answered from now on
    /// (the load is under way, or still served after some event); false if
    /// that took longer than `within`.
    pub async fn answered_more(&self, more: u64, within: Duration) -> bool {
        let target = self.answered() + more;
        let deadline = tokio::time::Instant::now() + within;
        while self.answered() < target {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }
    /// Tells the loops to finish after their current request.
    pub fn raise(&self) {
        self.raised.store(true, Ordering::SeqCst);
    }
    /// True once raised.
    pub fn is_raised(&self) -> bool {
        self.raised.load(Ordering::SeqCst)
    }
}

/// Makes one request as the load does and records its outcome.
pub async fn request_once(
    cluster: &Cluster,
    identity: &str,
    kind: &str,
    message: &str,
    hang_after: Duration,
    report: &mut LoadReport,
) {
    let ping = Ping { message: message.to_string() };
    match tokio::time::timeout(hang_after, cluster.request::<Pong, _>(identity, kind, ping)).await {
        Ok(Ok(pong)) => {
            report.ok += 1;
            report.last.insert(identity.to_string(), pong);
        }
        Ok(Err(e)) => report.errors.push((identity.to_string(), e.to_string())),
        Err(_) => report.hung.push(identity.to_string()),
    }
}

/// Runs a request loop on `cluster` until `stop` is raised.
pub fn spawn_load(cluster: &Cluster, load: Load, stop: &StopFlag) -> tokio::task::JoinHandle<LoadReport> {
    let (cluster, stop) = (cluster.clone(), stop.clone());
    tokio::spawn(async move {
        let mut report = LoadReport::default();
        let mut n = 0u64;
        while !stop.is_raised() {
            n += 1;
            let identity = &load.identities[fastrand::usize(..load.identities.len())];
            let message = if fastrand::f64() < load.die_ratio { DIE.to_string() } else { format!("ping {n}") };
            let before = report.ok;
            request_once(&cluster, identity, &load.kind, &message, load.hang_after, &mut report).await;
            stop.answered.fetch_add(report.ok - before, Ordering::SeqCst);
            if !load.pace.is_zero() {
                // Pacing only: keeps the load from starving the members on 2 cores.
                tokio::time::sleep(load.pace).await;
            }
        }
        report
    })
}

/// Waits for request loops and merges their reports.
pub async fn join_loads(loads: Vec<tokio::task::JoinHandle<LoadReport>>) -> LoadReport {
    let mut report = LoadReport::default();
    for load in loads {
        report.merge(load.await.expect("load task does not panic"));
    }
    report
}

/// Requests every identity once from `cluster`, `parallel` at a time.
pub async fn request_all(
    cluster: &Cluster,
    kind: &str,
    identities: &[String],
    parallel: usize,
    hang_after: Duration,
) -> LoadReport {
    use futures_util::StreamExt;
    let reports: Vec<LoadReport> = futures_util::stream::iter(identities.iter().cloned())
        .map(|identity| async move {
            let mut report = LoadReport::default();
            request_once(cluster, &identity, kind, "all", hang_after, &mut report).await;
            report
        })
        .buffer_unordered(parallel.max(1))
        .collect()
        .await;
    let mut all = LoadReport::default();
    for r in reports {
        all.merge(r);
    }
    all
}

/// Shows at most a few entries of a long list in an assertion message.
pub fn sample<T: std::fmt::Debug>(items: &[T]) -> String {
    let shown: Vec<&T> = items.iter().take(5).collect();
    format!("{} in all, first: {shown:?}", items.len())
}

/// Shuts `clusters` down gracefully, all at once, each within 15 s.
pub async fn shutdown_all(clusters: impl IntoIterator<Item = Cluster>) {
    let stops = clusters.into_iter().map(|c| async move {
        let id = c.id().to_string();
        let done = tokio::time::timeout(Duration::from_secs(15), c.shutdown(true)).await;
        assert!(done.is_ok(), "member {id} shut down within 15 s");
    });
    futures_util::future::join_all(stops).await;
}
