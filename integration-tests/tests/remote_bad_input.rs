//! Bad input on the remote port, against a server in its own process (so its
//! memory and file descriptors can be read from /proc): garbage bytes,
//! truncated frames, valid gRPC with malformed protobuf, streams that stall
//! mid-frame, thousands of connections opened and dropped, idle connections,
//! and more connections awaiting a handshake than the cap allows. After each,
//! the server's RSS and descriptor count come back within a bound and a
//! valid client is still served.
//!
//! `REMOTE_TEST_PEER_BIN` runs the suite against another build of the peer
//! (to measure a version from before these guards).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use protoactor_actor::prelude::*;
use protoactor_remote::{Remote, RemoteConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tonic::codegen::http;

use protoactor_integration_tests::peer_protocol::{self, Ping, Pong};

/// Growth of the server's RSS over its baseline that counts as "back".
const RSS_BOUND_KIB: u64 = 24 * 1024;
/// Descriptors over the baseline that count as "back" (a reconnecting client).
const FD_SLACK: usize = 4;

struct Server {
    child: Child,
    address: String,
}

impl Server {
    async fn start(envs: &[(&str, &str)]) -> Server {
        let binary = std::env::var("REMOTE_TEST_PEER_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_remote-test-peer").to_string());
        let mut command = Command::new(binary);
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null());
        for (k, v) in envs {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("start remote-test-peer");
        let address = peer_protocol::wait_ready(&mut child).await.expect("the peer is ready");
        Server { child, address }
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("/proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS")
    }

    fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id())).expect("/proc fd").count()
    }

    fn echo(&self) -> Pid {
        Pid::new(self.address.as_str(), "echo")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A well-behaved client system.
async fn client() -> (ActorSystem, Remote) {
    let system = ActorSystem::new();
    let config = peer_protocol::register(RemoteConfig::bind("127.0.0.1", 0))
        .with_retries(2, Duration::from_millis(50))
        .with_terminated_address_block(Duration::from_millis(10));
    let remote = Remote::new(&system, config);
    remote.start().await.expect("client starts");
    (system, remote)
}

async fn served(system: &ActorSystem, server: &Server, n: u32) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ping = Ping { n, delay_ms: 0 };
        match system.root().request_future::<Pong, _>(&server.echo(), ping, Duration::from_secs(2)).await {
            Ok(pong) => return assert_eq!(pong, Pong(n)),
            // A reconnect may be needed after the attack: poll until served.
            Err(e) => assert!(Instant::now() < deadline, "a valid client is no longer served: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

struct Baseline {
    rss: u64,
    fds: usize,
}

async fn baseline(server: &Server, system: &ActorSystem) -> Baseline {
    served(system, server, 0).await;
    Baseline { rss: server.rss_kib(), fds: server.fds() }
}

/// Waits until the server is back within bounds, then checks a valid client.
async fn settles(server: &Server, base: &Baseline, system: &ActorSystem, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (rss, fds) = (server.rss_kib(), server.fds());
        if rss <= base.rss + RSS_BOUND_KIB && fds <= base.fds + FD_SLACK {
            eprintln!("{what}: RSS {} -> {rss} KiB, fds {} -> {fds}", base.rss, base.fds);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the server did not come back: RSS {} -> {rss} KiB, fds {} -> {fds}",
            base.rss,
            base.fds
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    served(system, server, 1).await;
}

/// Connects, writes `bytes`, and hangs up.
async fn write_and_drop(address: &str, bytes: &[u8]) {
    if let Ok(mut s) = TcpStream::connect(address).await {
        let _ = s.write_all(bytes).await;
    }
}

/// A request body fed from a channel: the test decides which bytes go out
/// and when, down to half a gRPC message.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, tonic::Status>>> {
        self.0.poll_recv(cx).map(|b| b.map(|b| Ok(http_body::Frame::data(b))))
    }
}

/// An open `Receive` stream whose body is whatever the returned sender
/// sends (raw bytes: gRPC prefixes included); dropping the sender ends it.
async fn raw_grpc(address: &str) -> (mpsc::Sender<Bytes>, tonic::transport::Channel) {
    use tonic::codegen::Service;
    let mut channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let (tx, rx) = mpsc::channel(16);
    let request = http::Request::builder()
        .method("POST")
        .uri(format!("http://{address}/remote.Remoting/Receive"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(tonic::body::Body::new(ChannelBody(rx)))
        .expect("request");
    std::future::poll_fn(|cx| channel.poll_ready(cx)).await.expect("ready");
    let call = channel.call(request);
    tokio::spawn(async move {
        let _ = call.await;
    });
    (tx, channel)
}

/// [`raw_grpc`], plus a task that reads the response to its end: it
/// finishes when the server ends the stream or drops the connection.
async fn raw_grpc_read(address: &str) -> (mpsc::Sender<Bytes>, tonic::transport::Channel, tokio::task::JoinHandle<()>) {
    use tonic::codegen::Service;
    let mut channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let (tx, rx) = mpsc::channel(16);
    let request = http::Request::builder()
        .method("POST")
        .uri(format!("http://{address}/remote.Remoting/Receive"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(tonic::body::Body::new(ChannelBody(rx)))
        .expect("request");
    std::future::poll_fn(|cx| channel.poll_ready(cx)).await.expect("ready");
    let call = channel.call(request);
    let ended = tokio::spawn(async move {
        let Ok(response) = call.await else { return };
        let mut body = response.into_body();
        while let Some(Ok(_)) =
            std::future::poll_fn(|cx| http_body::Body::poll_frame(std::pin::Pin::new(&mut body), cx)).await
        {}
    });
    (tx, channel, ended)
}

/// A well-formed remoting handshake, gRPC prefix included.
fn handshake_message(member_id: &str) -> Bytes {
    use prost::Message as _;
    use protoactor_remote::proto::remote_message::MessageType;
    use protoactor_remote::proto::{ConnectRequest, RemoteMessage, ServerConnection, connect_request};
    let hello = RemoteMessage {
        message_type: Some(MessageType::ConnectRequest(ConnectRequest {
            connection_type: Some(connect_request::ConnectionType::ServerConnection(ServerConnection {
                member_id: member_id.to_string(),
                address: "127.0.0.1:1".into(),
                block_list: vec![],
                cluster_name: Some(String::new()),
            })),
        })),
    };
    let body = hello.encode_to_vec();
    let mut framed = grpc_prefix(body.len() as u32).to_vec();
    framed.extend_from_slice(&body);
    Bytes::from(framed)
}

fn grpc_prefix(len: u32) -> Bytes {
    let mut v = vec![0u8];
    v.extend_from_slice(&len.to_be_bytes());
    Bytes::from(v)
}

fn random_bytes(n: usize) -> Vec<u8> {
    (0..n).map(|_| fastrand::u8(..)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_truncated_and_malformed_input_leaves_the_server_as_it_was() {
    let server = Server::start(&[]).await;
    let (system, remote) = client().await;
    let base = baseline(&server, &system).await;

    for _ in 0..100 {
        write_and_drop(&server.address, &random_bytes(4096)).await;
    }
    settles(&server, &base, &system, "garbage bytes").await;

    // The HTTP/2 preface, then half a frame header.
    let mut truncated = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    truncated.extend_from_slice(&[0, 0, 64, 4]);
    for _ in 0..100 {
        write_and_drop(&server.address, &truncated).await;
    }
    // A gRPC message cut short by the end of its stream.
    for _ in 0..50 {
        let (tx, _channel) = raw_grpc(&server.address).await;
        let _ = tx.send(grpc_prefix(1000)).await;
        let _ = tx.send(Bytes::from(random_bytes(10))).await;
    }
    settles(&server, &base, &system, "truncated frames").await;

    // Well-framed gRPC messages whose bytes are not protobuf.
    for _ in 0..50 {
        let (tx, _channel) = raw_grpc(&server.address).await;
        let _ = tx.send(grpc_prefix(512)).await;
        let _ = tx.send(Bytes::from(random_bytes(512))).await;
    }
    settles(&server, &base, &system, "malformed protobuf").await;

    remote.shutdown(false).await;
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_streams_stalled_mid_handshake_do_not_grow_the_server() {
    let server = Server::start(&[]).await;
    let (system, remote) = client().await;
    let base = baseline(&server, &system).await;

    // Each announces a 4 MiB first message and sends all but 64 KiB of it.
    let mut stalled = Vec::new();
    for _ in 0..20 {
        let (tx, channel) = raw_grpc(&server.address).await;
        let _ = tx.send(grpc_prefix(4 * 1024 * 1024)).await;
        let feeder = tokio::spawn(async move {
            for _ in 0..63 {
                if tx.send(Bytes::from(vec![0x5a; 64 * 1024])).await.is_err() {
                    break;
                }
            }
            // Stalls here, holding the stream open.
            tx
        });
        stalled.push((feeder, channel));
    }
    // Give the bytes time to arrive (or be refused), then read the peak.
    let mut peak = server.rss_kib();
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        peak = peak.max(server.rss_kib());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "20 stalled handshakes: server RSS {} KiB before, {peak} KiB at the peak (+{} KiB)",
        base.rss,
        peak - base.rss
    );
    assert!(peak <= base.rss + RSS_BOUND_KIB, "20 stalled handshakes grew the server by {} KiB", peak - base.rss);
    served(&system, &server, 2).await;
    drop(stalled);
    settles(&server, &base, &system, "stalled handshakes").await;
    remote.shutdown(false).await;
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_connections_opened_and_dropped_leak_nothing() {
    let server = Server::start(&[]).await;
    let (system, remote) = client().await;
    let base = baseline(&server, &system).await;
    for _ in 0..15 {
        let batch: Vec<_> = (0..200).map(|_| TcpStream::connect(server.address.clone())).collect();
        drop(futures_util::future::join_all(batch).await);
    }
    settles(&server, &base, &system, "3000 connections opened and dropped").await;
    remote.shutdown(false).await;
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_that_never_speak_are_closed() {
    let server = Server::start(&[("PEER_HANDSHAKE_TIMEOUT_MS", "500")]).await;
    let (system, remote) = client().await;
    let base = baseline(&server, &system).await;
    let idle: Vec<TcpStream> =
        futures_util::future::join_all((0..20).map(|_| TcpStream::connect(server.address.clone())))
            .await
            .into_iter()
            .map(|s| s.expect("connect"))
            .collect();
    for mut socket in idle {
        let mut buf = [0u8; 64];
        // The server says its HTTP/2 hello, then hangs up: read to the end.
        let ended = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                match socket.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(ended.is_ok(), "an idle connection was never closed");
    }
    settles(&server, &base, &system, "idle connections").await;
    remote.shutdown(false).await;
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_pending_cap_are_refused_at_once() {
    let server = Server::start(&[("PEER_MAX_PENDING", "8"), ("PEER_HANDSHAKE_TIMEOUT_MS", "60000")]).await;
    let (system, remote) = client().await;
    let base = baseline(&server, &system).await;
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(TcpStream::connect(&server.address).await.expect("connect"));
    }
    // Wait until the server has accepted all eight (it writes its HTTP/2 hello to each).
    for socket in &mut held {
        let mut buf = [0u8; 9];
        let n =
            tokio::time::timeout(Duration::from_secs(10), socket.read(&mut buf)).await.expect("hello").expect("read");
        assert!(n > 0, "the first eight are admitted");
    }
    for _ in 0..4 {
        let mut surplus = TcpStream::connect(&server.address).await.expect("connect");
        let mut buf = [0u8; 64];
        let r = tokio::time::timeout(Duration::from_secs(10), surplus.read(&mut buf)).await.expect("answered");
        assert!(matches!(r, Ok(0) | Err(_)), "a connection over the cap is closed without a word: {r:?}");
    }
    drop(held);
    settles(&server, &base, &system, "over the pending cap").await;
    remote.shutdown(false).await;
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_that_stall_mid_message_after_their_handshake_are_dropped() {
    let server = Server::start(&[("PEER_STALL_TIMEOUT_MS", "500")]).await;
    let (system, remote) = client().await;
    let base = baseline(&server, &system).await;
    // Each completes the handshake (no longer a stranger: the pending cap
    // and the handshake deadline are behind it), announces a 4 MiB message,
    // sends 256 KiB of it and stalls, holding its stream and connection open.
    let mut stalled = Vec::new();
    for i in 0..20 {
        let (tx, channel, ended) = raw_grpc_read(&server.address).await;
        tx.send(handshake_message(&format!("staller-{i}"))).await.expect("handshake sent");
        tx.send(grpc_prefix(4 * 1024 * 1024)).await.expect("prefix sent");
        for _ in 0..4 {
            tx.send(Bytes::from(vec![0x5a; 64 * 1024])).await.expect("part of the message sent");
        }
        stalled.push((tx, channel, ended));
    }
    let mut peak = server.rss_kib();
    for (_tx, _channel, ended) in &mut stalled {
        // Dropped by the server while this side still holds everything open.
        let dropped = tokio::time::timeout(Duration::from_secs(20), &mut *ended).await;
        assert!(dropped.is_ok(), "a stream stalled mid-message was never dropped");
        peak = peak.max(server.rss_kib());
    }
    eprintln!(
        "20 streams stalled mid-message: server RSS {} KiB before, {peak} KiB at the peak seen (+{} KiB)",
        base.rss,
        peak.saturating_sub(base.rss)
    );
    // Their descriptors and memory come back though the client side never hung up.
    settles(&server, &base, &system, "streams stalled mid-message").await;
    drop(stalled);
    remote.shutdown(false).await;
    system.shutdown().await;
}
