//! A system refuses blocked peers and survives hostile input (garbage bytes,
//! malformed handshakes, out-of-range batch indices, random protobuf,
//! invalid protobuf frames, oversized frames) while a good client keeps
//! getting answers the whole time.

use crate::common;

use std::future::Future;
use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::*;
use prost::bytes::{Buf, BufMut};
use protoactor_actor::prelude::*;
use protoactor_actor::{DeadLetterEvent, DeliveryFailureKind, Subscription};
use protoactor_remote::proto::remote_message::MessageType;
use protoactor_remote::proto::remoting_client::RemotingClient;
use protoactor_remote::proto::{
    ClientConnection, ConnectRequest, ConnectResponse, MessageBatch, MessageEnvelope, MessageHeader, RemoteMessage,
    ServerConnection, connect_request,
};
use protoactor_remote::{EndpointTerminated, UndeliveredRemoteMessage};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use tonic::codec::{DecodeBuf, EncodeBuf};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_system_is_refused_while_others_keep_talking() {
    let a_system = ActorSystem::new();
    let b = Node::start(config().with_blocked_members(vec![a_system.id().to_string()])).await;
    let a = Node::start_with(a_system, config().with_retries(1, Duration::from_millis(50))).await;
    let c = Node::start(config()).await;
    assert!(b.remote.is_blocked(a.system.id()));
    b.echo("echo");
    let echo = b.pid("echo");
    let _: Pong = c.system.root().request_future(&echo, Ping(0), WAIT).await.expect("C talks to B");

    let (_sub, mut ended) = a.system.event_stream().subscribe_channel::<EndpointTerminated>();
    let refused = a.system.root().request_future::<Pong, _>(&echo, Ping(1), Duration::from_secs(30)).await;
    assert!(
        matches!(refused, Err(Error::DeliveryFailed { kind: DeliveryFailureKind::BlockedMember, .. })),
        "A's request fails as blocked: {refused:?}"
    );
    let event = recv(&mut ended, "EndpointTerminated on A").await;
    assert_eq!(event.address, b.address);
    assert!(event.reason.contains("block"), "the reason says why: {}", event.reason);
    assert_eq!(event.kind, DeliveryFailureKind::BlockedMember);

    // Later sends fail fast too.
    let again = a.system.root().request_future::<Pong, _>(&echo, Ping(2), Duration::from_secs(30)).await;
    assert!(matches!(again, Err(Error::DeliveryFailed { kind: DeliveryFailureKind::BlockedMember, .. })), "{again:?}");
    for n in 0..20 {
        let pong: Pong = c.system.root().request_future(&echo, Ping(n), WAIT).await.expect("C still talks to B");
        assert_eq!(pong, Pong(n));
    }
    a.stop().await;
    b.stop().await;
    c.stop().await;
}

/// Runs `attack` while A keeps requesting B's echo; every request must be
/// answered, and at least one after the attack is over.
async fn while_a_good_client_talks<F: Future>(a: &Node, echo: Pid, attack: F) -> F::Output {
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicU64::new(0));
    let root = a.system.root();
    let client = {
        let (stop, answered, echo) = (stop.clone(), answered.clone(), echo.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Acquire) {
                let pong: Pong = root
                    .request_future(&echo, Ping(n), WAIT)
                    .await
                    .unwrap_or_else(|e| panic!("good request {n} failed during the attack: {e}"));
                assert_eq!(pong, Pong(n));
                answered.fetch_add(1, Ordering::AcqRel);
                n += 1;
            }
        })
    };
    // The client must be in flow before the attack starts, or a quick attack
    // could end before its first answer (seen under a loaded test run).
    let deadline = std::time::Instant::now() + WAIT;
    while answered.load(Ordering::Acquire) == 0 {
        assert!(std::time::Instant::now() < deadline, "the good client got no answer before the attack");
        tokio::task::yield_now().await;
    }
    let out = attack.await;
    stop.store(true, Ordering::Release);
    client.await.expect("the good client never failed");
    assert!(answered.load(Ordering::Acquire) > 0, "the good client got answers during the attack");
    let _: Pong = a.system.root().request_future(&echo, Ping(u64::MAX), WAIT).await.expect("answered after");
    out
}

