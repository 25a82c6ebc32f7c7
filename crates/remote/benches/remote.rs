//! Remoting hot paths against a bare tonic stream, in one process over
//! loopback (the `grpc-oneway` / `grpc-rtt` / `remote-*` workloads of
//! ../shared/bench-peers/README.md).
//!
//! Two actor systems with remoting share a 2-worker tokio runtime; the driver
//! runs on the main thread (`block_on`). The baseline is a bare tonic
//! bidirectional stream of the same `MessageBatch` / `MessageEnvelope` protos,
//! served by a trivial `Remoting` service defined here (it counts, or echoes).
//!
//! - oneway: 4 senders on the driver thread, N = 1,000,000 32-byte prost
//!   messages to one remote actor that counts them and fires a latch at N.
//!   Baseline: one client on the driver thread sending batches of 100
//!   envelopes, then a flush that the server acks.
//! - request-rtt: 20,000 sequential request/response round trips after 500
//!   warm-up ones. Baseline: one-envelope batches echoed on one stream.
//! - request-concurrent: 100 requesters, each doing sequential round trips,
//!   50,000 in total. Baseline: the same requesters share one echo stream
//!   through a batching writer task and a reader task that routes replies.
//!
//! `cargo bench -p protoactor-remote --bench remote`; `PEERS_SCALE=0.05` for a
//! smoke run. p50/p99 of the sequential round trips go to stderr, and so do
//! paired ratios (ours and the baseline run alternately, which cancels the
//! drift of a shared machine between criterion's benchmarks; `PAIRED=0`
//! skips them). `ONCE=<workload>[-bare]` (oneway, request-rtt,
//! request-concurrent) skips criterion and runs that one workload once,
//! printing its rate: for profiling or counting syscalls of one side alone.
//!
//! Two processes (the `remote-rtt` / `remote-tell` workloads of the peers, and
//! the peers' `tonic-2p`): `ONCE=rtt-2p`, `rtt-2p-bare`, `oneway-2p` or
//! `oneway-2p-bare` starts the server as a child process (this binary again,
//! with `SERVE` set) and runs the client here, written as a user would: its
//! own default-config `Remote`, `request_future` of a 32-byte message that an
//! actor echoes with `respond`, on a default multi-threaded runtime, awaited
//! in `block_on` (as `#[tokio::main]` does). `rtt-2p-task` runs the same
//! loop in a spawned task, as an actor or a task of the user's would;
//! `rtt-2p-parked` runs it in `block_on` with the system's request spin off
//! (`ActorSystemConfig::with_request_spin(Duration::ZERO)`). They
//! print `workload system value unit` lines like the peers' binary;
//! `scripts/remote-latency.sh` runs them against the peers in alternating
//! fresh-process rounds.

#![forbid(unsafe_code)]
#![allow(missing_docs)] // criterion's macros generate undocumented items

use std::io::{BufRead, BufReader, Read};
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures_util::Stream;
use prost::Message as _;
use protoactor_actor::ActorSystemConfig;
use protoactor_actor::prelude::*;
use protoactor_remote::proto::remote_message::MessageType;
use protoactor_remote::proto::remoting_client::RemotingClient;
use protoactor_remote::proto::remoting_server::{Remoting, RemotingServer};
use protoactor_remote::proto::{MessageBatch, MessageEnvelope, RemoteMessage};
use protoactor_remote::{Remote, RemoteConfig};
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::transport::Channel;
use tonic::{Request, Response, Status, Streaming};

const PAYLOAD: [u8; 32] = [0x5A; 32];
const TIMEOUT: Duration = Duration::from_secs(10);
const SENDERS: usize = 4;
const BARE_BATCH: usize = 100;
const WARM_UP_RTT: usize = 500;
const REQUESTERS: usize = 100;

fn scale(n: usize) -> usize {
    let s: f64 = std::env::var("PEERS_SCALE").ok().and_then(|v| v.parse().ok()).unwrap_or(1.0);
    ((n as f64) * s).max(1.0) as usize
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime")
}

