//! Local hot paths, on the workloads `bench-peers` runs for actix, ractor,
//! kameo, xtra and coerce (see ../shared/bench-peers/README.md), plus the raw
//! floor (bare tokio mpsc + oneshot) in the same file.
//!
//! Every workload runs on a 2-worker tokio runtime with the sender on the
//! main thread (`block_on`), like the peers. Sizes follow the peers at scale
//! 1; `PEERS_SCALE=0.05` shrinks them for a smoke run.
//!
//! `cargo bench -p protoactor-actor --bench local`
//! Spawn also prints peak RSS and bytes per idle actor to stderr.
//!
//! `ONCE=<workload>` (tell-throughput, tell-raw, ask-latency, ask-parked
//! (the request spin off), ask-raw,
//! ping-pong-pairs, spawn, fan-out; `-raw` is the tokio floor) skips
//! criterion, runs that workload once and prints one `workload system value
//! unit` line, as the peers binary does: `scripts/compare-peers.sh`
//! alternates the two to compare them in the same minutes.

#![forbid(unsafe_code)]
#![allow(missing_docs)] // criterion's macros generate undocumented items

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use protoactor_actor::ActorSystemConfig;
use protoactor_actor::prelude::*;
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, oneshot};

fn scale(n: usize) -> usize {
    let s: f64 = std::env::var("PEERS_SCALE").ok().and_then(|v| v.parse().ok()).unwrap_or(1.0);
    ((n as f64) * s).max(1.0) as usize
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime")
}

/// Fires once with the time it was fired.
#[derive(Clone)]
struct Latch(Arc<parking_lot::Mutex<Option<oneshot::Sender<Instant>>>>);

impl Latch {
    fn new() -> (Self, oneshot::Receiver<Instant>) {
        let (tx, rx) = oneshot::channel();
        (Latch(Arc::new(parking_lot::Mutex::new(Some(tx)))), rx)
    }
    fn fire(&self) {
        if let Some(tx) = self.0.lock().take() {
            let _ = tx.send(Instant::now());
        }
    }
}

// ---------- tell ----------

struct Add(u64);

struct Summer {
    sum: u64,
    count: usize,
    n: usize,
    latch: Latch,
}

impl Actor for Summer {
    async fn receive(&mut self, ctx: &mut Context) -> ActorResult {
        if let Some(Add(v)) = ctx.message::<Add>() {
            self.sum = self.sum.wrapping_add(*v);
            self.count += 1;
            if self.count == self.n {
                self.latch.fire();
            }
        }
        Ok(())
    }
}

fn tell_once(rt: &Runtime, n: usize) -> Duration {
    rt.block_on(async {
        let system = ActorSystem::new();
        let (latch, rx) = Latch::new();
        let pid =
            system.root().spawn(Props::from_producer(move || Summer { sum: 0, count: 0, n, latch: latch.clone() }));
        let root = system.root();
        let start = Instant::now();
        for i in 0..n as u64 {
            root.send(&pid, Add(i));
        }
        let end = rx.await.expect("latch");
        system.shutdown().await;
        end - start
    })
}

fn tell_raw_once(rt: &Runtime, n: usize) -> Duration {
    rt.block_on(async {
        let (tx, mut rx) = mpsc::unbounded_channel::<Add>();
        let (ltx, lrx) = oneshot::channel();
        tokio::spawn(async move {
            let (mut sum, mut count) = (0u64, 0usize);
            while let Some(Add(v)) = rx.recv().await {
                sum = sum.wrapping_add(v);
                count += 1;
                if count == n {
                    let _ = ltx.send(Instant::now());
                    break;
                }
            }
            std::hint::black_box(sum);
        });
        let start = Instant::now();
        for i in 0..n as u64 {
            let _ = tx.send(Add(i));
        }
        lrx.await.expect("latch") - start
    })
}

// ---------- ask ----------

struct Accumulator(u64);

impl Actor for Accumulator {
    async fn receive(&mut self, ctx: &mut Context) -> ActorResult {
        if let Some(Add(v)) = ctx.message::<Add>() {
            self.0 = self.0.wrapping_add(*v);
            ctx.respond(self.0);
        }
        Ok(())
    }
}

/// `spin`: whether the system keeps `main` busy while it waits (the default;
/// see `ActorSystemConfig::with_request_spin`) or parks it at once.
fn ask_once(rt: &Runtime, n: usize, spin: bool) -> Duration {
    rt.block_on(async {
        let system = if spin {
            ActorSystem::new()
        } else {
            ActorSystem::with_config(ActorSystemConfig::default().with_request_spin(Duration::ZERO))
        };
        let pid = system.root().spawn(Props::from_producer(|| Accumulator(0)));
        let root = system.root();
        let start = Instant::now();
        for i in 0..n as u64 {
            let sum: u64 = root.request_future(&pid, Add(i), Duration::from_secs(5)).await.expect("reply");
            std::hint::black_box(sum);
        }
        let elapsed = start.elapsed();
        system.shutdown().await;
        elapsed
    })
}

