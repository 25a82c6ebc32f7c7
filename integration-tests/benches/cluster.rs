//! Cluster hot paths, three members in one process over loopback.
//!
//! - cached-request: `cluster.request` to a grain that lives on another
//!   member (its pid already cached) against a plain remote
//!   `request_future` to the same pid, sequential round trips.
//! - activation: new grains per second, first requests for fresh identities
//!   issued concurrently from all three members.
//! - throughput-10k: 10,000 activated grains; concurrent requests to random
//!   ones from all three members.
//!
//! `cargo bench -p protoactor-integration-tests --bench cluster`

#![forbid(unsafe_code)]
#![allow(missing_docs)] // criterion's macros generate undocumented items

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use protoactor_actor::prelude::*;
use protoactor_cluster::{Cluster, ClusterConfig, InMemoryAgent, InMemoryProvider, Kind};
use protoactor_identity_lookup_partition::PartitionIdentityLookup;
use protoactor_remote::RemoteConfig;
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

#[derive(Clone, PartialEq, prost::Message)]
struct Resp {
    #[prost(uint64, tag = "1")]
    n: u64,
}
impl prost::Name for Resp {
    const NAME: &'static str = "Resp";
    const PACKAGE: &'static str = "bench";
}

const KIND: &str = "echo";
const CONCURRENCY: usize = 300;

/// `cargo test --all-targets` runs benches once in test mode (no `--bench`
/// argument): use small sizes there, the full ones under `cargo bench`.
fn size(full: usize) -> usize {
    if std::env::args().any(|a| a == "--bench") { full } else { (full / 50).max(10) }
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime")
}

fn config(agent: &InMemoryAgent) -> ClusterConfig {
    let echo = Props::from_fn(|ctx| {
        if let Some(r) = ctx.message::<Req>() {
            ctx.respond(Resp { n: r.n });
        }
        Ok(())
    });
    ClusterConfig::new("bench", InMemoryProvider::new(agent), PartitionIdentityLookup::new())
        .with_remote(RemoteConfig::bind("127.0.0.1", 0).with_protobuf::<Req>().with_protobuf::<Resp>())
        .with_kind(Kind::new(KIND, echo))
}

async fn three_members() -> Vec<Cluster> {
    let agent = InMemoryAgent::new();
    let mut members = Vec::new();
    for _ in 0..3 {
        let c = Cluster::new(&ActorSystem::new(), config(&agent)).expect("config");
        c.start_member().await.expect("member starts");
        members.push(c);
    }
    for m in &members {
        assert!(m.member_list().wait_for(Duration::from_secs(10), |t| t.members.len() == 3).await);
    }
    members
}

/// Runs `total` requests, `CONCURRENCY` at a time, round-robin over the
/// members, to identities chosen by `id`.
async fn fan(members: &[Cluster], total: usize, id: impl Fn(usize) -> String) {
    let mut tasks = tokio::task::JoinSet::new();
    let per = total.div_ceil(CONCURRENCY);
    let ids: Vec<Vec<String>> =
        (0..CONCURRENCY).map(|w| (0..per).map(|i| w * per + i).filter(|&k| k < total).map(&id).collect()).collect();
    for (w, ids) in ids.into_iter().enumerate() {
        let member = members[w % members.len()].clone();
        tasks.spawn(async move {
            for (i, identity) in ids.into_iter().enumerate() {
                let r: Resp = member.request(&identity, KIND, Req { n: i as u64 }).await.expect("reply");
                assert_eq!(r.n, i as u64);
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("requester task");
    }
}

fn benches(c: &mut Criterion) {
    let rt = runtime();
    let members = rt.block_on(three_members());
    let a = members[0].clone();

    // A grain that lives elsewhere than on `a`.
    let (identity, pid) = rt.block_on(async {
        for i in 0.. {
            let id = format!("remote-{i}");
            let pid = a.get(&id, KIND).await.expect("pid");
            if pid.address() != &*a.address() {
                return (id, pid);
            }
        }
        unreachable!()
    });
    let mut group = c.benchmark_group("cluster");
    group.throughput(Throughput::Elements(1));
    group.bench_function("cached-request", |b| {
        b.iter(|| rt.block_on(async { a.request::<Resp, _>(&identity, KIND, Req { n: 1 }).await.expect("reply") }))
    });
    group.bench_function("plain-remote-request", |b| {
        let root = a.system().root();
        b.iter(|| {
            rt.block_on(async {
                root.request_future::<Resp, _>(&pid, Req { n: 1 }, Duration::from_secs(5)).await.expect("reply")
            })
        })
    });

    let fresh = AtomicU64::new(0);
    let batch = size(3_000);
    group.throughput(Throughput::Elements(batch as u64));
    group.sample_size(10);
    group.bench_function("activation", |b| {
        b.iter_batched(
            || fresh.fetch_add(1, Ordering::Relaxed),
            |round| rt.block_on(fan(&members, batch, |k| format!("new-{round}-{k}"))),
            BatchSize::PerIteration,
        )
    });

    let grains = size(10_000);
    rt.block_on(fan(&members, grains, |k| format!("g-{k}")));
    let requests = size(20_000);
    group.throughput(Throughput::Elements(requests as u64));
    group.bench_function("throughput-10k-grains", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                rt.block_on(fan(&members, requests, |k| format!("g-{}", (k * 7919) % grains)));
            }
            start.elapsed()
        })
    });
    group.finish();
    rt.block_on(async {
        for m in members {
            m.shutdown(false).await;
        }
    });
}

criterion_group!(cluster, benches);
criterion_main!(cluster);