fn random_bytes(len: usize) -> Vec<u8> {
    (0..len).map(|_| fastrand::u8(..)).collect()
}

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Writes `bytes` on a fresh connection; returns true if the server closed it
/// within a few seconds.
fn write_garbage(address: &str, bytes: &[u8]) -> bool {
    let Ok(mut s) = std::net::TcpStream::connect(address) else { return true };
    let _ = s.write_all(bytes);
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {} // e.g. a GOAWAY frame
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return false;
            }
            Err(_) => return true,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_bytes_on_the_port_do_not_disturb_a_good_client() {
    let (a, b) = pair().await;
    b.echo("echo");
    let address = b.address.clone();
    while_a_good_client_talks(&a, b.pid("echo"), async move {
        let mut attacks = Vec::new();
        for i in 0..24 {
            let address = address.clone();
            attacks.push(tokio::task::spawn_blocking(move || {
                // Garbage in place of the HTTP/2 preface is always detected.
                let mut bytes = match i % 3 {
                    0 => random_bytes(fastrand::usize(64..16 * 1024)),
                    1 => b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
                    _ => [b"PRX".as_slice(), &random_bytes(200)].concat(),
                };
                if bytes.starts_with(&H2_PREFACE[..3]) {
                    bytes[0] = b'X';
                }
                assert!(write_garbage(&address, &bytes), "the server closes a connection that is not HTTP/2");
                // After a valid preface, random frames: the server may wait for
                // more bytes, so only the effect on the good client is checked.
                let framed = [H2_PREFACE, &random_bytes(fastrand::usize(9..4096))].concat();
                if let Ok(mut s) = std::net::TcpStream::connect(&address) {
                    let _ = s.write_all(&framed);
                }
            }));
        }
        for a in attacks {
            a.await.expect("attack task");
        }
    })
    .await;
    a.stop().await;
    b.stop().await;
}

/// A tonic client on `address`'s Receive stream that sends what is put in
/// the returned sender.
async fn rogue_stream(address: &str) -> (mpsc::Sender<RemoteMessage>, Result<Streaming<RemoteMessage>, tonic::Status>) {
    let mut client = RemotingClient::connect(format!("http://{address}")).await.expect("connect to B");
    let (tx, rx) = mpsc::channel(64);
    let response = client.receive(ReceiverStream::new(rx)).await.map(|r| r.into_inner());
    (tx, response)
}

fn connect_request(member_id: &str) -> RemoteMessage {
    // Replies to senders of this stream go nowhere.
    connect_request_from(member_id, "127.0.0.1:1")
}

fn connect_request_from(member_id: &str, claimed_address: &str) -> RemoteMessage {
    RemoteMessage {
        message_type: Some(MessageType::ConnectRequest(ConnectRequest {
            connection_type: Some(connect_request::ConnectionType::ServerConnection(ServerConnection {
                member_id: member_id.to_string(),
                address: claimed_address.to_string(),
                block_list: vec![],
                // Says nothing, as a peer from before cluster names: not checked.
                cluster_name: None,
            })),
        })),
    }
}

fn batch(batch: MessageBatch) -> RemoteMessage {
    RemoteMessage { message_type: Some(MessageType::MessageBatch(batch)) }
}

/// A well-formed batch carrying `Marker(n)` (JSON) to `target`.
fn marker_batch(target: &str, n: u32) -> RemoteMessage {
    batch(MessageBatch {
        type_names: vec!["test.Marker".into()],
        targets: vec![target.into()],
        envelopes: vec![MessageEnvelope {
            type_id: 0,
            message_data: n.to_string().into_bytes(),
            target: 0,
            sender: 0,
            serializer_id: protoactor_remote::JSON,
            ..Default::default()
        }],
        senders: vec![],
    })
}