fn ask_raw_once(rt: &Runtime, n: usize) -> Duration {
    rt.block_on(async {
        let (tx, mut rx) = mpsc::unbounded_channel::<(u64, oneshot::Sender<u64>)>();
        tokio::spawn(async move {
            let mut sum = 0u64;
            while let Some((v, reply)) = rx.recv().await {
                sum = sum.wrapping_add(v);
                let _ = reply.send(sum);
            }
        });
        let start = Instant::now();
        for i in 0..n as u64 {
            let (rtx, rrx) = oneshot::channel();
            let _ = tx.send((i, rtx));
            std::hint::black_box(rrx.await.expect("reply"));
        }
        start.elapsed()
    })
}

// ---------- ping-pong pairs ----------

struct Partner(Pid);
struct Ping(u64);

struct Player {
    partner: Option<Pid>,
    done: Arc<AtomicUsize>,
    pairs: usize,
    latch: Latch,
}

impl Actor for Player {
    async fn receive(&mut self, ctx: &mut Context) -> ActorResult {
        if let Some(Ping(k)) = ctx.message::<Ping>() {
            let k = *k;
            if k <= 1 {
                if self.done.fetch_add(1, Ordering::AcqRel) + 1 == self.pairs {
                    self.latch.fire();
                }
            } else if let Some(partner) = &self.partner {
                ctx.send(partner, Ping(k - 1));
            }
        } else if let Some(Partner(p)) = ctx.message::<Partner>() {
            self.partner = Some(p.clone());
        }
        Ok(())
    }
}

fn ping_pong_once(rt: &Runtime, total: usize) -> Duration {
    let pairs = 2 * std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let per_pair = (total / pairs) as u64;
    rt.block_on(async {
        let system = ActorSystem::new();
        let (latch, rx) = Latch::new();
        let done = Arc::new(AtomicUsize::new(0));
        let root = system.root();
        let mut heads = Vec::new();
        for _ in 0..pairs {
            let make = {
                let (done, latch) = (done.clone(), latch.clone());
                move || Player { partner: None, done: done.clone(), pairs, latch: latch.clone() }
            };
            let a = root.spawn(Props::from_producer(make.clone()));
            let b = root.spawn(Props::from_producer(make));
            root.send(&a, Partner(b.clone()));
            root.send(&b, Partner(a.clone()));
            heads.push(a);
        }
        // Partners are set before the first ping: the mailbox is FIFO per sender.
        let start = Instant::now();
        for a in &heads {
            root.send(a, Ping(per_pair));
        }
        let end = rx.await.expect("latch");
        system.shutdown().await;
        end - start
    })
}

// ---------- spawn ----------

struct Hit;

struct OneShot {
    remaining: Arc<AtomicUsize>,
    latch: Latch,
}

impl Actor for OneShot {
    async fn receive(&mut self, ctx: &mut Context) -> ActorResult {
        if ctx.message_is::<Hit>() {
            if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
                self.latch.fire();
            }
            ctx.stop(ctx.self_pid());
        }
        Ok(())
    }
}

fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn spawn_once(rt: &Runtime, n: usize, report_memory: bool) -> Duration {
    rt.block_on(async {
        let system = ActorSystem::new();
        let (latch, rx) = Latch::new();
        let remaining = Arc::new(AtomicUsize::new(n));
        let props = {
            let (remaining, latch) = (remaining.clone(), latch.clone());
            Props::from_producer(move || OneShot { remaining: remaining.clone(), latch: latch.clone() })
        };
        let root = system.root();
        let rss_before = rss_kib("VmRSS:");
        let start = Instant::now();
        let pids: Vec<Pid> = (0..n).map(|_| root.spawn(props.clone())).collect();
        if report_memory {
            // Not timed: lets every actor handle `Started` and park, to read what
            // an idle actor costs.
            let spawned = start.elapsed();
            tokio::time::sleep(Duration::from_millis(300)).await;
            let idle = rss_kib("VmRSS:").saturating_sub(rss_before) as f64 * 1024.0 / n as f64;
            eprintln!("spawn: {idle:.0} bytes per idle actor (RSS after spawning {n}, spawn phase {spawned:?})");
        }
        for pid in &pids {
            root.send(pid, Hit);
        }
        let end = rx.await.expect("latch");
        if report_memory {
            let hwm = rss_kib("VmHWM:");
            eprintln!(
                "spawn: peak RSS {:.0} MiB, {:.0} bytes per actor by high-water mark ({} actors)",
                hwm as f64 / 1024.0,
                (hwm.saturating_sub(rss_before)) as f64 * 1024.0 / n as f64,
                n
            );
        }
        drop(pids);
        system.shutdown().await;
        end - start
    })
}

// ---------- fan-out ----------

struct Counted {
    received: usize,
    per_actor: usize,
    remaining: Arc<AtomicUsize>,
    latch: Latch,
}

