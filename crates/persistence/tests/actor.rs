//! The actor-side helper inside real actors: recovery on start, conflicts
//! stop the stale activation, store failures go to the supervisor, and a
//! snapshot is written on passivation.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use protoactor_actor::prelude::*;
use protoactor_actor::{Directive, SupervisorEvent};
use protoactor_persistence::{
    Error, Event, EventSourced, InMemoryProvider, Journal, PersistentState, Provider, Snapshot, SnapshotPolicy,
};
use serde::{Deserialize, Serialize};

const TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Default, Serialize, Deserialize)]
struct Total(u64);

#[derive(Serialize, Deserialize)]
struct Added(u64);

impl EventSourced for Total {
    type Event = Added;
    fn apply(&mut self, event: &Added) {
        self.0 += event.0;
    }
}

struct Add(u64);
struct Get;

struct Counter {
    provider: Arc<dyn Provider>,
    id: String,
    policy: SnapshotPolicy,
    journal: Option<Journal<Total>>,
}

impl Actor for Counter {
    async fn receive(&mut self, ctx: &mut Context) -> ActorResult {
        if ctx.message_is::<Started>() {
            self.journal =
                Some(Journal::recover_in(ctx, self.provider.clone(), self.id.clone(), self.policy.clone()).await?);
        } else if let Some(Add(n)) = ctx.message::<Add>() {
            let n = *n;
            let journal = self.journal.as_mut().ok_or_else(|| ActorError::msg("not recovered"))?;
            journal.persist(Added(n)).await?;
            ctx.respond(journal.state().0);
        } else if ctx.message_is::<Get>() {
            let total = self.journal.as_ref().map(|j| j.state().0).unwrap_or_default();
            ctx.respond(total);
        } else if ctx.message_is::<Stopping>()
            && let Some(journal) = self.journal.as_mut()
        {
            journal.on_stopping().await?;
        }
        Ok(())
    }
}

fn counter(provider: &Arc<dyn Provider>, id: &str, policy: SnapshotPolicy) -> Props {
    let (provider, id) = (provider.clone(), id.to_string());
    Props::from_producer(move || Counter {
        provider: provider.clone(),
        id: id.clone(),
        policy: policy.clone(),
        journal: None,
    })
}

async fn add(system: &ActorSystem, pid: &Pid, n: u64) -> Result<u64, protoactor_actor::Error> {
    system.root().request_future::<u64, _>(pid, Add(n), TIMEOUT).await
}