/// Opens a rogue stream and completes the handshake.
async fn handshaken(address: &str, member_id: &str) -> (mpsc::Sender<RemoteMessage>, Streaming<RemoteMessage>) {
    handshaken_as(address, member_id, "127.0.0.1:1").await
}

/// Opens a rogue stream claiming to be the system at `claimed_address`.
async fn handshaken_as(
    address: &str,
    member_id: &str,
    claimed_address: &str,
) -> (mpsc::Sender<RemoteMessage>, Streaming<RemoteMessage>) {
    let (tx, response) = rogue_stream(address).await;
    tx.send(connect_request_from(member_id, claimed_address)).await.expect("send handshake");
    let mut inbound = response.expect("the stream opens");
    let first = tokio::time::timeout(WAIT, inbound.message()).await.expect("handshake answered in time");
    match first {
        Ok(Some(RemoteMessage {
            message_type: Some(MessageType::ConnectResponse(ConnectResponse { blocked, .. })),
        })) => {
            assert!(!blocked)
        }
        other => panic!("expected a ConnectResponse, got {other:?}"),
    }
    (tx, inbound)
}

/// Expects the stream to end with an error status (the server refused it).
async fn expect_refused(response: Result<Streaming<RemoteMessage>, tonic::Status>) -> tonic::Status {
    let mut inbound = match response {
        Ok(inbound) => inbound,
        Err(status) => return status,
    };
    match tokio::time::timeout(WAIT, inbound.message()).await.expect("the server answers in time") {
        Err(status) => status,
        Ok(Some(m)) => panic!("the server answered a bad stream with {m:?}"),
        Ok(None) => panic!("the stream ended without a status"),
    }
}

