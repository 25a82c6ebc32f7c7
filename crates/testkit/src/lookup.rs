//! The identity lookup conformance suite (feature `lookup`): the behaviour
//! every [`IdentityLookup`] must show, as async functions a lookup crate
//! calls from its tests with a few lines.
//!
//! Each scenario starts its own members in this process (an in-memory
//! provider, real remoting on loopback) hosting a [`KIND`] whose grains
//! count their own activations, so "exactly one activation" is what the
//! grains saw, not what the lookup claims.
//!
//! | scenario | partition | storage lookups |
//! |---|---|---|
//! | [`concurrent_first_requests`] | yes | yes |
//! | [`killed_member_reactivates_once`] | yes | yes (and the store is cleaned) |
//! | [`graceful_leave_hands_over`] | yes | yes |
//! | [`paused_lock_holder_activates_once`] | no: has no locks | yes |
//! | [`store_restart_recovers`] | no: has no store | yes |
//! | [`stalled_store_fails_by_the_deadline`] | no: has no store | yes |
//!
//! ```no_run
//! use protoactor_testkit::lookup;
//! # async fn demo(make: impl Fn() -> protoactor_cluster::StorageIdentityLookup) {
//! lookup::concurrent_first_requests(&make, 500).await;
//! # }
//! ```

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::future::{BoxFuture, join_all};
use parking_lot::Mutex;
use protoactor_actor::prelude::*;
use protoactor_cluster::{
    Cluster, ClusterConfig, ClusterIdentity, Error, GrainContext, IdentityLookup, IdentityStorage, InMemoryAgent,
    InMemoryProvider, Kind, SpawnLock, StorageIdentityLookup, StorageLookupConfig, StoredActivation,
};
use protoactor_remote::RemoteConfig;
use serde::{Deserialize, Serialize};

use crate::cluster::{init_tracing, wait_until, wait_until_async};

/// The kind every scenario activates.
pub const KIND: &str = "counted";

/// Asks a counted grain who it is.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Probe;

/// A counted grain's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probed {
    /// The grain's identity.
    pub identity: String,
    /// Its pid, `address/id`: one per activation.
    pub pid: String,
    /// The address of its member.
    pub address: String,
}

/// What the grains counted, shared by every member of a scenario.
#[derive(Debug, Default)]
pub struct Counts {
    started: AtomicUsize,
    stopped: AtomicUsize,
    per_identity: Mutex<HashMap<String, usize>>,
}

impl Counts {
    /// Activations started so far.
    pub fn started(&self) -> usize {
        self.started.load(Ordering::SeqCst)
    }

    /// Activations stopped so far.
    pub fn stopped(&self) -> usize {
        self.stopped.load(Ordering::SeqCst)
    }

    /// Activations alive now.
    pub fn live(&self) -> usize {
        self.started().saturating_sub(self.stopped())
    }

    /// How often `identity` was activated.
    pub fn activations_of(&self, identity: &str) -> usize {
        self.per_identity.lock().get(identity).copied().unwrap_or(0)
    }
}

/// A kind named [`KIND`] whose grains count their activations in `counts`
/// and answer [`Probe`] with [`Probed`].
pub fn counting_kind(counts: Arc<Counts>) -> Kind {
    Kind::new(
        KIND,
        Props::from_fn(move |ctx| {
            if ctx.message_is::<Started>() {
                counts.started.fetch_add(1, Ordering::SeqCst);
                if let Some(ci) = ctx.cluster_identity() {
                    *counts.per_identity.lock().entry(ci.identity.clone()).or_default() += 1;
                }
            } else if ctx.message_is::<Stopped>() {
                counts.stopped.fetch_add(1, Ordering::SeqCst);
            } else if ctx.message_is::<Probe>() {
                let identity = ctx.cluster_identity().map(|i| i.identity.clone()).unwrap_or_default();
                let me = ctx.self_pid();
                let reply = Probed {
                    identity,
                    pid: format!("{}/{}", me.address(), me.id()),
                    address: me.address().to_string(),
                };
                ctx.respond(reply);
            }
            Ok(())
        }),
    )
}

/// Remoting on a free loopback port with [`Probe`]/[`Probed`] registered.
pub fn remote_config() -> RemoteConfig {
    let mut remote = RemoteConfig::bind("127.0.0.1", 0);
    remote.serialization_mut().register_json::<Probe>("testkit.lookup.Probe");
    remote.serialization_mut().register_json::<Probed>("testkit.lookup.Probed");
    remote
}

