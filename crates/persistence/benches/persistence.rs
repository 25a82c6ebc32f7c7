//! Persisted events per second, recovery time of 10k events with and
//! without a snapshot (per provider), and the cost of an in-memory-persisted
//! actor against a plain one.
//!
//! `cargo bench -p protoactor-persistence` (PostgreSQL is started by the
//! testkit; it must be installed: `apt-get install postgresql`).

#![allow(missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use protoactor_actor::prelude::*;
use protoactor_persistence::{
    EventSourced, InMemoryProvider, Journal, PostgresProvider, Provider, Snapshot, SnapshotPolicy, SqliteProvider,
};
use protoactor_testkit::postgres::PostgresServer;
use protoactor_testkit::service::temp_dir;
use serde::{Deserialize, Serialize};

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

const RECOVERY_EVENTS: u64 = 10_000;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

struct Providers {
    list: Vec<(&'static str, Arc<dyn Provider>)>,
    _pg: PostgresServer,
    dir: std::path::PathBuf,
}

fn providers(rt: &tokio::runtime::Runtime) -> Providers {
    let pg = PostgresServer::start().unwrap_or_else(|e| panic!("{e}"));
    let dir = temp_dir("bench-sqlite").expect("temp dir");
    let list = rt.block_on(async {
        let sqlite = SqliteProvider::open(dir.join("bench.db")).await.expect("sqlite");
        let postgres = PostgresProvider::connect(pg.connection_string()).await.expect("postgres");
        vec![
            ("memory", Arc::new(InMemoryProvider::new()) as Arc<dyn Provider>),
            ("sqlite", Arc::new(sqlite)),
            ("postgres", Arc::new(postgres)),
        ]
    });
    Providers { list, _pg: pg, dir }
}

fn persist(c: &mut Criterion) {
    let rt = runtime();
    let providers = providers(&rt);
    let mut group = c.benchmark_group("persist_one_event");
    for (name, provider) in &providers.list {
        let mut n = 0u64;
        group.bench_function(*name, |b| {
            b.to_async(&rt).iter_custom(|iters| {
                n += 1;
                let id = format!("persist-{n}");
                let provider = provider.clone();
                async move {
                    let mut journal =
                        Journal::<Total>::recover(provider, id, SnapshotPolicy::none()).await.expect("recover");
                    let start = Instant::now();
                    for i in 0..iters {
                        journal.persist(Added(i)).await.expect("persist");
                    }
                    start.elapsed()
                }
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("recover_10k_events");
    for (name, provider) in &providers.list {
        rt.block_on(async {
            let payloads: Vec<Vec<u8>> =
                (0..RECOVERY_EVENTS).map(|i| serde_json::to_vec(&Added(i)).expect("encode")).collect();
            for chunk in 0..10u64 {
                let batch = payloads[(chunk * 1000) as usize..((chunk + 1) * 1000) as usize].to_vec();
                provider.append_events("recover-plain", chunk * 1000, batch.clone()).await.expect("seed");
                provider.append_events("recover-snap", chunk * 1000, batch).await.expect("seed");
            }
            // A snapshot 100 events before the end: recovery reads it and a short tail.
            let state = Total((0..RECOVERY_EVENTS - 100).sum());
            let payload = serde_json::to_vec(&state).expect("encode");
            provider
                .save_snapshot("recover-snap", Snapshot { index: RECOVERY_EVENTS - 100, payload })
                .await
                .expect("snapshot");
        });
        for (label, id) in [("no_snapshot", "recover-plain"), ("snapshot_tail_100", "recover-snap")] {
            group.bench_function(format!("{name}/{label}"), |b| {
                b.to_async(&rt).iter(|| {
                    let provider = provider.clone();
                    async move {
                        let journal =
                            Journal::<Total>::recover(provider, id, SnapshotPolicy::none()).await.expect("recover");
                        assert_eq!(journal.next_index(), RECOVERY_EVENTS);
                    }
                })
            });
        }
    }
    group.finish();
    let _ = std::fs::remove_dir_all(&providers.dir);
}

struct Add(u64);

struct Plain(u64);
impl Actor for Plain {
    async fn receive(&mut self, ctx: &mut Context) -> ActorResult {
        if let Some(Add(n)) = ctx.message::<Add>() {
            self.0 += n;
            ctx.respond(self.0);
        }
        Ok(())
    }
}

struct Persisted {
    provider: Arc<dyn Provider>,
    journal: Option<Journal<Total>>,
}
impl Actor for Persisted {
    async fn receive(&mut self, ctx: &mut Context) -> ActorResult {
        if ctx.message_is::<Started>() {
            let id = ctx.self_pid().id().to_string();
            self.journal =
                Some(Journal::recover_in(ctx, self.provider.clone(), id, SnapshotPolicy::every(1000)).await?);
        } else if let Some(Add(n)) = ctx.message::<Add>() {
            let n = *n;
            let journal = self.journal.as_mut().ok_or_else(|| ActorError::msg("not recovered"))?;
            journal.persist(Added(n)).await?;
            ctx.respond(journal.state().0);
        }
        Ok(())
    }
}

fn actor_overhead(c: &mut Criterion) {
    let rt = runtime();
    let system = rt.block_on(async { ActorSystem::new() });
    let provider: Arc<dyn Provider> = Arc::new(InMemoryProvider::new());
    let plain = system.root().spawn(Props::from_producer(|| Plain(0)));
    let p = provider.clone();
    let persisted = system.root().spawn(Props::from_producer(move || Persisted { provider: p.clone(), journal: None }));
    let mut group = c.benchmark_group("actor_request");
    for (name, pid) in [("plain", &plain), ("persisted_in_memory", &persisted)] {
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                let _: u64 = system.root().request_future(pid, Add(1), Duration::from_secs(5)).await.expect("answer");
            })
        });
    }
    group.finish();
    rt.block_on(system.shutdown());
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    targets = persist, actor_overhead
}
criterion_main!(benches);