// ---------- messages ----------

/// Fire-and-forget message: 32 bytes of payload.
#[derive(Clone, PartialEq, prost::Message)]
struct Tell {
    #[prost(bytes = "vec", tag = "1")]
    payload: Vec<u8>,
}

impl prost::Name for Tell {
    const NAME: &'static str = "Tell";
    const PACKAGE: &'static str = "bench";
}

/// Request, echoed back as the response.
#[derive(Clone, PartialEq, prost::Message)]
struct Ping {
    #[prost(bytes = "vec", tag = "1")]
    payload: Vec<u8>,
}

impl prost::Name for Ping {
    const NAME: &'static str = "Ping";
    const PACKAGE: &'static str = "bench";
}

/// Asks the two-process sink how many `Tell`s it has counted; the answer is a `Count` too.
#[derive(Clone, PartialEq, prost::Message)]
struct Count {
    #[prost(uint64, tag = "1")]
    n: u64,
}

impl prost::Name for Count {
    const NAME: &'static str = "Count";
    const PACKAGE: &'static str = "bench";
}

fn tell() -> Tell {
    Tell { payload: PAYLOAD.to_vec() }
}

fn ping() -> Ping {
    Ping { payload: PAYLOAD.to_vec() }
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

struct Sink {
    count: usize,
    n: usize,
    latch: Latch,
}

impl Actor for Sink {
    async fn receive(&mut self, ctx: &mut Context) -> ActorResult {
        if let Some(t) = ctx.message::<Tell>() {
            std::hint::black_box(t.payload.len());
            self.count += 1;
            if self.count == self.n {
                self.latch.fire();
            }
        }
        Ok(())
    }
}

struct Echo;

impl Actor for Echo {
    async fn receive(&mut self, ctx: &mut Context) -> ActorResult {
        if let Some(p) = ctx.message::<Ping>() {
            let reply = p.clone();
            ctx.respond(reply);
        }
        Ok(())
    }
}

// ---------- protoactor remoting ----------

/// Two systems with remoting; `a` sends, `b` hosts the actors.
struct Pair {
    a: ActorSystem,
    b: ActorSystem,
    ra: Remote,
    rb: Remote,
    b_address: String,
    echo: Pid,
}

fn config() -> RemoteConfig {
    RemoteConfig::bind("127.0.0.1", 0).with_protobuf::<Tell>().with_protobuf::<Ping>().with_protobuf::<Count>()
}

async fn pair() -> Pair {
    let a = ActorSystem::new();
    let b = ActorSystem::new();
    let ra = Remote::new(&a, config());
    let rb = Remote::new(&b, config());
    ra.start().await.expect("start a");
    let b_address = rb.start().await.expect("start b");
    let local_echo = b.root().spawn_named(Props::from_producer(|| Echo), "echo").expect("spawn echo");
    let echo = Pid::new(b_address.as_str(), local_echo.id());
    // Connects both directions before anything is timed.
    let _: Ping = a.root().request_future(&echo, ping(), TIMEOUT).await.expect("first round trip");
    Pair { a, b, ra, rb, b_address, echo }
}

impl Pair {
    async fn shutdown(self) {
        self.ra.shutdown(false).await;
        self.rb.shutdown(false).await;
        self.a.shutdown().await;
        self.b.shutdown().await;
    }
}

fn oneway_once(rt: &Runtime, p: &Pair, n: usize) -> Duration {
    rt.block_on(async {
        let (latch, done) = Latch::new();
        let sink = p.b.root().spawn(Props::from_producer(move || Sink { count: 0, n, latch: latch.clone() }));
        let target = Pid::new(p.b_address.as_str(), sink.id());
        let start = Instant::now();
        // The senders run on the driver thread, as the baseline's client does:
        // both sides then leave the runtime's two workers to the transport.
        let senders = (0..SENDERS).map(|s| {
            let share = n / SENDERS + usize::from(s < n % SENDERS);
            let (root, target) = (p.a.root(), target.clone());
            async move {
                let mut sent = 0;
                while sent < share {
                    let k = BARE_BATCH.min(share - sent);
                    for _ in 0..k {
                        root.send(&target, tell());
                    }
                    sent += k;
                    // Interleaves the senders per 100 (the baseline's batch).
                    tokio::task::yield_now().await;
                }
            }
        });
        futures_util::future::join_all(senders).await;
        let end = tokio::time::timeout(Duration::from_secs(60), done).await.expect("stalled").expect("latch");
        p.b.root().stop(&sink);
        end - start
    })
}

fn rtt_once(rt: &Runtime, p: &Pair, n: usize, latencies: Option<&mut Vec<Duration>>) -> Duration {
    rt.block_on(async {
        let root = p.a.root();
        for _ in 0..WARM_UP_RTT {
            let _: Ping = root.request_future(&p.echo, ping(), TIMEOUT).await.expect("warm-up reply");
        }
        let start = Instant::now();
        match latencies {
            None => {
                for _ in 0..n {
                    let r: Ping = root.request_future(&p.echo, ping(), TIMEOUT).await.expect("reply");
                    std::hint::black_box(r);
                }
            }
            Some(lat) => {
                for _ in 0..n {
                    let s = Instant::now();
                    let r: Ping = root.request_future(&p.echo, ping(), TIMEOUT).await.expect("reply");
                    lat.push(s.elapsed());
                    std::hint::black_box(r);
                }
            }
        }
        start.elapsed()
    })
}

fn concurrent_once(rt: &Runtime, p: &Pair, total: usize) -> Duration {
    rt.block_on(async {
        let per = total / REQUESTERS;
        let start = Instant::now();
        let tasks: Vec<_> = (0..REQUESTERS)
            .map(|_| {
                let (root, echo) = (p.a.root(), p.echo.clone());
                tokio::spawn(async move {
                    for _ in 0..per {
                        let r: Ping = root.request_future(&echo, ping(), TIMEOUT).await.expect("reply");
                        std::hint::black_box(r);
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("requester");
        }
        start.elapsed()
    })
}

// ---------- bare tonic baseline ----------

type ReplyStream = Pin<Box<dyn Stream<Item = Result<RemoteMessage, Status>> + Send>>;

/// The `Remoting` service reduced to its transport: counts envelopes and acks
/// a flush, or echoes every frame.
struct Bare {
    echo: bool,
}

const FLUSH: &str = "flush";

fn frame(batch: MessageBatch) -> RemoteMessage {
    RemoteMessage { message_type: Some(MessageType::MessageBatch(batch)) }
}

#[tonic::async_trait]
impl Remoting for Bare {
    type ReceiveStream = ReplyStream;

    async fn receive(&self, request: Request<Streaming<RemoteMessage>>) -> Result<Response<ReplyStream>, Status> {
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel::<Result<RemoteMessage, Status>>(16);
        let echo = self.echo;
        tokio::spawn(async move {
            let mut count = 0u64;
            while let Some(Ok(m)) = inbound.next().await {
                if echo {
                    if tx.send(Ok(m)).await.is_err() {
                        return;
                    }
                    continue;
                }
                let Some(MessageType::MessageBatch(batch)) = m.message_type else { continue };
                if batch.type_names.first().is_some_and(|t| t == FLUSH) {
                    let ack = MessageEnvelope { message_data: count.to_le_bytes().to_vec(), ..Default::default() };
                    count = 0;
                    if tx.send(Ok(frame(MessageBatch { envelopes: vec![ack], ..Default::default() }))).await.is_err() {
                        return;
                    }
                } else {
                    for e in &batch.envelopes {
                        std::hint::black_box(e.message_data.len() + e.target as usize);
                    }
                    count += batch.envelopes.len() as u64;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

async fn bare_server(echo: bool) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("local address").to_string();
    // `Server::tcp_nodelay` is ignored with `serve_with_incoming`: set it per socket.
    let incoming = TcpListenerStream::new(listener).map(|socket| {
        if let Ok(s) = &socket {
            let _ = s.set_nodelay(true);
        }
        socket
    });
    let serve = tonic::transport::Server::builder()
        .add_service(RemotingServer::new(Bare { echo }))
        .serve_with_incoming(incoming);
    tokio::spawn(async move { serve.await.expect("bare server") });
    address
}

async fn bare_client(address: &str) -> RemotingClient<Channel> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .expect("endpoint")
        .tcp_nodelay(true)
        .connect()
        .await
        .expect("connect");
    RemotingClient::new(channel)
}

/// One open bidirectional stream.
struct BareStream {
    tx: mpsc::Sender<RemoteMessage>,
    rx: Streaming<RemoteMessage>,
}

async fn bare_stream(client: &mut RemotingClient<Channel>, depth: usize) -> BareStream {
    let (tx, out) = mpsc::channel(depth);
    let rx = client.receive(ReceiverStream::new(out)).await.expect("open stream").into_inner();
    BareStream { tx, rx }
}

fn bare_batch(type_name: &str, target: &str, envelopes: Vec<MessageEnvelope>) -> MessageBatch {
    MessageBatch { type_names: vec![type_name.into()], targets: vec![target.into()], envelopes, senders: Vec::new() }
}

fn bare_envelope(data: Vec<u8>, request_id: u32) -> MessageEnvelope {
    MessageEnvelope { message_data: data, target_request_id: request_id, ..Default::default() }
}

async fn bare_flush(s: &mut BareStream) -> u64 {
    s.tx.send(frame(bare_batch(FLUSH, FLUSH, Vec::new()))).await.expect("send flush");
    let ack = s.rx.message().await.expect("ack").expect("ack frame");
    let Some(MessageType::MessageBatch(b)) = ack.message_type else { panic!("ack is not a batch") };
    let data: [u8; 8] = b.envelopes[0].message_data.as_slice().try_into().expect("8-byte count");
    u64::from_le_bytes(data)
}

fn bare_oneway_once(rt: &Runtime, s: &mut BareStream, n: usize) -> Duration {
    rt.block_on(async {
        let start = Instant::now();
        let mut sent = 0;
        while sent < n {
            let k = BARE_BATCH.min(n - sent);
            let envelopes = (0..k).map(|_| bare_envelope(tell().encode_to_vec(), 0)).collect();
            s.tx.send(frame(bare_batch("bench.Tell", "sink", envelopes))).await.expect("send batch");
            sent += k;
        }
        let count = bare_flush(s).await;
        let elapsed = start.elapsed();
        assert_eq!(count as usize, n);
        elapsed
    })
}

fn bare_rtt_once(rt: &Runtime, s: &mut BareStream, n: usize, latencies: Option<&mut Vec<Duration>>) -> Duration {
    rt.block_on(async {
        let mut round_trip = async || {
            let batch = bare_batch("bench.Ping", "echo", vec![bare_envelope(ping().encode_to_vec(), 0)]);
            s.tx.send(frame(batch)).await.expect("send");
            std::hint::black_box(s.rx.message().await.expect("echo").expect("echo frame"));
        };
        for _ in 0..WARM_UP_RTT {
            round_trip().await;
        }
        let start = Instant::now();
        match latencies {
            None => {
                for _ in 0..n {
                    round_trip().await;
                }
            }
            Some(lat) => {
                for _ in 0..n {
                    let t = Instant::now();
                    round_trip().await;
                    lat.push(t.elapsed());
                }
            }
        }
        start.elapsed()
    })
}

/// `REQUESTERS` tasks share one echo stream: a writer task packs whatever is
/// queued into one batch, a reader task routes each echoed envelope back by
/// its request id (the requester's index).
fn bare_concurrent_once(rt: &Runtime, client: &RemotingClient<Channel>, total: usize) -> Duration {
    rt.block_on(async {
        let per = total / REQUESTERS;
        let BareStream { tx, mut rx } = bare_stream(&mut client.clone(), 64).await;
        let (queue, mut queued) = mpsc::channel::<MessageEnvelope>(REQUESTERS);
        let mut replies = Vec::with_capacity(REQUESTERS);
        let mut inboxes = Vec::with_capacity(REQUESTERS);
        for _ in 0..REQUESTERS {
            let (reply, inbox) = mpsc::channel::<MessageEnvelope>(1);
            replies.push(reply);
            inboxes.push(inbox);
        }
        let writer = tokio::spawn(async move {
            let mut buf = Vec::with_capacity(REQUESTERS);
            while queued.recv_many(&mut buf, REQUESTERS).await > 0 {
                let batch = bare_batch("bench.Ping", "echo", std::mem::take(&mut buf));
                if tx.send(frame(batch)).await.is_err() {
                    return;
                }
            }
        });
        let reader = tokio::spawn(async move {
            while let Ok(Some(m)) = rx.message().await {
                let Some(MessageType::MessageBatch(b)) = m.message_type else { continue };
                for e in b.envelopes {
                    let _ = replies[e.target_request_id as usize].send(e).await;
                }
            }
        });
        let start = Instant::now();
        let tasks: Vec<_> = inboxes
            .into_iter()
            .enumerate()
            .map(|(i, mut inbox)| {
                let queue = queue.clone();
                tokio::spawn(async move {
                    for _ in 0..per {
                        queue.send(bare_envelope(ping().encode_to_vec(), i as u32)).await.expect("queue");
                        std::hint::black_box(inbox.recv().await.expect("reply"));
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("requester");
        }
        let elapsed = start.elapsed();
        drop(queue);
        writer.await.expect("writer");
        reader.abort();
        elapsed
    })
}

// ---------- two processes ----------

const RTT_2P: usize = 10_000;
const WARM_UP_2P: usize = 200;

/// Counts `Tell`s and answers `Count` with the count (messages from one
/// sender arrive in order, so the answer comes after every earlier `Tell`).
struct Counter {
    count: u64,
}

impl Actor for Counter {
    async fn receive(&mut self, ctx: &mut Context) -> ActorResult {
        if let Some(t) = ctx.message::<Tell>() {
            std::hint::black_box(t.payload.len());
            self.count += 1;
        } else if ctx.message_is::<Count>() {
            ctx.respond(Count { n: self.count });
        }
        Ok(())
    }
}

/// The child's side: `SERVE=ours` hosts `echo` and `sink` actors with a
/// default-config `Remote`; `bare-echo` / `bare-sink` serve the bare stream.
/// Prints `READY <address>` and runs until its stdin closes.
fn serve(kind: &str) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    rt.block_on(async {
        let (address, _keep) = match kind {
            "ours" => {
                let system = ActorSystem::new();
                let remote = Remote::new(&system, config());
                let address = remote.start().await.expect("start remoting");
                system.root().spawn_named(Props::from_producer(|| Echo), "echo").expect("spawn echo");
                system.root().spawn_named(Props::from_producer(|| Counter { count: 0 }), "sink").expect("spawn sink");
                (address.to_string(), Some((system, remote)))
            }
            "bare-echo" => (bare_server(true).await, None),
            "bare-sink" => (bare_server(false).await, None),
            other => panic!("SERVE={other}: expected ours, bare-echo or bare-sink"),
        };
        println!("READY {address}");
        let (gone, parent_gone) = oneshot::channel::<()>();
        std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            while std::io::stdin().read(&mut buf).is_ok_and(|n| n > 0) {}
            let _ = gone.send(());
        });
        let _ = parent_gone.await;
    });
    std::process::exit(0);
}

/// The server child; killed when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server(kind: &str) -> (Server, String) {
    let exe = std::env::current_exe().expect("this executable");
    let mut child = Command::new(exe)
        .env("SERVE", kind)
        .env_remove("ONCE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the server process");
    let out = child.stdout.take().expect("child stdout");
    let server = Server(child);
    for line in BufReader::new(out).lines() {
        let line = line.expect("read the server's output");
        if let Some(address) = line.strip_prefix("READY ") {
            return (server, address.to_string());
        }
    }
    panic!("the server process exited before it was ready");
}

fn report_line(workload: &str, system: &str, value: f64, unit: &str) {
    println!("{workload} {system} {value:.2} {unit}");
}

fn report_rtt_2p(system: &str, mut lat: Vec<Duration>, total: Duration) {
    lat.sort_unstable();
    let at = |q: f64| lat[((lat.len() as f64 * q).ceil() as usize).clamp(1, lat.len()) - 1].as_secs_f64() * 1e6;
    report_line("remote-rtt-latency", system, lat.len() as f64 / total.as_secs_f64(), "rt/s");
    report_line("remote-rtt-p50", system, at(0.50), "us");
    report_line("remote-rtt-p99", system, at(0.99), "us");
}

/// The client: one fresh process pair per call, as the peers' remote workloads do.
fn two_process(workload: &str) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let rtt_n = scale(RTT_2P);
    let oneway_n = scale(1_000_000);
    match workload {
        "rtt-2p" | "rtt-2p-task" | "rtt-2p-parked" | "oneway-2p" => {
            let (_server, address) = start_server("ours");
            rt.block_on(async {
                let system = if workload == "rtt-2p-parked" {
                    ActorSystem::with_config(ActorSystemConfig::default().with_request_spin(Duration::ZERO))
                } else {
                    ActorSystem::new()
                };
                let remote = Remote::new(&system, config());
                remote.start().await.expect("start remoting");
                let root = system.root();
                if workload.starts_with("rtt-2p") {
                    let echo = Pid::new(address.as_str(), "echo");
                    let round_trips = async move {
                        for _ in 0..WARM_UP_2P {
                            let _: Ping = root.request_future(&echo, ping(), TIMEOUT).await.expect("warm-up reply");
                        }
                        let mut lat = Vec::with_capacity(rtt_n);
                        let start = Instant::now();
                        for _ in 0..rtt_n {
                            let t = Instant::now();
                            let r: Ping = root.request_future(&echo, ping(), TIMEOUT).await.expect("reply");
                            lat.push(t.elapsed());
                            std::hint::black_box(r);
                        }
                        (lat, start.elapsed())
                    };
                    // From a task the answer's worker need not wake another
                    // thread (see the remote crate's docs on latency).
                    let ((lat, total), system_name) = match workload {
                        "rtt-2p-task" => {
                            (tokio::spawn(round_trips).await.expect("the requesting task"), "protoactor-task")
                        }
                        "rtt-2p-parked" => (round_trips.await, "protoactor-parked"),
                        _ => (round_trips.await, "protoactor"),
                    };
                    report_rtt_2p(system_name, lat, total);
                } else {
                    let sink = Pid::new(address.as_str(), "sink");
                    let first: Count = root.request_future(&sink, Count::default(), TIMEOUT).await.expect("connect");
                    assert_eq!(first.n, 0);
                    let start = Instant::now();
                    let senders = (0..SENDERS).map(|s| {
                        let share = oneway_n / SENDERS + usize::from(s < oneway_n % SENDERS);
                        let (root, sink) = (root.clone(), sink.clone());
                        async move {
                            let mut sent = 0;
                            while sent < share {
                                let k = BARE_BATCH.min(share - sent);
                                for _ in 0..k {
                                    root.send(&sink, tell());
                                }
                                sent += k;
                                tokio::task::yield_now().await;
                            }
                        }
                    });
                    futures_util::future::join_all(senders).await;
                    let done: Count =
                        root.request_future(&sink, Count::default(), Duration::from_secs(60)).await.expect("count");
                    let elapsed = start.elapsed();
                    assert_eq!(done.n as usize, oneway_n, "the sink counted a different number of messages");
                    report_line("remote-tell", "protoactor", oneway_n as f64 / elapsed.as_secs_f64(), "msgs/s");
                }
                remote.shutdown(false).await;
                system.shutdown().await;
            });
        }
        "rtt-2p-bare" => {
            let (_server, address) = start_server("bare-echo");
            rt.block_on(async {
                let mut client = bare_client(&address).await;
                let mut s = bare_stream(&mut client, 4).await;
                let mut round_trip = async || {
                    let batch = bare_batch("bench.Ping", "echo", vec![bare_envelope(ping().encode_to_vec(), 0)]);
                    s.tx.send(frame(batch)).await.expect("send");
                    std::hint::black_box(s.rx.message().await.expect("echo").expect("echo frame"));
                };
                for _ in 0..WARM_UP_2P {
                    round_trip().await;
                }
                let mut lat = Vec::with_capacity(rtt_n);
                let start = Instant::now();
                for _ in 0..rtt_n {
                    let t = Instant::now();
                    round_trip().await;
                    lat.push(t.elapsed());
                }
                report_rtt_2p("bare-tonic-2p", lat, start.elapsed());
            });
        }
        "oneway-2p-bare" => {
            let (_server, address) = start_server("bare-sink");
            let mut s = rt.block_on(async {
                let mut client = bare_client(&address).await;
                let mut s = bare_stream(&mut client, 64).await;
                assert_eq!(bare_flush(&mut s).await, 0);
                s
            });
            let elapsed = bare_oneway_once(&rt, &mut s, oneway_n);
            report_line("remote-tell", "bare-tonic-2p", oneway_n as f64 / elapsed.as_secs_f64(), "msgs/s");
        }
        _ => unreachable!(),
    }
}

// ---------- criterion wiring ----------

fn timed(iters: u64, mut f: impl FnMut() -> Duration) -> Duration {
    (0..iters).map(|_| f()).sum()
}

fn report_latency(name: &str, mut lat: Vec<Duration>) {
    lat.sort_unstable();
    let at = |q: f64| lat[((lat.len() as f64 * q).ceil() as usize).clamp(1, lat.len()) - 1].as_secs_f64() * 1e6;
    eprintln!("{name}: p50 {:.1} µs, p99 {:.1} µs ({} round trips)", at(0.50), at(0.99), lat.len());
}

/// The machine's speed drifts between criterion's benchmarks (a shared VM):
/// this runs ours and the baseline alternately, `PAIRS` times each, and
/// prints the median of the per-pair ratios (ours / bare, in throughput).
fn report_paired(name: &str, mut ours: impl FnMut() -> Duration, mut bare: impl FnMut() -> Duration) {
    const PAIRS: usize = 8;
    let mut ratios: Vec<f64> = (0..PAIRS).map(|_| bare().as_secs_f64() / ours().as_secs_f64()).collect();
    ratios.sort_by(f64::total_cmp);
    let median = (ratios[PAIRS / 2 - 1] + ratios[PAIRS / 2]) / 2.0;
    eprintln!(
        "{name}: protoactor / bare-tonic throughput, median of {PAIRS} alternating pairs: {median:.2} (range {:.2}..{:.2})",
        ratios[0],
        ratios[PAIRS - 1]
    );
}

fn benches(c: &mut Criterion) {
    if let Ok(kind) = std::env::var("SERVE") {
        return serve(&kind);
    }
    if let Ok(workload) = std::env::var("ONCE")
        && workload.contains("-2p")
    {
        return two_process(&workload);
    }
    let rt = runtime();
    let oneway_n = scale(1_000_000);
    let rtt_n = scale(20_000);
    let concurrent_n = scale(50_000).max(REQUESTERS) / REQUESTERS * REQUESTERS;

    let pair = rt.block_on(pair());
    let (mut sink, mut echo, echo_client) = rt.block_on(async {
        let mut sink_client = bare_client(&bare_server(false).await).await;
        let mut echo_client = bare_client(&bare_server(true).await).await;
        let mut sink = bare_stream(&mut sink_client, 64).await;
        // The first flush establishes the stream before anything is timed.
        assert_eq!(bare_flush(&mut sink).await, 0);
        let echo = bare_stream(&mut echo_client, 4).await;
        (sink, echo, echo_client)
    });

    if let Ok(workload) = std::env::var("ONCE") {
        let rate = |n: usize, d: Duration| n as f64 / d.as_secs_f64();
        let value = match workload.as_str() {
            "oneway" => rate(oneway_n, oneway_once(&rt, &pair, oneway_n)),
            "oneway-bare" => rate(oneway_n, bare_oneway_once(&rt, &mut sink, oneway_n)),
            "request-rtt" => rate(rtt_n, rtt_once(&rt, &pair, rtt_n, None)),
            "request-rtt-bare" => rate(rtt_n, bare_rtt_once(&rt, &mut echo, rtt_n, None)),
            "request-concurrent" => rate(concurrent_n, concurrent_once(&rt, &pair, concurrent_n)),
            "request-concurrent-bare" => rate(concurrent_n, bare_concurrent_once(&rt, &echo_client, concurrent_n)),
            other => panic!("ONCE={other}: not a workload of this bench (see the file's header)"),
        };
        println!("{workload} {value:.0} per second");
        rt.block_on(pair.shutdown());
        return;
    }

    let mut g = c.benchmark_group("remote");
    g.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(8));

    // Paired ratios first; not under `cargo test` (no `--bench`), and PAIRED=0 skips them.
    let benchmarking = std::env::args().any(|a| a == "--bench");
    if benchmarking && std::env::var("PAIRED").map_or(true, |v| v != "0") {
        report_paired("oneway", || oneway_once(&rt, &pair, oneway_n), || bare_oneway_once(&rt, &mut sink, oneway_n));
        let n = rtt_n / 4;
        report_paired("request-rtt", || rtt_once(&rt, &pair, n, None), || bare_rtt_once(&rt, &mut echo, n, None));
        report_paired(
            "request-concurrent",
            || concurrent_once(&rt, &pair, concurrent_n),
            || bare_concurrent_once(&rt, &echo_client, concurrent_n),
        );
    }

    g.throughput(Throughput::Elements(oneway_n as u64));
    g.bench_function("oneway/protoactor", |b| b.iter_custom(|i| timed(i, || oneway_once(&rt, &pair, oneway_n))));
    g.bench_function("oneway/bare-tonic", |b| {
        b.iter_custom(|i| timed(i, || bare_oneway_once(&rt, &mut sink, oneway_n)))
    });

    g.throughput(Throughput::Elements(rtt_n as u64));
    // One extra pass records each round trip for p50/p99 (criterion calls the
    // closure per sample; the flag keeps it to once, and skips it when filtered out).
    let mut first = true;
    g.bench_function("request-rtt/protoactor", |b| {
        if std::mem::take(&mut first) {
            let mut lat = Vec::with_capacity(rtt_n);
            rtt_once(&rt, &pair, rtt_n, Some(&mut lat));
            report_latency("request-rtt/protoactor", lat);
        }
        b.iter_custom(|i| timed(i, || rtt_once(&rt, &pair, rtt_n, None)))
    });
    let mut first = true;
    g.bench_function("request-rtt/bare-tonic", |b| {
        if std::mem::take(&mut first) {
            let mut lat = Vec::with_capacity(rtt_n);
            bare_rtt_once(&rt, &mut echo, rtt_n, Some(&mut lat));
            report_latency("request-rtt/bare-tonic", lat);
        }
        b.iter_custom(|i| timed(i, || bare_rtt_once(&rt, &mut echo, rtt_n, None)))
    });

    g.throughput(Throughput::Elements(concurrent_n as u64));
    g.bench_function("request-concurrent/protoactor", |b| {
        b.iter_custom(|i| timed(i, || concurrent_once(&rt, &pair, concurrent_n)))
    });
    g.bench_function("request-concurrent/bare-tonic", |b| {
        b.iter_custom(|i| timed(i, || bare_concurrent_once(&rt, &echo_client, concurrent_n)))
    });
    g.finish();

    rt.block_on(pair.shutdown());
}

criterion_group!(remote, benches);
criterion_main!(remote);