/// Starts a member of cluster `name` on `agent` with `lookup`, hosting the counted kind.
pub async fn start_member(
    agent: &InMemoryAgent,
    name: &str,
    lookup: impl IdentityLookup,
    counts: &Arc<Counts>,
) -> Cluster {
    start_member_with_deadline(agent, name, lookup, counts, Duration::from_secs(60)).await
}

async fn start_member_with_deadline(
    agent: &InMemoryAgent,
    name: &str,
    lookup: impl IdentityLookup,
    counts: &Arc<Counts>,
    deadline: Duration,
) -> Cluster {
    let system = ActorSystem::new();
    let config = ClusterConfig::new(name, InMemoryProvider::new(agent), lookup)
        .with_remote(remote_config())
        .with_kind(counting_kind(counts.clone()))
        .with_request_timeout(Duration::from_secs(5))
        .with_request_deadline(deadline);
    let cluster = Cluster::new(&system, config).expect("a valid cluster config");
    cluster.start_member().await.expect("the member starts");
    cluster
}

fn unique_name(scenario: &str) -> String {
    format!("{scenario}-{:08x}", fastrand_u32())
}

fn fastrand_u32() -> u32 {
    // No rand dependency: the clock's nanoseconds are unique enough per test.
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0)
}

async fn members<L: IdentityLookup>(
    agent: &InMemoryAgent,
    name: &str,
    n: usize,
    make: &impl Fn() -> L,
    counts: &Arc<Counts>,
) -> Vec<Cluster> {
    members_with_deadline(agent, name, n, make, counts, Duration::from_secs(60)).await
}

async fn members_with_deadline<L: IdentityLookup>(
    agent: &InMemoryAgent,
    name: &str,
    n: usize,
    make: &impl Fn() -> L,
    counts: &Arc<Counts>,
    deadline: Duration,
) -> Vec<Cluster> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(start_member_with_deadline(agent, name, make(), counts, deadline).await);
    }
    let ids: Vec<String> = out.iter().map(|c| c.id().to_string()).collect();
    for c in &out {
        assert!(
            c.member_list().wait_for(Duration::from_secs(20), |t| ids.iter().all(|id| t.member(id).is_some())).await,
            "every member sees all {n} members"
        );
    }
    out
}

async fn probe(cluster: &Cluster, identity: &str) -> Result<Probed, Error> {
    cluster.request::<Probed, _>(identity, KIND, Probe).await
}

async fn probe_all(cluster: &Cluster, identities: &[String]) -> Vec<Probed> {
    try_probe_all(cluster, identities).await.unwrap_or_else(|e| panic!("{e}"))
}

async fn shutdown_all(members: Vec<Cluster>) {
    join_all(members.iter().map(|m| m.shutdown(true))).await;
}

/// Each member's answers to `identities`, requested concurrently, or
/// every failure (at most 10 shown) with how long the round took.
async fn try_probe_all(cluster: &Cluster, identities: &[String]) -> Result<Vec<Probed>, String> {
    let started = std::time::Instant::now();
    let answers = join_all(identities.iter().map(|id| probe(cluster, id))).await;
    let failed: Vec<String> =
        answers.iter().zip(identities).filter_map(|(a, id)| a.as_ref().err().map(|e| format!("{id}: {e}"))).collect();
    if failed.is_empty() {
        return Ok(answers.into_iter().flatten().collect());
    }
    Err(format!(
        "member {}: {} of {} requests failed (round took {:?}); first: {:#?}",
        cluster.address(),
        failed.len(),
        identities.len(),
        started.elapsed(),
        &failed[..failed.len().min(10)]
    ))
}

