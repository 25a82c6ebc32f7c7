//! Persisted grains (protoactor-persistence, SQLite) across a member kill:
//! under load, a member stops abruptly; its grains are activated again on
//! the survivors, recover their journals and keep counting. At the end every
//! grain's stored count equals the increments its callers saw acknowledged:
//! none lost, none counted twice (retried requests carry the same id).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use protoactor_actor::prelude::*;
use protoactor_cluster::{Cluster, GrainContext, InMemoryAgent, InMemoryProvider, Kind};
use protoactor_integration_tests::churn::{identities, shutdown_all};
use protoactor_integration_tests::*;
use protoactor_persistence::{EventSourced, Journal, Provider, SnapshotPolicy, SqliteProvider};
use serde::{Deserialize, Serialize};

const GRAINS: usize = 40;
const KIND: &str = "pcounter";

/// Counts one more, once per request id.
#[derive(Clone, PartialEq, ::prost::Message)]
struct PInc {
    #[prost(uint64, tag = "1")]
    request: u64,
}
impl ::prost::Name for PInc {
    const NAME: &'static str = "PInc";
    const PACKAGE: &'static str = "tests";
    fn full_name() -> String {
        "tests.PInc".into()
    }
}

/// The grain's count after the increment, and its member.
#[derive(Clone, PartialEq, ::prost::Message)]
struct PCount {
    #[prost(uint64, tag = "1")]
    count: u64,
    #[prost(string, tag = "2")]
    member: String,
}
impl ::prost::Name for PCount {
    const NAME: &'static str = "PCount";
    const PACKAGE: &'static str = "tests";
    fn full_name() -> String {
        "tests.PCount".into()
    }
}

#[derive(Default, Serialize, Deserialize)]
struct Count {
    count: u64,
    recent: VecDeque<u64>,
}

#[derive(Serialize, Deserialize)]
struct Incremented(u64);

impl EventSourced for Count {
    type Event = Incremented;
    fn apply(&mut self, event: &Incremented) {
        self.count += 1;
        self.recent.push_back(event.0);
        if self.recent.len() > 32 {
            self.recent.pop_front();
        }
    }
}

struct PersistedCounter {
    store: Arc<dyn Provider>,
    journal: Option<Journal<Count>>,
}

impl Actor for PersistedCounter {
    async fn receive(&mut self, ctx: &mut Context) -> ActorResult {
        if ctx.message_is::<Started>() {
            let id = ctx.cluster_identity().map(|i| i.identity.clone()).unwrap_or_default();
            let policy = SnapshotPolicy::every(20).and_on_stop();
            self.journal = Some(Journal::recover_in(ctx, self.store.clone(), id, policy).await?);
        } else if let Some(PInc { request }) = ctx.message::<PInc>() {
            let request = *request;
            let journal = self.journal.as_mut().ok_or_else(|| ActorError::msg("not recovered"))?;
            if !journal.state().recent.contains(&request) {
                journal.persist(Incremented(request)).await?;
            }
            ctx.respond(PCount { count: journal.state().count, member: ctx.system().address().to_string() });
        } else if ctx.message_is::<Stopping>()
            && let Some(journal) = self.journal.as_mut()
        {
            journal.on_stopping().await?;
        }
        Ok(())
    }
}

async fn member(agent: &InMemoryAgent, path: &std::path::Path) -> Cluster {
    // Each member has its own connection to the shared file, as separate
    // machines would have to a shared database.
    let store: Arc<dyn Provider> = Arc::new(SqliteProvider::open(path).await.expect("open the store"));
    let kind = Kind::new(KIND, Props::from_producer(move || PersistedCounter { store: store.clone(), journal: None }));
    let config = config_from(InMemoryProvider::new(agent), test_lookup(), &[kind])
        .with_remote(test_remote().with_protobuf::<PInc>().with_protobuf::<PCount>());
    start_member(config).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persisted_grains_keep_counting_across_a_member_kill_and_lose_no_acknowledged_increment() {
    init_tracing();
    let dir = protoactor_testkit::service::temp_dir("persisted-grains").expect("temp dir");
    let path = dir.join("grains.db");
    let agent = InMemoryAgent::new();
    let (a, b, c) = tokio::join!(member(&agent, &path), member(&agent, &path), member(&agent, &path));
    assert!(wait_members(&[&a, &b, &c], 3).await, "three members");

    let ids = identities("pgrain", GRAINS);
    let acked: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
    let hosts: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let errors: Arc<Mutex<Vec<String>>> = Arc::default();
    let total = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let next_request = Arc::new(AtomicU64::new(1));
    let mut workers = Vec::new();
    for w in 0..8usize {
        let requester = if w % 2 == 0 { a.clone() } else { b.clone() };
        let (ids, acked, hosts, errors, total, stop, next_request) = (
            ids.clone(),
            acked.clone(),
            hosts.clone(),
            errors.clone(),
            total.clone(),
            stop.clone(),
            next_request.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut i = w;
            while !stop.load(Ordering::Relaxed) {
                let id = &ids[i % ids.len()];
                i += 8;
                let request = next_request.fetch_add(1, Ordering::Relaxed);
                match requester.request::<PCount, _>(id, KIND, PInc { request }).await {
                    Ok(reply) => {
                        *acked.lock().entry(id.clone()).or_default() += 1;
                        hosts.lock().insert(id.clone(), reply.member);
                        total.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => errors.lock().push(format!("{id}: {e}")),
                }
            }
        }));
    }

    let reached = |n: u64| {
        let total = total.clone();
        move || total.load(Ordering::Relaxed) >= n
    };
    assert!(wait_until(Duration::from_secs(30), reached(400)).await, "the load runs before the kill");
    let victim = c.address().to_string();
    let on_victim = hosts.lock().values().filter(|m| **m == victim).count();
    assert!(on_victim > 0, "some grains live on the member to be killed");
    let victim_id = c.id().to_string();
    tokio::time::timeout(Duration::from_secs(10), c.shutdown(false)).await.expect("abrupt stop in time");
    agent.deregister(&victim_id);
    let after_kill = total.load(Ordering::Relaxed);
    assert!(wait_until(Duration::from_secs(30), reached(after_kill + 400)).await, "the load goes on after the kill");
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.expect("worker");
    }

    let errors = errors.lock().clone();
    assert!(errors.is_empty(), "every request answered: {:?}", &errors[..errors.len().min(5)]);
    assert!(hosts.lock().values().all(|m| *m != victim), "every grain answers from a survivor");
    let check: Arc<dyn Provider> = Arc::new(SqliteProvider::open(&path).await.expect("open"));
    let acked = acked.lock().clone();
    assert_eq!(acked.len(), GRAINS, "every grain was incremented");
    for (id, n) in &acked {
        let journal =
            Journal::<Count>::recover(check.clone(), id.clone(), SnapshotPolicy::none()).await.expect("recover");
        assert_eq!(journal.state().count, *n, "{id}: stored count = acknowledged increments");
    }
    shutdown_all([a, b]).await;
    let _ = std::fs::remove_dir_all(dir);
}
