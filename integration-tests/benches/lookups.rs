//! Identity lookups side by side, three members in one process over
//! loopback: partition, Redis (a `redis-server` started for the run) and
//! MongoDB (the SecantusDB stand-in, or `MONGODB_URI`).
//!
//! - cached-request: `cluster.request` to a grain on another member whose
//!   pid is cached (the lookup is not consulted: should cost the same for all).
//! - first-request: one request to a fresh identity (lookup + activation
//!   latency), sequential.
//! - activations: first requests for fresh identities, concurrently from all
//!   three members (activations per second).
//!
//! `cargo bench -p protoactor-integration-tests --bench lookups -- --measurement-time 3`

#![allow(missing_docs, clippy::expect_used, clippy::unwrap_used)] // criterion's macros generate undocumented items

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use protoactor_actor::prelude::*;
use protoactor_cluster::{Cluster, ClusterConfig, IdentityLookup, InMemoryAgent, InMemoryProvider, Kind};
use protoactor_identity_lookup_mongo::MongoIdentityLookup;
use protoactor_identity_lookup_partition::PartitionIdentityLookup;
use protoactor_identity_lookup_redis::RedisIdentityLookup;
use protoactor_remote::RemoteConfig;
use protoactor_testkit::mongo::MongoServer;
use protoactor_testkit::redis::RedisServer;
use tokio::runtime::Runtime;

#[derive(Clone, PartialEq, prost::Message)]
struct Req {
    #[prost(uint64, tag = "1")]
    n: u64,
}
impl prost::Name for Req {
    const NAME: &'static str = "Req";
    const PACKAGE: &'static str = "bench";
}

const KIND: &str = "echo";

fn size(full: usize) -> usize {
    if std::env::args().any(|a| a == "--bench") { full } else { (full / 50).max(10) }
}

fn config(agent: &InMemoryAgent, name: &str, lookup: impl IdentityLookup) -> ClusterConfig {
    let echo = Props::from_fn(|ctx| {
        if let Some(r) = ctx.message::<Req>() {
            ctx.respond(r.clone());
        }
        Ok(())
    });
    ClusterConfig::new(name, InMemoryProvider::new(agent), lookup)
        .with_remote(RemoteConfig::bind("127.0.0.1", 0).with_protobuf::<Req>())
        .with_kind(Kind::new(KIND, echo))
}

async fn three_members<L: IdentityLookup>(name: &str, make: &impl Fn() -> L) -> Vec<Cluster> {
    let agent = InMemoryAgent::new();
    let mut members = Vec::new();
    for _ in 0..3 {
        let c = Cluster::new(&ActorSystem::new(), config(&agent, name, make())).expect("config");
        c.start_member().await.expect("member starts");
        members.push(c);
    }
    for m in &members {
        assert!(m.member_list().wait_for(Duration::from_secs(10), |t| t.members.len() == 3).await);
    }
    members
}

async fn fan(members: &[Cluster], total: usize, concurrency: usize, id: impl Fn(usize) -> String) {
    let mut tasks = tokio::task::JoinSet::new();
    let per = total.div_ceil(concurrency);
    for w in 0..concurrency {
        let member = members[w % members.len()].clone();
        let ids: Vec<String> = (0..per).map(|i| w * per + i).filter(|&k| k < total).map(&id).collect();
        tasks.spawn(async move {
            for identity in ids {
                let _: Req = member.request(&identity, KIND, Req { n: 1 }).await.expect("reply");
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("requester task");
    }
}

fn bench_lookup<L: IdentityLookup>(
    c: &mut Criterion,
    rt: &Runtime,
    label: &str,
    (batch, concurrency): (usize, usize),
    make: impl Fn() -> L,
) {
    let name = format!("bench-{label}-{}", std::process::id());
    let members = rt.block_on(three_members(&name, &make));
    let a = members[0].clone();
    let identity = rt.block_on(async {
        for i in 0.. {
            let id = format!("remote-{i}");
            if a.get(&id, KIND).await.expect("pid").address() != &*a.address() {
                return id;
            }
        }
        unreachable!()
    });
    let mut group = c.benchmark_group(format!("lookup/{label}"));
    group.measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    group.throughput(Throughput::Elements(1));
    group.bench_function("cached-request", |b| {
        b.iter(|| rt.block_on(async { a.request::<Req, _>(&identity, KIND, Req { n: 1 }).await.expect("reply") }))
    });
    let fresh = AtomicU64::new(0);
    group.bench_function("first-request", |b| {
        b.iter(|| {
            let k = fresh.fetch_add(1, Ordering::Relaxed);
            rt.block_on(async { a.request::<Req, _>(&format!("first-{k}"), KIND, Req { n: 1 }).await.expect("reply") })
        })
    });
    let batch = size(batch);
    group.throughput(Throughput::Elements(batch as u64));
    group.sample_size(10);
    group.bench_function("activations", |b| {
        b.iter_batched(
            || fresh.fetch_add(1, Ordering::Relaxed),
            |round| rt.block_on(fan(&members, batch, concurrency, |k| format!("new-{round}-{k}"))),
            BatchSize::PerIteration,
        )
    });
    group.finish();
    rt.block_on(async {
        for m in members {
            m.shutdown(false).await;
        }
    });
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    bench_lookup(c, &rt, "partition", (2_000, 200), PartitionIdentityLookup::new);
    let redis = RedisServer::start().unwrap_or_else(|e| panic!("{e}"));
    let url = redis.url();
    bench_lookup(c, &rt, "redis", (2_000, 200), || RedisIdentityLookup::new(&url).expect("url"));
    let mongo = MongoServer::start().unwrap_or_else(|e| panic!("{e}"));
    let uri = mongo.uri().to_string();
    // The stand-in is a Python server: fewer requests in flight keep each
    // within its deadline.
    bench_lookup(c, &rt, "mongo", (300, 20), || MongoIdentityLookup::new(&uri));
}

criterion_group!(lookups, benches);
criterion_main!(lookups);