/// Three members request the same `n` identities at once (each member all
/// of them, concurrently): every request succeeds, all three agree on each
/// identity's pid, and the grains count exactly `n` activations. A failure
/// says which requests failed and why, which identities the members
/// disagree on and which were activated more than once.
pub async fn concurrent_first_requests<L: IdentityLookup>(make: &impl Fn() -> L, n: usize) {
    init_tracing();
    let agent = InMemoryAgent::new();
    let counts = Arc::new(Counts::default());
    // The budget of each request: 3 x n first requests at once is a burst
    // a slow store (the Python MongoDB stand-in, on two cores shared with
    // the rest of the test run) works off in tens of seconds. This scenario
    // checks what is activated, not how fast; the lookups bench measures speed.
    let deadline = Duration::from_secs(180);
    let members = members_with_deadline(&agent, &unique_name("concurrent"), 3, make, &counts, deadline).await;
    let identities: Vec<String> = (0..n).map(|i| format!("id-{i}")).collect();
    let started = std::time::Instant::now();
    let rounds = join_all(members.iter().map(|m| try_probe_all(m, &identities))).await;
    let elapsed = started.elapsed();
    let twice: Vec<(String, usize)> =
        identities.iter().map(|id| (id.clone(), counts.activations_of(id))).filter(|(_, c)| *c > 1).collect();
    let context = format!(
        "{n} identities from 3 members in {elapsed:?}; the grains counted {} activations ({} alive); activated more than once: {:?}",
        counts.started(),
        counts.live(),
        &twice[..twice.len().min(10)]
    );
    let failures: Vec<&String> = rounds.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(failures.is_empty(), "requests failed: {failures:#?}\n{context}");
    let answers: Vec<Vec<Probed>> = rounds.into_iter().flatten().collect();
    let disagree: Vec<String> = (0..n)
        .filter_map(|i| {
            let pids: Vec<&str> = answers.iter().map(|a| a[i].pid.as_str()).collect();
            (!pids.iter().all(|p| *p == pids[0])).then(|| format!("{}: {pids:?}", identities[i]))
        })
        .collect();
    assert!(
        disagree.is_empty(),
        "members disagree on {} identities: {:#?}\n{context}",
        disagree.len(),
        &disagree[..disagree.len().min(10)]
    );
    assert!(twice.is_empty(), "identities activated more than once\n{context}");
    assert_eq!(counts.started(), n, "exactly one activation per identity, as counted by the grains\n{context}");
    shutdown_all(members).await;
}

/// A member is killed (no graceful leave): once the others see it gone,
/// `storage` (if given; a fresh instance of the lookup's storage, which the
/// scenario initialises) no longer holds its activations, and each of its
/// grains is activated again exactly once on the survivors.
pub async fn killed_member_reactivates_once<L: IdentityLookup>(
    make: &impl Fn() -> L,
    storage: Option<Arc<dyn IdentityStorage>>,
) {
    init_tracing();
    let agent = InMemoryAgent::with_ttl(Duration::from_secs(1));
    let counts = Arc::new(Counts::default());
    let name = unique_name("killed");
    if let Some(storage) = &storage {
        storage.init(&name).await.expect("the storage used for checks connects");
    }
    let mut members = members(&agent, &name, 3, make, &counts).await;
    let identities: Vec<String> = (0..300).map(|i| format!("k-{i}")).collect();
    let first = probe_all(&members[0], &identities).await;
    let victim = members.pop().expect("three members");
    let (victim_id, victim_address) = (victim.id().to_string(), victim.address().to_string());
    let lost: Vec<String> = first.iter().filter(|p| p.address == victim_address).map(|p| p.identity.clone()).collect();
    assert!(!lost.is_empty(), "the victim hosted some of the 300 grains");
    victim.shutdown(false).await;
    for m in &members {
        assert!(
            m.member_list().wait_for(Duration::from_secs(20), |t| t.member(&victim_id).is_none()).await,
            "the survivors see the killed member leave"
        );
    }
    if let Some(storage) = &storage {
        let cleaned = wait_until_async(Duration::from_secs(20), || {
            let (storage, lost, victim_id) = (storage.clone(), lost.clone(), victim_id.clone());
            async move {
                for id in &lost {
                    match storage.get(&ClusterIdentity::new(id.as_str(), KIND)).await {
                        Ok(Some(a)) if a.member_id == victim_id => return false,
                        Err(_) => return false,
                        _ => {}
                    }
                }
                true
            }
        })
        .await;
        assert!(cleaned, "the store no longer lists the killed member's activations");
    }
    let started_before = counts.started();
    let again = join_all(members.iter().map(|m| probe_all(m, &identities))).await;
    for (i, id) in identities.iter().enumerate() {
        assert_ne!(again[0][i].address, victim_address, "{id} answered from the killed member");
        assert_eq!(again[0][i].pid, again[1][i].pid, "the survivors agree on {id}");
    }
    assert_eq!(counts.started() - started_before, lost.len(), "each lost grain activated again once, no other");
    for id in &lost {
        assert_eq!(counts.activations_of(id), 2, "{id}: the original and one re-activation");
    }
    shutdown_all(members).await;
}

