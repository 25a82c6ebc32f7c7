//! Peers that stall after their handshake: one frozen behind a proxy (it
//! answers nothing, not even HTTP/2 pings), one whose HTTP/2 stack is alive
//! but that never reads what we send, and one that stops in the middle of a
//! message on the stream we opened. Each is detected within the
//! stall timeout: its connection is closed, the endpoint to it terminates
//! as `EndpointGone` saying it stalled, waiting requests fail at once, and
//! other peers are still served.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::*;
use protoactor_actor::DeliveryFailureKind;
use protoactor_actor::prelude::*;
use protoactor_remote::EndpointTerminated;
use protoactor_remote::proto::remote_message::MessageType;
use protoactor_remote::proto::remoting_client::RemotingClient;
use protoactor_remote::proto::{ConnectRequest, RemoteMessage, ServerConnection, connect_request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

const STALL: Duration = Duration::from_millis(400);

/// A TCP proxy to `target` that forwards both ways until frozen; frozen, it
/// keeps every socket open and reads nothing more (a peer that froze, or a
/// network that black-holes the connection).
async fn proxy(target: String, frozen: Arc<AtomicBool>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
    let address = listener.local_addr().expect("proxy address").to_string();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(&target).await else { continue };
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            tokio::spawn(pipe(client_read, server_write, frozen.clone()));
            tokio::spawn(pipe(server_read, client_write, frozen.clone()));
        }
    });
    address
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    frozen: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if frozen.load(Ordering::SeqCst) {
            // Holds both halves open and never reads again.
            std::future::pending::<()>().await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_freezes_after_its_handshake_is_dropped_and_senders_are_told_it_stalled() {
    let b = Node::start(config().with_stall_timeout(STALL)).await;
    b.echo("echo");
    let frozen = Arc::new(AtomicBool::new(false));
    let via = proxy(b.address.clone(), frozen.clone()).await;
    let a = Node::start(config().with_stall_timeout(STALL)).await;
    let echo = Pid::new(via.as_str(), "echo");
    let pong: Pong = a.system.root().request_future(&echo, Ping(1), WAIT).await.expect("served through the proxy");
    assert_eq!(pong, Pong(1));
    assert_eq!(b.remote.connection_stats().open, 1, "the proxied connection");

    let (_sub, mut ended) = a.system.event_stream().subscribe_channel::<EndpointTerminated>();
    frozen.store(true, Ordering::SeqCst);
    // Waits far longer than the stall timeout: it fails when the stall is seen.
    let result = a.system.root().request_future::<Pong, _>(&echo, Ping(2), Duration::from_secs(60)).await;
    match &result {
        Err(Error::DeliveryFailed { kind: DeliveryFailureKind::EndpointGone, reason, .. }) => {
            assert!(reason.contains("stalled"), "says the peer stalled: {reason}");
        }
        other => panic!("expected EndpointGone (stalled), got {other:?}"),
    }
    let event = recv(&mut ended, "EndpointTerminated").await;
    assert_eq!((event.address.as_str(), event.kind), (via.as_str(), DeliveryFailureKind::EndpointGone));
    assert!(event.reason.contains("stalled"), "{event:?}");

    // The server side closes the frozen connection too (it answers no ping).
    let closed = poll_until(|| b.remote.connection_stats().open == 0).await;
    assert!(closed, "B still holds the frozen connection: {:?}", b.remote.connection_stats());
    // And serves others.
    let c = Node::start(config()).await;
    let pong: Pong = c.system.root().request_future(&b.pid("echo"), Ping(3), WAIT).await.expect("still served");
    assert_eq!(pong, Pong(3));
    for node in [&a, &b, &c] {
        node.stop().await;
    }
}

/// Polls `done` every 20 ms for up to [`WAIT`].
async fn poll_until(mut done: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    done()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_reading_what_we_send_is_dropped() {
    let b = Node::start(config().with_stall_timeout(STALL)).await;
    // A peer whose HTTP/2 stack is alive (it answers pings) but that never
    // reads the response stream, where B sends what it has for the address
    // the handshake claims.
    let claimed = "127.0.0.1:1";
    let mut client = RemotingClient::connect(format!("http://{}", b.address)).await.expect("connect");
    let (tx, rx) = mpsc::channel(4);
    let hello = ConnectRequest {
        connection_type: Some(connect_request::ConnectionType::ServerConnection(ServerConnection {
            member_id: "never-reads".into(),
            address: claimed.into(),
            block_list: vec![],
            cluster_name: Some(String::new()),
        })),
    };
    tx.send(RemoteMessage { message_type: Some(MessageType::ConnectRequest(hello)) }).await.expect("send");
    let unread = client.receive(ReceiverStream::new(rx)).await.expect("the stream opens");
    assert!(poll_until(|| b.remote.connection_stats().awaiting_handshake == 0).await, "handshake done");

    let (_sub, mut ended) = b.system.event_stream().subscribe_channel::<EndpointTerminated>();
    // More than the flow-control windows and socket buffers hold.
    let sink = Pid::new(claimed, "sink");
    let payload = "x".repeat(16 * 1024);
    for _ in 0..2_000 {
        b.system.root().send(&sink, Text(payload.clone()));
    }
    let event = recv(&mut ended, "EndpointTerminated on B").await;
    assert_eq!((event.address.as_str(), event.kind), (claimed, DeliveryFailureKind::EndpointGone), "{event:?}");
    assert!(event.reason.contains("stalled") && event.reason.contains("took none"), "{event:?}");
    assert!(poll_until(|| b.remote.connection_stats().open == 0).await, "the connection is closed");
    drop(unread);
    drop(tx);

    b.echo("echo");
    let c = Node::start(config()).await;
    let pong: Pong = c.system.root().request_future(&b.pid("echo"), Ping(4), WAIT).await.expect("still served");
    assert_eq!(pong, Pong(4));
    b.stop().await;
    c.stop().await;
}

/// A body that yields what arrives on a channel and never ends while the
/// sender lives.
struct ChannelBody(mpsc::Receiver<bytes::Bytes>);

impl http_body::Body for ChannelBody {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        self.0.poll_recv(cx).map(|chunk| chunk.map(|bytes| Ok(http_body::Frame::data(bytes))))
    }
}

/// A gRPC message: the 5-byte prefix announcing `len` bytes, then `body`.
fn grpc_message(len: u32, body: &[u8]) -> bytes::Bytes {
    let mut out = vec![0u8];
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
    out.into()
}

/// A peer that accepts our handshake, then stops in the middle of the next
/// message on the stream we opened, while its HTTP/2 stack stays alive (it
/// answers pings, so only following the messages finds it out). Each
/// connection it served sends on the returned channel once it is closed.
async fn stalls_mid_message() -> (String, mpsc::UnboundedReceiver<()>) {
    use prost::Message as _;
    use protoactor_remote::proto::ConnectResponse;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    let (closed_tx, closed) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let closed = closed_tx.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    |request: tonic::codegen::http::Request<hyper::body::Incoming>| async move {
                        let (tx, rx) = mpsc::channel(4);
                        let accepted = RemoteMessage {
                            message_type: Some(MessageType::ConnectResponse(ConnectResponse {
                                member_id: "stalls".into(),
                                blocked: false,
                                cluster_name: None,
                            })),
                        }
                        .encode_to_vec();
                        let _ = tx.send(grpc_message(accepted.len() as u32, &accepted)).await;
                        let _ = tx.send(grpc_message(1_000, &[0u8; 10])).await;
                        // Keeps the answer open (and reads what comes) until the client hangs up.
                        tokio::spawn(async move {
                            use http_body::Body as _;
                            let mut body = std::pin::pin!(request.into_body());
                            while let Some(Ok(_)) = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await {}
                            drop(tx);
                        });
                        let answer = tonic::codegen::http::Response::builder()
                            .header("content-type", "application/grpc")
                            .body(ChannelBody(rx))
                            .expect("a response");
                        Ok::<_, std::convert::Infallible>(answer)
                    },
                );
                let _ = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .timer(hyper_util::rt::TokioTimer::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                    .await;
                let _ = closed.send(());
            });
        }
    });
    (address, closed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stalls_mid_message_on_our_stream_is_dropped() {
    let (address, mut closed) = stalls_mid_message().await;
    let a = Node::start(config().with_stall_timeout(STALL)).await;
    let (_sub, mut ended) = a.system.event_stream().subscribe_channel::<EndpointTerminated>();
    a.system.root().send(&Pid::new(address.as_str(), "anyone"), Ping(1));
    let event = recv(&mut ended, "EndpointTerminated").await;
    assert_eq!((event.address.as_str(), event.kind), (address.as_str(), DeliveryFailureKind::EndpointGone));
    assert!(event.reason.contains("middle of a message"), "says the peer stalled mid-message: {event:?}");
    recv(&mut closed, "our side closing the connection").await;
    a.stop().await;
}