impl Actor for Counted {
    async fn receive(&mut self, ctx: &mut Context) -> ActorResult {
        if ctx.message_is::<Hit>() {
            self.received += 1;
            if self.received == self.per_actor && self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
                self.latch.fire();
            }
        }
        Ok(())
    }
}

fn fan_out_once(rt: &Runtime, actors: usize, per_actor: usize) -> Duration {
    rt.block_on(async {
        let system = ActorSystem::new();
        let (latch, rx) = Latch::new();
        let remaining = Arc::new(AtomicUsize::new(actors));
        let props = {
            let (remaining, latch) = (remaining.clone(), latch.clone());
            Props::from_producer(move || Counted {
                received: 0,
                per_actor,
                remaining: remaining.clone(),
                latch: latch.clone(),
            })
        };
        let root = system.root();
        let pids: Vec<Pid> = (0..actors).map(|_| root.spawn(props.clone())).collect();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let start = Instant::now();
        for _ in 0..per_actor {
            for pid in &pids {
                root.send(pid, Hit);
            }
        }
        let end = rx.await.expect("latch");
        system.shutdown().await;
        end - start
    })
}

// ---------- criterion wiring ----------

fn timed(iters: u64, mut f: impl FnMut() -> Duration) -> Duration {
    (0..iters).map(|_| f()).sum()
}

fn benches(c: &mut Criterion) {
    let rt = runtime();
    let tell_n = scale(2_000_000);
    let ask_n = scale(200_000);
    let pp_n = scale(2_000_000);
    let spawn_n = scale(200_000);
    let fan_actors = scale(10_000);

    if let Ok(workload) = std::env::var("ONCE") {
        let rate = |n: usize, d: Duration| n as f64 / d.as_secs_f64();
        let (name, system, value, unit) = match workload.as_str() {
            "tell-throughput" => (workload.as_str(), "protoactor", rate(tell_n, tell_once(&rt, tell_n)), "msgs/s"),
            "tell-raw" => ("tell-throughput", "tokio-mpsc", rate(tell_n, tell_raw_once(&rt, tell_n)), "msgs/s"),
            "ask-latency" => (workload.as_str(), "protoactor", rate(ask_n, ask_once(&rt, ask_n, true)), "rt/s"),
            "ask-parked" => ("ask-latency", "protoactor-parked", rate(ask_n, ask_once(&rt, ask_n, false)), "rt/s"),
            "ask-raw" => ("ask-latency", "tokio-mpsc", rate(ask_n, ask_raw_once(&rt, ask_n)), "rt/s"),
            "ping-pong-pairs" => (workload.as_str(), "protoactor", rate(pp_n, ping_pong_once(&rt, pp_n)), "msgs/s"),
            "spawn" => (workload.as_str(), "protoactor", rate(spawn_n, spawn_once(&rt, spawn_n, false)), "actors/s"),
            "fan-out" => {
                (workload.as_str(), "protoactor", rate(fan_actors * 100, fan_out_once(&rt, fan_actors, 100)), "msgs/s")
            }
            other => panic!("ONCE={other}: not a workload of this bench (see the file's header)"),
        };
        println!("{name} {system} {value:.0} {unit}");
        return;
    }

    let mut g = c.benchmark_group("local");
    g.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(8));

    g.throughput(Throughput::Elements(tell_n as u64));
    g.bench_function("tell-throughput/protoactor", |b| b.iter_custom(|i| timed(i, || tell_once(&rt, tell_n))));
    g.bench_function("tell-throughput/tokio-mpsc", |b| b.iter_custom(|i| timed(i, || tell_raw_once(&rt, tell_n))));

    g.throughput(Throughput::Elements(ask_n as u64));
    g.bench_function("ask-latency/protoactor", |b| b.iter_custom(|i| timed(i, || ask_once(&rt, ask_n, true))));
    g.bench_function("ask-latency/protoactor-parked", |b| b.iter_custom(|i| timed(i, || ask_once(&rt, ask_n, false))));
    g.bench_function("ask-latency/tokio-mpsc", |b| b.iter_custom(|i| timed(i, || ask_raw_once(&rt, ask_n))));

    g.throughput(Throughput::Elements(pp_n as u64));
    g.bench_function("ping-pong-pairs/protoactor", |b| b.iter_custom(|i| timed(i, || ping_pong_once(&rt, pp_n))));

    g.throughput(Throughput::Elements(spawn_n as u64));
    spawn_once(&rt, spawn_n, true);
    g.bench_function("spawn/protoactor", |b| b.iter_custom(|i| timed(i, || spawn_once(&rt, spawn_n, false))));

    g.throughput(Throughput::Elements((fan_actors * 100) as u64));
    g.bench_function("fan-out/protoactor", |b| b.iter_custom(|i| timed(i, || fan_out_once(&rt, fan_actors, 100))));
    g.finish();
}

criterion_group!(local, benches);
criterion_main!(local);