/// A member leaves gracefully: its grains stop (their stop hooks run) and
/// are activated once each on the others; every identity ends with exactly
/// one live activation.
pub async fn graceful_leave_hands_over<L: IdentityLookup>(make: &impl Fn() -> L) {
    init_tracing();
    let agent = InMemoryAgent::new();
    let counts = Arc::new(Counts::default());
    let mut members = members(&agent, &unique_name("leave"), 3, make, &counts).await;
    let identities: Vec<String> = (0..300).map(|i| format!("g-{i}")).collect();
    let first = probe_all(&members[0], &identities).await;
    let leaver = members.pop().expect("three members");
    let leaver_address = leaver.address().to_string();
    let moved: Vec<String> = first.iter().filter(|p| p.address == leaver_address).map(|p| p.identity.clone()).collect();
    leaver.shutdown(true).await;
    let again = join_all(members.iter().map(|m| probe_all(m, &identities))).await;
    for (i, id) in identities.iter().enumerate() {
        assert_ne!(again[0][i].address, leaver_address, "{id} answered from the member that left");
        assert_eq!(again[0][i].pid, again[1][i].pid, "the others agree on {id}");
    }
    assert_eq!(counts.live(), identities.len(), "one live activation per identity");
    for id in &moved {
        assert_eq!(counts.activations_of(id), 2, "{id}: the original and one on another member");
    }
    shutdown_all(members).await;
}

/// An [`IdentityStorage`] whose first `store_activation` stalls for `pause`
/// (a member paused while holding a lock).
struct Stalling<S> {
    inner: S,
    pause: Duration,
    armed: AtomicBool,
}

impl<S: IdentityStorage> IdentityStorage for Stalling<S> {
    fn init<'a>(&'a self, cluster_name: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        self.inner.init(cluster_name)
    }
    fn get<'a>(&'a self, identity: &'a ClusterIdentity) -> BoxFuture<'a, Result<Option<StoredActivation>, Error>> {
        self.inner.get(identity)
    }
    fn try_acquire_lock<'a>(
        &'a self,
        identity: &'a ClusterIdentity,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<SpawnLock>, Error>> {
        self.inner.try_acquire_lock(identity, ttl)
    }
    fn wait_for_activation<'a>(
        &'a self,
        identity: &'a ClusterIdentity,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Option<StoredActivation>, Error>> {
        self.inner.wait_for_activation(identity, timeout)
    }
    fn store_activation<'a>(
        &'a self,
        member_id: &'a str,
        lock: &'a SpawnLock,
        pid: &'a Pid,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(async move {
            if self.armed.swap(false, Ordering::SeqCst) {
                tokio::time::sleep(self.pause).await;
            }
            self.inner.store_activation(member_id, lock, pid).await
        })
    }
    fn remove_lock<'a>(&'a self, lock: &'a SpawnLock) -> BoxFuture<'a, Result<(), Error>> {
        self.inner.remove_lock(lock)
    }
    fn remove_activation<'a>(
        &'a self,
        identity: &'a ClusterIdentity,
        pid: &'a Pid,
    ) -> BoxFuture<'a, Result<(), Error>> {
        self.inner.remove_activation(identity, pid)
    }
    fn remove_member<'a>(&'a self, member_id: &'a str) -> BoxFuture<'a, Result<usize, Error>> {
        self.inner.remove_member(member_id)
    }
    fn dispose(&self) -> BoxFuture<'_, Result<(), Error>> {
        self.inner.dispose()
    }
    fn location(&self) -> (String, String) {
        self.inner.location()
    }
}

/// Storage lookups only. Member A takes the lock for an identity, activates
/// the grain, then stalls past the lock's expiry before storing it; member B
/// meanwhile takes the expired lock and activates it. When A resumes, the
/// store refuses its stale lock and A stops its grain: both callers get B's
/// activation and one activation is left alive.
pub async fn paused_lock_holder_activates_once<S: IdentityStorage>(make_storage: &impl Fn() -> S) {
    init_tracing();
    let agent = InMemoryAgent::new();
    let counts = Arc::new(Counts::default());
    let config = StorageLookupConfig {
        lock_ttl: Duration::from_millis(500),
        wait_timeout: Duration::from_secs(2),
        ..StorageLookupConfig::default()
    };
    let name = unique_name("paused");
    let stalling = Stalling { inner: make_storage(), pause: Duration::from_millis(1500), armed: AtomicBool::new(true) };
    let a = start_member(&agent, &name, StorageIdentityLookup::with_config(stalling, config), &counts).await;
    let b = start_member(&agent, &name, StorageIdentityLookup::with_config(make_storage(), config), &counts).await;
    assert!(b.member_list().wait_for(Duration::from_secs(20), |t| t.members.len() == 2).await);
    assert!(a.member_list().wait_for(Duration::from_secs(20), |t| t.members.len() == 2).await);
    let from_a = {
        let a = a.clone();
        tokio::spawn(async move { probe(&a, "paused").await })
    };
    assert!(wait_until(Duration::from_secs(10), || counts.started() == 1).await, "A activated the grain");
    let from_b = probe(&b, "paused").await.expect("B's request succeeds");
    let from_a = from_a.await.expect("A's task").expect("A's request succeeds");
    assert_eq!(from_a.pid, from_b.pid, "both callers reach the same activation");
    assert_eq!(counts.started(), 2, "B activated after A's lock expired");
    assert!(
        wait_until(Duration::from_secs(10), || counts.live() == 1).await,
        "A stopped its unstored grain: one activation is left (started {}, stopped {})",
        counts.started(),
        counts.stopped()
    );
    shutdown_all(vec![a, b]).await;
}