fn undelivered_at(system: &ActorSystem) -> (Subscription, mpsc::UnboundedReceiver<UndeliveredRemoteMessage>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let sub = system.event_stream().subscribe::<DeadLetterEvent>(move |e| {
        if let Some(u) = e.message.downcast_ref::<UndeliveredRemoteMessage>() {
            let _ = tx.send(u.clone());
        }
    });
    (sub, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_that_do_not_open_with_a_connect_request_are_refused() {
    let (a, b) = pair().await;
    b.echo("echo");
    let (_, mut seen) = b.recorder("sink");
    let address = b.address.clone();
    while_a_good_client_talks(&a, b.pid("echo"), async {
        // A batch before the handshake: refused, and not delivered.
        let (tx, response) = rogue_stream(&address).await;
        tx.send(marker_batch("sink", 1)).await.expect("send");
        let status = expect_refused(response).await;
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");

        // A ConnectRequest without a connection type.
        let (tx, response) = rogue_stream(&address).await;
        tx.send(RemoteMessage { message_type: Some(MessageType::ConnectRequest(ConnectRequest::default())) })
            .await
            .expect("send");
        assert_eq!(expect_refused(response).await.code(), tonic::Code::InvalidArgument);

        // An empty RemoteMessage.
        let (tx, response) = rogue_stream(&address).await;
        tx.send(RemoteMessage::default()).await.expect("send");
        assert_eq!(expect_refused(response).await.code(), tonic::Code::InvalidArgument);

        // A client connection handshakes fine (it has no address to answer to).
        let (tx, response) = rogue_stream(&address).await;
        let hello = ConnectRequest {
            connection_type: Some(connect_request::ConnectionType::ClientConnection(ClientConnection {
                member_id: "client".into(),
                cluster_name: None,
            })),
        };
        tx.send(RemoteMessage { message_type: Some(MessageType::ConnectRequest(hello)) }).await.expect("send");
        let mut inbound = response.expect("opens");
        let first = tokio::time::timeout(WAIT, inbound.message()).await.expect("answered");
        assert!(matches!(first, Ok(Some(RemoteMessage { message_type: Some(MessageType::ConnectResponse(_)) }))));
        tx.send(marker_batch("sink", 2)).await.expect("send");
        // Only the marker sent after a handshake arrives. (The stream stays
        // open meanwhile: dropping it would reset it before the batch is read.)
        assert_eq!(next_seen(&mut seen).await.body, Body::Marker(2));
        drop(inbound);
    })
    .await;
    a.stop().await;
    b.stop().await;
}

/// An envelope with the given indices and payload.
fn envelope(type_id: i32, target: i32, sender: i32, serializer_id: i32, data: &[u8]) -> MessageEnvelope {
    MessageEnvelope { type_id, target, sender, serializer_id, message_data: data.to_vec(), ..Default::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_envelopes_are_dead_lettered_and_the_stream_keeps_working() {
    let (a, b) = pair().await;
    b.echo("echo");
    let (_, mut seen) = b.recorder("sink");
    let (_sub, mut undelivered) = undelivered_at(&b.system);
    let address = b.address.clone();
    let json = protoactor_remote::JSON;
    let proto = protoactor_remote::PROTOBUF;
    while_a_good_client_talks(&a, b.pid("echo"), async {
        let (tx, _inbound) = handshaken(&address, "rogue").await;
        let bad = MessageBatch {
            type_names: vec!["test.Ping".into(), "actor.Watch".into(), "actor.Terminated".into(), "no.Such".into()],
            targets: vec!["sink".into(), "nobody".into()],
            senders: vec![protoactor_actor::proto::Pid { address: String::new(), id: "s".into(), request_id: 0 }],
            envelopes: vec![
                envelope(99, 0, 0, json, b"1"),                // type index out of range
                envelope(-1, 0, 0, json, b"1"),                // negative type index
                envelope(i32::MIN, 0, 0, json, b"1"),          // most negative type index
                envelope(0, 99, 0, json, b"1"),                // target index out of range
                envelope(0, -1, 0, json, b"1"),                // negative target index
                envelope(0, i32::MIN, 0, json, b"1"),          // most negative target index
                envelope(0, 0, 99, json, b"1"),                // sender index out of range
                envelope(0, 0, -1, json, b"1"),                // negative sender index
                envelope(0, 0, 0, json, b"{not json"),         // undecodable JSON
                envelope(0, 0, 0, proto, b"1"),                // serializer mismatch
                envelope(0, 0, 0, 77, b"1"),                   // unknown serializer
                envelope(1, 0, 0, proto, &[0xff, 0xff, 0xff]), // corrupt protobuf system message
                envelope(1, 0, 0, proto, b""),                 // Watch without a watcher
                envelope(2, 0, 0, proto, b""),                 // Terminated without who
                envelope(3, 0, 0, json, b"1"),                 // unknown type name
            ],
        };
        let bad_count = bad.envelopes.len();
        tx.send(batch(bad)).await.expect("send the bad batch");
        for i in 0..bad_count {
            recv(&mut undelivered, &format!("dead letter {i} of the bad batch")).await;
        }
        // The same stream still delivers a good message, and the sink saw
        // nothing of the bad batch before it.
        tx.send(marker_batch("sink", 7)).await.expect("send the good batch");
        assert_eq!(next_seen(&mut seen).await.body, Body::Marker(7));
    })
    .await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn most_negative_sender_index_does_not_kill_the_stream() {
    let (a, b) = pair().await;
    b.echo("echo");
    let (_, mut seen) = b.recorder("sink");
    let address = b.address.clone();
    while_a_good_client_talks(&a, b.pid("echo"), async {
        let (tx, _inbound) = handshaken(&address, "rogue").await;
        let bad = MessageBatch {
            type_names: vec!["test.Ping".into()],
            targets: vec!["sink".into()],
            envelopes: vec![envelope(0, 0, i32::MIN, protoactor_remote::JSON, b"1")],
            senders: vec![],
        };
        tx.send(batch(bad)).await.expect("send");
        tx.send(marker_batch("sink", 8)).await.expect("send the good batch");
        assert_eq!(next_seen(&mut seen).await.body, Body::Marker(8), "the stream survived");
    })
    .await;
    a.stop().await;
    b.stop().await;
}

/// A random, structurally valid but semantically random batch. System
/// messages that stop actors are left out: a peer may legitimately stop
/// actors, which is not what this test is about.
fn random_batch() -> MessageBatch {
    const NAMES: &[&str] = &[
        "test.Ping",
        "test.Text",
        "test.Marker",
        "test.ProtoPing",
        "actor.Watch",
        "actor.Unwatch",
        "actor.Terminated",
        "actor.DeadLetterResponse",
        "remote.ActorPidRequest",
        "",
    ];
    let word = || (0..fastrand::usize(0..12)).map(|_| fastrand::alphanumeric()).collect::<String>();
    let mut type_names: Vec<String> = (0..fastrand::usize(0..4)).map(|_| word()).collect();
    type_names.extend((0..fastrand::usize(0..4)).map(|_| NAMES[fastrand::usize(..NAMES.len())].to_string()));
    let targets: Vec<String> =
        (0..fastrand::usize(0..4)).map(|_| if fastrand::bool() { word() } else { "nobody".to_string() }).collect();
    let senders = (0..fastrand::usize(0..3))
        .map(|_| protoactor_actor::proto::Pid { address: String::new(), id: word(), request_id: fastrand::u32(..) })
        .collect();
    let index = || if fastrand::u8(..) < 16 { fastrand::i32(..) } else { fastrand::i32(-2..6) };
    let envelopes = (0..fastrand::usize(0..20))
        .map(|_| MessageEnvelope {
            type_id: index(),
            target: index(),
            // Full-range sender indices are covered by their own test.
            sender: fastrand::i32(-2..6),
            serializer_id: fastrand::i32(-1..3),
            message_data: match fastrand::u8(..4) {
                0 => b"1".to_vec(),
                1 => b"\"text\"".to_vec(),
                _ => random_bytes(fastrand::usize(0..64)),
            },
            message_header: fastrand::bool()
                .then(|| MessageHeader { header_data: (0..fastrand::usize(0..3)).map(|_| (word(), word())).collect() }),
            target_request_id: fastrand::u32(..),
            sender_request_id: fastrand::u32(..),
        })
        .collect();
    MessageBatch { type_names, targets, envelopes, senders }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_protobuf_batches_do_not_disturb_anyone() {
    let (a, b) = pair().await;
    b.echo("echo");
    let (_, mut seen) = b.recorder("sink");
    let address = b.address.clone();
    while_a_good_client_talks(&a, b.pid("echo"), async {
        let (tx, _inbound) = handshaken(&address, "fuzzer").await;
        for _ in 0..300 {
            tx.send(batch(random_batch())).await.expect("send a random batch");
        }
        tx.send(marker_batch("sink", 9)).await.expect("send the good batch");
        assert_eq!(next_seen(&mut seen).await.body, Body::Marker(9), "the fuzzed stream still delivers");
    })
    .await;
    a.stop().await;
    b.stop().await;
}

/// Sends raw bytes as gRPC messages, bypassing protobuf encoding.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}

/// Opens a Receive stream that sends `frames` as raw gRPC messages and
/// returns how it ended; fails the test if the server does not end it.
async fn raw_stream(address: &str, frames: Vec<Vec<u8>>) -> Result<(), tonic::Status> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .expect("valid uri")
        .connect()
        .await
        .expect("connect");
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.map_err(|e| tonic::Status::unknown(e.to_string()))?;
    let path = tonic::codegen::http::uri::PathAndQuery::from_static("/remote.Remoting/Receive");
    let (tx, rx) = mpsc::channel(8);
    for f in frames {
        tx.send(f).await.expect("queue a frame");
    }
    let mut inbound = grpc.streaming(tonic::Request::new(ReceiverStream::new(rx)), path, RawCodec).await?.into_inner();
    loop {
        match tokio::time::timeout(WAIT, inbound.message()).await.expect("the server ends a bad stream in time") {
            Ok(Some(_)) => {} // the handshake answer, if the first frame happened to be one
            Ok(None) => return Ok(()),
            Err(status) => return Err(status),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_and_oversized_protobuf_frames_end_only_their_own_stream() {
    const MAX: usize = 64 * 1024;
    let a = Node::start(config()).await;
    let b = Node::start(config().with_max_frame_size(MAX)).await;
    b.echo("echo");
    let address = b.address.clone();
    while_a_good_client_talks(&a, b.pid("echo"), async {
        use prost::Message as _;
        let hello = connect_request("raw").encode_to_vec();
        // A frame that is not protobuf at all, first or after a good handshake.
        let not_protobuf = vec![0xff; 32];
        let ended = raw_stream(&address, vec![not_protobuf.clone()]).await;
        let status = ended.expect_err("refused before the handshake");
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        // After the handshake the server just ends the stream (raw_stream
        // fails the test if it does not end).
        let _ = raw_stream(&address, vec![hello.clone(), not_protobuf]).await;
        // Random frames.
        for _ in 0..20 {
            let frames = (0..fastrand::usize(1..4)).map(|_| random_bytes(fastrand::usize(1..512))).collect();
            let _ = raw_stream(&address, [vec![hello.clone()], frames].concat()).await;
        }
        // A frame over the server's limit.
        let _ = raw_stream(&address, vec![hello.clone(), vec![0u8; MAX + 1]]).await;
        // Over the limit before the handshake: refused with the decoder's status.
        let status = raw_stream(&address, vec![vec![0u8; MAX + 1]]).await.expect_err("refused");
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    })
    .await;
    a.stop().await;
    b.stop().await;
}

/// The next batch B sends back on a rogue stream, or `None` within `wait`.
async fn next_batch(inbound: &mut Streaming<RemoteMessage>, wait: Duration) -> Option<MessageBatch> {
    loop {
        match tokio::time::timeout(wait, inbound.message()).await {
            Err(_) => return None,
            Ok(Ok(Some(RemoteMessage { message_type: Some(MessageType::MessageBatch(b)) }))) => return Some(b),
            Ok(Ok(Some(_))) => continue,
            Ok(other) => panic!("the stream ended: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_ride_back_only_to_a_peer_at_the_address_it_claims() {
    let (a, b) = pair().await;
    b.echo("echo");
    let address = b.address.clone();
    while_a_good_client_talks(&a, b.pid("echo"), async {
        // Connecting from 127.0.0.1 and claiming it: B's messages for that
        // address come back on the stream, no second connection needed.
        let (_tx, mut inbound) = handshaken_as(&address, "honest", "127.0.0.1:9").await;
        b.system.root().send(&Pid::new("127.0.0.1:9", "someone"), Marker(7));
        let batch = next_batch(&mut inbound, WAIT).await.expect("B's message comes back on the stream");
        assert_eq!(batch.targets, vec!["someone".to_string()]);
        assert_eq!(batch.type_names, vec!["test.Marker".to_string()]);

        // Claiming an address it does not connect from: B must not hand it
        // the traffic for that address (B dials the address instead).
        let (_tx, mut inbound) = handshaken_as(&address, "impostor", "10.255.255.1:9").await;
        b.system.root().send(&Pid::new("10.255.255.1:9", "victim"), Marker(8));
        // A window, not synchronisation: nothing may arrive within it.
        assert!(next_batch(&mut inbound, Duration::from_millis(500)).await.is_none(), "traffic was hijacked");
    })
    .await;
    a.stop().await;
    b.stop().await;
}