async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_activation_recovers_snapshot_and_tail_through_apply() {
    let provider: Arc<dyn Provider> = Arc::new(InMemoryProvider::new());
    let system = ActorSystem::new();
    let props = counter(&provider, "c1", SnapshotPolicy::every(4));
    let pid = system.root().spawn(props.clone());
    for n in 1..=10 {
        assert_eq!(add(&system, &pid, n).await.expect("add"), (1..=n).sum::<u64>());
    }
    system.root().stop_future(&pid).await;
    assert_eq!(provider.get_snapshot("c1").await.expect("read").map(|s| s.index), Some(8), "snapshots every 4");

    let pid = system.root().spawn(props);
    let total: u64 = system.root().request_future(&pid, Get, TIMEOUT).await.expect("get");
    assert_eq!(total, 55, "snapshot (8 events) + tail (2 events) recovered");
    assert_eq!(add(&system, &pid, 1).await.expect("add"), 56, "continues at the next index");
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passivation_writes_a_snapshot_when_the_policy_asks() {
    let provider: Arc<dyn Provider> = Arc::new(InMemoryProvider::new());
    let system = ActorSystem::new();
    let pid = system.root().spawn(counter(&provider, "passive", SnapshotPolicy::none().and_on_stop()));
    add(&system, &pid, 5).await.expect("add");
    add(&system, &pid, 6).await.expect("add");
    assert!(provider.get_snapshot("passive").await.expect("read").is_none(), "no snapshot while running");
    system.root().stop_future(&pid).await;
    let snapshot = provider.get_snapshot("passive").await.expect("read").expect("a snapshot on stop");
    assert_eq!(snapshot.index, 2, "the snapshot covers both events");
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_activations_the_second_writer_conflicts_and_stops_and_nothing_is_overwritten() {
    let provider: Arc<dyn Provider> = Arc::new(InMemoryProvider::new());
    let system = ActorSystem::new();
    let props = counter(&provider, "dup", SnapshotPolicy::none());
    // Both recover the same (empty) journal, as during a handover.
    let first = system.root().spawn(props.clone());
    let second = system.root().spawn(props);
    for pid in [&first, &second] {
        let _: u64 = system.root().request_future(pid, Get, TIMEOUT).await.expect("recovered");
    }
    let (_sub, mut failures) = system.event_stream().subscribe_channel::<SupervisorEvent>();
    assert_eq!(add(&system, &first, 10).await.expect("first writes"), 10);
    let stale = system.root().request_future::<u64, _>(&second, Add(99), Duration::from_millis(300)).await;
    assert!(stale.is_err(), "the stale activation acknowledges nothing");
    wait_until("the stale activation stopped", || !system.is_registered(&second)).await;
    let failure = tokio::time::timeout(TIMEOUT, failures.recv()).await.expect("a failure").expect("event");
    assert!(failure.reason.to_string().contains("conflict"), "the failure says why: {}", failure.reason);
    let events = provider.get_events("dup", 0).await.expect("read");
    assert_eq!(events.len(), 1, "only the first writer's event is stored");
    assert_eq!(add(&system, &first, 1).await.expect("first continues"), 11);
    system.shutdown().await;
}

/// Fails appends while `down` is set, as a store that lost its connection.
#[derive(Debug)]
struct Flaky {
    inner: InMemoryProvider,
    down: AtomicBool,
}

impl Provider for Flaky {
    fn get_events<'a>(&'a self, actor_id: &'a str, from: u64) -> BoxFuture<'a, Result<Vec<Event>, Error>> {
        self.inner.get_events(actor_id, from)
    }
    fn get_snapshot<'a>(&'a self, actor_id: &'a str) -> BoxFuture<'a, Result<Option<Snapshot>, Error>> {
        self.inner.get_snapshot(actor_id)
    }
    fn append_events<'a>(
        &'a self,
        actor_id: &'a str,
        expected_index: u64,
        payloads: Vec<Vec<u8>>,
    ) -> BoxFuture<'a, Result<(), Error>> {
        if self.down.load(Ordering::SeqCst) {
            return Box::pin(std::future::ready(Err(Error::Store("connection refused".into()))));
        }
        self.inner.append_events(actor_id, expected_index, payloads)
    }
    fn save_snapshot<'a>(&'a self, actor_id: &'a str, snapshot: Snapshot) -> BoxFuture<'a, Result<(), Error>> {
        self.inner.save_snapshot(actor_id, snapshot)
    }
    fn delete_events<'a>(&'a self, actor_id: &'a str, up_to: u64) -> BoxFuture<'a, Result<(), Error>> {
        self.inner.delete_events(actor_id, up_to)
    }
    fn delete_snapshots<'a>(&'a self, actor_id: &'a str, up_to: u64) -> BoxFuture<'a, Result<(), Error>> {
        self.inner.delete_snapshots(actor_id, up_to)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_failure_fails_the_message_the_supervisor_restarts_and_recovery_continues() {
    let flaky = Arc::new(Flaky { inner: InMemoryProvider::new(), down: AtomicBool::new(false) });
    let provider: Arc<dyn Provider> = flaky.clone();
    let system = ActorSystem::new();
    let (_sub, mut failures) = system.event_stream().subscribe_channel::<SupervisorEvent>();
    let pid = system.root().spawn(counter(&provider, "flaky", SnapshotPolicy::none()));
    assert_eq!(add(&system, &pid, 3).await.expect("add"), 3);

    flaky.down.store(true, Ordering::SeqCst);
    let _ = system.root().request_future::<u64, _>(&pid, Add(100), Duration::from_millis(300)).await;
    let failure = tokio::time::timeout(TIMEOUT, failures.recv()).await.expect("a failure").expect("event");
    assert_eq!(failure.directive, Directive::Restart, "the default strategy restarts the actor");
    let reason = failure.reason.to_string();
    assert!(
        reason.contains("persistence store failed") && reason.contains("connection refused"),
        "clear error: {reason}"
    );

    flaky.down.store(false, Ordering::SeqCst);
    assert_eq!(add(&system, &pid, 4).await.expect("add after restart"), 7, "the failed write was never applied");
    assert_eq!(flaky.inner.get_events("flaky", 0).await.expect("read").len(), 2, "nothing half-written stored");
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_state_loads_on_start_and_saves_on_change() {
    struct Cart {
        provider: Arc<dyn Provider>,
        state: Option<PersistentState<Vec<String>>>,
    }
    struct Put(&'static str);
    impl Actor for Cart {
        async fn receive(&mut self, ctx: &mut Context) -> ActorResult {
            if ctx.message_is::<Started>() {
                self.state = Some(PersistentState::load_in(ctx, self.provider.clone(), "cart").await?);
            } else if let Some(Put(item)) = ctx.message::<Put>() {
                let item = item.to_string();
                let state = self.state.as_mut().ok_or_else(|| ActorError::msg("not loaded"))?;
                state.update(|items| items.push(item)).await?;
                ctx.respond(state.get().len());
            }
            Ok(())
        }
    }
    let provider: Arc<dyn Provider> = Arc::new(InMemoryProvider::new());
    let system = ActorSystem::new();
    let p = provider.clone();
    let props = Props::from_producer(move || Cart { provider: p.clone(), state: None });
    let pid = system.root().spawn(props.clone());
    for item in ["apple", "pear"] {
        let _: usize = system.root().request_future(&pid, Put(item), TIMEOUT).await.expect("put");
    }
    system.root().stop_future(&pid).await;
    let pid = system.root().spawn(props);
    let len: usize = system.root().request_future(&pid, Put("plum"), TIMEOUT).await.expect("put");
    assert_eq!(len, 3, "the saved cart was loaded on start");
    assert_eq!(provider.get_events("cart", 0).await.expect("read").len(), 1, "old versions deleted");
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_members_racing_on_one_grain_exactly_one_activation_survives_and_no_ack_is_lost() {
    use protoactor_persistence::SqliteProvider;
    // Two members (actor systems) with their own connection to one SQLite
    // file, each with an activation of the same grain, both under load.
    let dir = protoactor_testkit::service::temp_dir("race-members").expect("temp dir");
    let path = dir.join("journal.db");
    let members = [ActorSystem::new(), ActorSystem::new()];
    let mut pids = Vec::new();
    for system in &members {
        let provider: Arc<dyn Provider> = Arc::new(SqliteProvider::open(&path).await.expect("open"));
        pids.push(system.root().spawn(counter(&provider, "grain-7", SnapshotPolicy::every(10))));
    }
    let mut requests = Vec::new();
    for _ in 0..50 {
        for (member, (system, pid)) in members.iter().zip(&pids).enumerate() {
            let (root, pid) = (system.root(), pid.clone());
            let request =
                tokio::spawn(
                    async move { root.request_future::<u64, _>(&pid, Add(1), Duration::from_secs(10)).await.ok() },
                );
            requests.push((member, request));
        }
    }
    wait_until("one activation stopped", || pids.iter().zip(&members).any(|(p, s)| !s.is_registered(p))).await;
    let alive: Vec<bool> = pids.iter().zip(&members).map(|(p, s)| s.is_registered(p)).collect();
    assert_eq!(alive.iter().filter(|a| **a).count(), 1, "exactly one activation survives: {alive:?}");
    let winner = alive.iter().position(|a| *a).expect("a winner");
    // The survivor never failed a write, so it answered all its requests.
    // The other may have answered some before the survivor first wrote
    // (then the survivor recovered them); its failed request gets no answer.
    let mut acknowledged = Vec::new();
    let mut losers = Vec::new();
    for (member, request) in requests {
        if member == winner {
            acknowledged.push(request.await.expect("request task").expect("the surviving activation answers all"));
        } else {
            losers.push(request);
        }
    }
    let from_winner = acknowledged.len();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
    for request in losers {
        if let Ok(Ok(Some(total))) = tokio::time::timeout_at(deadline, request).await {
            acknowledged.push(total);
        }
    }
    assert_eq!(from_winner, 50, "the survivor acknowledged all its requests");
    acknowledged.sort_unstable();
    let n = acknowledged.len() as u64;
    assert_eq!(acknowledged, (1..=n).collect::<Vec<u64>>(), "every total acknowledged once: nothing overwritten");
    let check = SqliteProvider::open(&path).await.expect("open");
    let recovered =
        Journal::<Total>::recover(Arc::new(check), "grain-7", SnapshotPolicy::none()).await.expect("recover");
    assert_eq!(recovered.state().0, n, "the stored journal holds exactly the acknowledged increments");
    for system in &members {
        system.shutdown().await;
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interval_policy_snapshots_on_persist_and_on_tick_once_the_interval_passed() {
    let provider: Arc<dyn Provider> = Arc::new(InMemoryProvider::new());
    let mut journal =
        Journal::<Total>::recover(provider.clone(), "timer", SnapshotPolicy::none().and_interval(Duration::ZERO))
            .await
            .expect("recover");
    journal.persist(Added(1)).await.expect("persist");
    assert_eq!(provider.get_snapshot("timer").await.expect("read").map(|s| s.index), Some(1), "due on persist");

    let mut journal = Journal::<Total>::recover(
        provider.clone(),
        "timer-2",
        SnapshotPolicy::every(1000).and_interval(Duration::from_secs(3600)),
    )
    .await
    .expect("recover");
    journal.persist(Added(1)).await.expect("persist");
    journal.tick().await.expect("tick");
    assert!(provider.get_snapshot("timer-2").await.expect("read").is_none(), "not due before the interval");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_covered_events_keeps_recovery_whole_and_stale_writers_out() {
    let provider: Arc<dyn Provider> = Arc::new(InMemoryProvider::new());
    let policy = SnapshotPolicy::every(5).and_delete_covered();
    let mut journal = Journal::<Total>::recover(provider.clone(), "compact", policy).await.expect("recover");
    for n in 1..=12 {
        journal.persist(Added(n)).await.expect("persist");
    }
    let left: Vec<u64> = provider.get_events("compact", 0).await.expect("read").iter().map(|e| e.index).collect();
    assert_eq!(left, vec![10, 11], "events covered by the snapshot at 10 are deleted");
    assert_eq!(provider.get_snapshot("compact").await.expect("read").map(|s| s.index), Some(10));
    let recovered =
        Journal::<Total>::recover(provider.clone(), "compact", SnapshotPolicy::none()).await.expect("recover");
    assert_eq!((recovered.state().0, recovered.next_index()), ((1..=12).sum(), 12), "snapshot + tail");
    let stale = provider.append_events("compact", 3, vec![b"{}".to_vec()]).await.expect_err("stale index");
    assert!(stale.is_conflict(), "a deleted index is not free again: {stale}");
}