/// Storage lookups only. Two members activate fresh identities in a loop
/// while `restart` stops and starts the store (a blocking call). Requests
/// that fail during the outage say why; once the store is back, new
/// requests succeed again, each identity activated once.
pub async fn store_restart_recovers<L: IdentityLookup>(make: &impl Fn() -> L, restart: impl FnOnce() + Send + 'static) {
    init_tracing();
    let agent = InMemoryAgent::new();
    let counts = Arc::new(Counts::default());
    let members = members(&agent, &unique_name("restart"), 2, make, &counts).await;
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let mut load = Vec::new();
    for (m, member) in members.iter().enumerate() {
        let (member, stop, served) = (member.clone(), stop.clone(), served.clone());
        load.push(tokio::spawn(async move {
            let mut i = 0usize;
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                if probe(&member, &format!("load-{m}-{i}")).await.is_ok() {
                    served.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }
    assert!(wait_until(Duration::from_secs(20), || served.load(Ordering::SeqCst) >= 100).await, "load is served");
    tokio::task::spawn_blocking(restart).await.expect("the store restarts");
    let after: Vec<String> = (0..100).map(|i| format!("after-{i}")).collect();
    let answers = join_all(members.iter().map(|m| probe_all(m, &after))).await;
    for (i, id) in after.iter().enumerate() {
        assert_eq!(answers[0][i].pid, answers[1][i].pid, "both members agree on {id} after the restart");
        assert_eq!(counts.activations_of(id), 1, "{id} activated once after the restart");
    }
    stop.store(true, Ordering::SeqCst);
    for task in load {
        let _ = task.await;
    }
    shutdown_all(members).await;
}

/// Storage lookups only. One member; `stall` makes the store stop
/// answering (SIGSTOP, say) while its port stays open. A first request with
/// a 3 s deadline returns by then (a generous margin guards against a hang,
/// this is not a timing check) with an error naming `store` and `address`,
/// and activates nothing; after `resume` the same identity is activated
/// exactly once.
pub async fn stalled_store_fails_by_the_deadline<L: IdentityLookup>(
    lookup: L,
    stall: impl FnOnce(),
    resume: impl FnOnce(),
    store: &str,
    address: &str,
) {
    init_tracing();
    let agent = InMemoryAgent::new();
    let counts = Arc::new(Counts::default());
    let member = start_member(&agent, &unique_name("stalled"), lookup, &counts).await;
    probe(&member, "before").await.expect("the store answers before the stall");
    stall();
    let deadline = Duration::from_secs(3);
    let options = protoactor_cluster::CallOptions::default().with_deadline(deadline);
    let during = member.request_with::<Probed, _>("during", KIND, Probe, &options);
    let err = tokio::time::timeout(deadline + Duration::from_secs(10), during)
        .await
        .expect("the request returns by its deadline (it hung instead)")
        .expect_err("the store is stalled, the request cannot succeed");
    let text = err.to_string();
    assert!(
        text.contains(&format!("identity storage {store}")) && text.contains(address),
        "the error names the store ({store}) and its address ({address}): {text}"
    );
    assert_eq!(counts.activations_of("during"), 0, "nothing was activated while the store stalled: {text}");
    resume();
    let after = probe(&member, "during").await.expect("requests work again once the store answers");
    assert_eq!(after.identity, "during");
    assert!(
        wait_until(Duration::from_secs(5), || counts.live() == 2).await,
        "one activation each of `before` and `during` is alive (started {}, stopped {})",
        counts.started(),
        counts.stopped()
    );
    assert_eq!(counts.activations_of("during"), 1, "`during` was activated once");
    shutdown_all(vec![member]).await;
}
