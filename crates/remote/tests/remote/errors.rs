//! What fails, how fast and how clearly: unregistered and unknown types,
//! frame size limits, a peer that dies with requests pending, the
//! terminated-address block window, and a peer that comes back.

use crate::common;

use std::time::{Duration, Instant};

use common::*;
use protoactor_actor::prelude::*;
use protoactor_actor::{DeadLetterEvent, DeliveryFailureKind, MessageHeader};
use protoactor_remote::{EndpointConnected, EndpointTerminated, UndeliveredRemoteMessage};
use tokio::sync::mpsc;

/// A type no system registered.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct NotRegistered(u32);

/// A type only the sending system registered.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct OnlyOnSender(u32);

/// What a dead letter looked like, in a form a channel can carry.
#[derive(Debug)]
struct DeadLetter {
    pid: Pid,
    type_name: &'static str,
    sender: Option<Pid>,
    undelivered: Option<UndeliveredRemoteMessage>,
    ping: Option<u64>,
}

fn dead_letters(system: &ActorSystem) -> (protoactor_actor::Subscription, mpsc::UnboundedReceiver<DeadLetter>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let sub = system.event_stream().subscribe::<DeadLetterEvent>(move |e| {
        let _ = tx.send(DeadLetter {
            pid: e.pid.clone(),
            type_name: e.message.type_name(),
            sender: e.sender.clone(),
            undelivered: e.message.downcast_ref::<UndeliveredRemoteMessage>().cloned(),
            ping: e.message.downcast_ref::<Ping>().map(|p| p.0),
        });
    });
    (sub, rx)
}

/// A config that gives up on a lost peer quickly.
fn impatient() -> protoactor_remote::RemoteConfig {
    config().with_retries(1, Duration::from_millis(50)).with_connect_timeout(Duration::from_secs(1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unregistered_type_fails_at_the_sender_at_once() {
    let (a, b) = pair().await;
    b.echo("echo");
    let echo = b.pid("echo");
    let (_sub, mut dead) = dead_letters(&a.system);

    // Refused before anything is sent: a wait for the 30 s timeout would end as Error::Timeout.
    let result = a.system.root().request_future::<Pong, _>(&echo, NotRegistered(1), Duration::from_secs(30)).await;
    match result {
        Err(Error::DeliveryFailed { target, kind, reason }) => {
            assert_eq!(kind, DeliveryFailureKind::NotSerializable);
            assert_eq!(target, echo);
            assert!(reason.contains("NotRegistered"), "names the type: {reason}");
            assert!(reason.contains("with_json") && reason.contains("with_protobuf"), "says how: {reason}");
        }
        other => panic!("expected DeliveryFailed, got {other:?}"),
    }

    // A plain send has nobody to tell: it becomes a dead letter on the sender.
    a.system.root().send(&echo, NotRegistered(2));
    let d = recv_matching(&mut dead, "the dead letter", |d| (d.pid == echo).then_some(d)).await;
    assert!(d.type_name.contains("NotRegistered"), "{d:?}");

    // The endpoint is unharmed.
    let pong: Pong = a.system.root().request_future(&echo, Ping(1), WAIT).await.expect("still works");
    assert_eq!(pong, Pong(1));
    a.stop().await;
    b.stop().await;
}

/// A payload near the limit of a frame of `max` bytes: the whole envelope
/// (payload, headers, ids) must stay 1 KiB under it, so 4 KiB under always fits.
fn near_limit_text(max: usize) -> usize {
    max - 4 * 1024
}

/// A payload that alone is over what a frame of `max` bytes may carry.
fn over_limit_text(max: usize) -> usize {
    max - 1024 + 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_just_under_the_frame_limit_arrives_and_one_over_fails_at_the_sender() {
    const MAX: usize = 64 * 1024;
    let a = Node::start(config().with_max_frame_size(MAX)).await;
    let b = Node::start(config().with_max_frame_size(MAX)).await;
    b.echo("echo");
    let echo = b.pid("echo");
    let (_sub, mut dead) = dead_letters(&a.system);

    let fits = Text("x".repeat(near_limit_text(MAX)));
    let back: Text = a.system.root().request_future(&echo, fits.clone(), WAIT).await.expect("just under arrives");
    assert_eq!(back.0.len(), fits.0.len());
    // Several at once must be split over frames, not merged past the limit.
    let burst: Vec<_> = (0..5).map(|_| a.system.root().request_future::<Text, _>(&echo, fits.clone(), WAIT)).collect();
    for r in futures_util::future::join_all(burst).await {
        assert_eq!(r.expect("each of the burst arrives").0.len(), fits.0.len());
    }

    let too_big = Text("x".repeat(over_limit_text(MAX)));
    // Refused at the sender: a wait for the 30 s timeout would end as Error::Timeout.
    let result = a.system.root().request_future::<Text, _>(&echo, too_big.clone(), Duration::from_secs(30)).await;
    match result {
        Err(Error::DeliveryFailed { kind, reason, .. }) => {
            assert_eq!(kind, DeliveryFailureKind::TooLarge);
            let limit = format!("configured maximum frame size of {MAX} bytes");
            assert!(reason.contains(&limit), "quotes the configured limit: {reason}");
            let size = too_big.0.len() + 2;
            let quoted = reason.split(" of ").nth(1).and_then(|r| r.split(' ').next()).and_then(|n| n.parse().ok());
            assert!(quoted.is_some_and(|n: usize| n >= size && n < size + 256), "quotes the message's size: {reason}");
            assert!(reason.contains("with_max_frame_size"), "says what to do: {reason}");
        }
        other => panic!("expected DeliveryFailed, got {other:?}"),
    }
    a.system.root().send(&echo, too_big);
    let d = recv_matching(&mut dead, "the oversized tell", |d| (d.pid == echo).then_some(d)).await;
    let undelivered = d.undelivered.expect("dead-lettered as UndeliveredRemoteMessage");
    assert_eq!(undelivered.type_name, "test.Text");
    assert_eq!(undelivered.data.len(), over_limit_text(MAX) + 2);

    let pong: Pong = a.system.root().request_future(&echo, Ping(2), WAIT).await.expect("the stream still works");
    assert_eq!(pong, Pong(2));
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_just_under_the_default_4_mib_limit_arrives() {
    let (a, b) = pair().await;
    b.echo("echo");
    let fits = Text("y".repeat(near_limit_text(4 * 1024 * 1024)));
    let back: Text = a.system.root().request_future(&b.pid("echo"), fits.clone(), WAIT).await.expect("arrives");
    assert_eq!(back, fits);
    let over = Text("y".repeat(over_limit_text(4 * 1024 * 1024)));
    let result = a.system.root().request_future::<Text, _>(&b.pid("echo"), over, WAIT).await;
    match &result {
        Err(Error::DeliveryFailed { kind: DeliveryFailureKind::TooLarge, reason, .. }) => {
            assert!(reason.contains("configured maximum frame size of 4194304 bytes"), "{reason}");
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_headers_on_a_message_at_the_limit_fail_clearly_not_silently() {
    const MAX: usize = 64 * 1024;
    let a = Node::start(config().with_max_frame_size(MAX)).await;
    let b = Node::start(config().with_max_frame_size(MAX)).await;
    b.echo("echo");
    let echo = b.pid("echo");
    // The payload alone is within the limit; with 4 KiB of headers the frame is not.
    let header = MessageHeader::new().with("big", "h".repeat(4096));
    let fits = Text("x".repeat(near_limit_text(MAX)));
    let result =
        a.system.root().with_header(header).request_future::<Text, _>(&echo, fits, Duration::from_secs(5)).await;
    match &result {
        Ok(back) => assert_eq!(back.0.len(), near_limit_text(MAX)),
        Err(Error::DeliveryFailed { .. }) => {}
        Err(other) => panic!("the message must arrive or fail clearly at the sender, not be lost: {other:?}"),
    }
    let pong: Pong = a.system.root().request_future(&echo, Ping(3), WAIT).await.expect("the stream still works");
    assert_eq!(pong, Pong(3));
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_type_name_is_dead_lettered_on_the_receiver_and_the_stream_goes_on() {
    let a = Node::start(config().with_json::<OnlyOnSender>("test.OnlyOnSender")).await;
    let b = Node::start(config()).await;
    let (sink, mut seen) = b.recorder("sink");
    let (_sub, mut dead) = dead_letters(&b.system);

    a.system.root().send(&b.pid("sink"), OnlyOnSender(7));
    a.system.root().send(&b.pid("sink"), Marker(1));
    let d = recv_matching(&mut dead, "the unknown type at B", |d| d.undelivered.is_some().then_some(d)).await;
    assert_eq!(d.pid, sink);
    let undelivered = d.undelivered.expect("checked");
    assert_eq!(undelivered.type_name, "test.OnlyOnSender");
    assert_eq!(undelivered.data, b"7".to_vec(), "the undecodable bytes are kept");
    // The message behind it on the same stream is delivered, and the unknown
    // one never reached the actor.
    assert_eq!(next_seen(&mut seen).await.body, Body::Marker(1));
    for n in 0..10 {
        let pong: Pong = a.system.root().request_future(&sink, Ping(n), WAIT).await.expect("stream keeps working");
        assert_eq!(pong, Pong(n));
    }
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_of_a_type_unknown_to_the_receiver_fails_fast() {
    let a = Node::start(config().with_json::<OnlyOnSender>("test.OnlyOnSender")).await;
    let b = Node::start(config()).await;
    b.echo("echo");
    let result =
        a.system.root().request_future::<Pong, _>(&b.pid("echo"), OnlyOnSender(1), Duration::from_secs(10)).await;
    match &result {
        Err(Error::DeliveryFailed { kind: DeliveryFailureKind::UnknownType, reason, target }) => {
            assert_eq!(target, &b.pid("echo"));
            assert!(reason.contains("does not know the message type `test.OnlyOnSender`"), "names the type: {reason}");
            assert!(reason.contains(&*b.address), "names the receiver: {reason}");
        }
        other => panic!("the receiver does not know the type; the requester learns that at once: {other:?}"),
    }
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_requests_to_a_peer_that_dies_fail_fast_as_endpoint_gone() {
    let a = Node::start(impatient()).await;
    let b = Node::start(config()).await;
    // The recorder does not answer WhoAreYou: those requests stay pending.
    let (_, mut seen) = b.recorder("silent");
    let silent = b.pid("silent");
    const N: u64 = 20;
    let timeout = Duration::from_secs(60);
    let pending: Vec<_> =
        (0..N).map(|n| a.system.root().request_future::<Identity, _>(&silent, WhoAreYou(n), timeout)).collect();
    for _ in 0..N {
        let s = next_seen(&mut seen).await;
        assert!(s.type_name.ends_with("WhoAreYou"), "{s:?}");
    }

    b.remote.shutdown(false).await;
    // Sent while the endpoint is finding out: queued, then failed too.
    let late: Vec<_> =
        (0..N).map(|n| a.system.root().request_future::<Identity, _>(&silent, WhoAreYou(n), timeout)).collect();
    for (i, r) in futures_util::future::join_all(pending.into_iter().chain(late)).await.into_iter().enumerate() {
        assert!(
            matches!(r, Err(Error::DeliveryFailed { kind: DeliveryFailureKind::EndpointGone, .. })),
            "request {i}: {r:?}"
        );
    }
    a.stop().await;
    b.system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_during_the_terminated_address_window_fail_as_endpoint_gone() {
    let a = Node::start(impatient().with_terminated_address_block(Duration::from_secs(60))).await;
    let b = Node::start(config()).await;
    b.echo("echo");
    let echo = b.pid("echo");
    let _: Pong = a.system.root().request_future(&echo, Ping(0), WAIT).await.expect("connected");
    let (_sub, mut ended) = a.system.event_stream().subscribe_channel::<EndpointTerminated>();
    let (_sub2, mut dead) = dead_letters(&a.system);
    let port = b.port();
    b.stop().await;
    recv(&mut ended, "EndpointTerminated").await;

    a.system.root().send(&echo, Ping(5));
    let d = recv_matching(&mut dead, "the tell", |d| (d.ping == Some(5)).then_some(d)).await;
    assert_eq!(d.pid, echo);
    assert_eq!(d.sender, None);
    let r = a.system.root().request_future::<Pong, _>(&echo, Ping(6), Duration::from_secs(30)).await;
    assert!(matches!(r, Err(Error::DeliveryFailed { kind: DeliveryFailureKind::EndpointGone, .. })), "{r:?}");

    // Even with a system listening there again, the window holds: no new
    // connection is tried until it ends.
    let b2 = Node::start(config_on(port)).await;
    b2.echo("echo");
    let r = a.system.root().request_future::<Pong, _>(&echo, Ping(7), Duration::from_secs(30)).await;
    assert!(
        matches!(r, Err(Error::DeliveryFailed { kind: DeliveryFailureKind::EndpointGone, .. })),
        "still blocked: {r:?}"
    );
    a.stop().await;
    b2.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_resumes_when_a_new_system_binds_the_same_port() {
    let a = Node::start(impatient().with_terminated_address_block(Duration::from_millis(200))).await;
    let b = Node::start(config()).await;
    b.echo("echo");
    // The same pid value is used throughout: its cached endpoint must not stick.
    let echo = b.pid("echo");
    let _: Pong = a.system.root().request_future(&echo, Ping(0), WAIT).await.expect("connected");
    let (_sub, mut ended) = a.system.event_stream().subscribe_channel::<EndpointTerminated>();
    let (_sub2, mut connected) = a.system.event_stream().subscribe_channel::<EndpointConnected>();
    let port = b.port();
    b.stop().await;
    let event = recv(&mut ended, "EndpointTerminated").await;
    assert_eq!(event.address, b.address);

    let b2 = Node::start(config_on(port)).await;
    assert_eq!(b2.address, b.address, "same address");
    assert_ne!(b2.system.id(), b.system.id(), "a new system");
    b2.echo("echo");

    // Poll until the block window has passed and the new connection is up.
    let deadline = Instant::now() + WAIT;
    let mut attempt = 0;
    loop {
        attempt += 1;
        match a.system.root().request_future::<Pong, _>(&echo, Ping(attempt), Duration::from_secs(1)).await {
            Ok(Pong(n)) => {
                assert_eq!(n, attempt);
                break;
            }
            Err(e) => assert!(Instant::now() < deadline, "traffic did not resume: {e}"),
        }
        // Polling interval only; the loop's exit is the successful request.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let c = recv_matching(&mut connected, "EndpointConnected to the new system", |c| {
        (c.member_id == b2.system.id()).then_some(c)
    })
    .await;
    assert_eq!(c.address, b.address);
    // And both ways.
    let a_echo = a.echo("echo");
    let _: Pong = b2.system.root().request_future(&a_echo, Ping(1), WAIT).await.expect("B2 reaches A");
    a.stop().await;
    b2.stop().await;
}

/// The same wire name with another shape on each side: B knows the name but
/// cannot read A's bytes.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct ShapeOnSender(String);
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct ShapeOnReceiver {
    #[allow(dead_code)]
    n: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_the_receiver_cannot_decode_fails_fast_as_a_decode_error() {
    let a = Node::start(config().with_json::<ShapeOnSender>("test.Shape")).await;
    let b = Node::start(config().with_json::<ShapeOnReceiver>("test.Shape")).await;
    b.echo("echo");
    let (_sub, mut dead) = dead_letters(&b.system);
    let result = a
        .system
        .root()
        .request_future::<Pong, _>(&b.pid("echo"), ShapeOnSender("x".into()), Duration::from_secs(30))
        .await;
    match &result {
        Err(Error::DeliveryFailed { kind: DeliveryFailureKind::Decode, reason, .. }) => {
            assert!(reason.contains("test.Shape"), "names the type: {reason}");
        }
        other => panic!("expected a decode failure: {other:?}"),
    }
    let d = recv_matching(&mut dead, "the undecodable request at B", |d| d.undelivered.clone()).await;
    assert_eq!(d.kind, DeliveryFailureKind::Decode);
    assert_eq!(d.data, br#""x""#.to_vec(), "the bytes are kept");
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_terminated_carries_its_kind_and_reason() {
    let a = Node::start(impatient()).await;
    let b = Node::start(config()).await;
    b.echo("echo");
    let _: Pong = a.system.root().request_future(&b.pid("echo"), Ping(0), WAIT).await.expect("connected");
    let (_sub, mut ended) = a.system.event_stream().subscribe_channel::<EndpointTerminated>();
    b.stop().await;
    let event = recv(&mut ended, "EndpointTerminated").await;
    assert_eq!(event.kind, DeliveryFailureKind::EndpointGone, "{event:?}");
    assert!(event.reason.contains("connection attempts failed"), "{event:?}");
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_endpoint_queue_fails_requests_as_queue_full() {
    // Nobody listens at the address: messages wait in the endpoint's queue of one.
    let a = Node::start(config().with_endpoint_queue_size(1).with_retries(50, Duration::from_millis(200))).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let nowhere = Pid::new(format!("127.0.0.1:{port}").as_str(), "echo");
    a.system.root().send(&nowhere, Ping(1));
    let result = a.system.root().request_future::<Pong, _>(&nowhere, Ping(2), Duration::from_secs(30)).await;
    match &result {
        Err(Error::DeliveryFailed { kind: DeliveryFailureKind::QueueFull, reason, .. }) => {
            assert!(reason.contains("is full (1 messages)"), "{reason}");
        }
        other => panic!("expected QueueFull: {other:?}"),
    }
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_after_remoting_shut_down_fail_as_shutting_down() {
    let (a, b) = pair().await;
    b.echo("echo");
    let _: Pong = a.system.root().request_future(&b.pid("echo"), Ping(0), WAIT).await.expect("connected");
    let (_sub, mut ended) = a.system.event_stream().subscribe_channel::<EndpointTerminated>();
    a.remote.shutdown(true).await;
    // The endpoint flushes what was queued, then terminates.
    let event = recv(&mut ended, "EndpointTerminated on A").await;
    assert_eq!(event.kind, DeliveryFailureKind::ShuttingDown, "{event:?}");
    let result = a.system.root().request_future::<Pong, _>(&b.pid("echo"), Ping(1), Duration::from_secs(30)).await;
    assert!(
        matches!(&result, Err(Error::DeliveryFailed { kind: DeliveryFailureKind::ShuttingDown, .. })),
        "{result:?}"
    );
    a.system.shutdown().await;
    b.stop().await;
}

/// A delivery failure whose kind this version does not know (a newer peer's)
/// reaches the requester as `Other`, with the peer's reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_of_a_kind_this_version_does_not_know_arrives_as_other() {
    use prost::Message as _;
    use protoactor_remote::proto::remote_message::MessageType;
    use protoactor_remote::proto::remoting_client::RemotingClient;
    use protoactor_remote::proto::{
        ConnectRequest, DeliveryFailure, MessageBatch, MessageEnvelope, RemoteMessage, ServerConnection,
        connect_request,
    };

    let a = Node::start(config()).await;
    // A hand-made peer at 127.0.0.1:1: a's messages for that address ride
    // back on its stream (it connects from the host it claims).
    let peer = "127.0.0.1:1";
    let mut client = RemotingClient::connect(format!("http://{}", a.address)).await.expect("connect");
    let (tx, rx) = mpsc::channel(4);
    let hello = ConnectRequest {
        connection_type: Some(connect_request::ConnectionType::ServerConnection(ServerConnection {
            member_id: "newer".into(),
            address: peer.into(),
            block_list: vec![],
            cluster_name: Some(String::new()),
        })),
    };
    tx.send(RemoteMessage { message_type: Some(MessageType::ConnectRequest(hello)) }).await.expect("send");
    let mut inbound =
        client.receive(tokio_stream::wrappers::ReceiverStream::new(rx)).await.expect("opens").into_inner();
    let request = {
        let system = a.system.clone();
        tokio::spawn(async move {
            system.root().request_future::<Pong, _>(&Pid::new(peer, "svc"), Ping(1), Duration::from_secs(30)).await
        })
    };
    // Answer the request's sender with a failure of kind code 99.
    let sender = loop {
        match tokio::time::timeout(WAIT, inbound.message()).await.expect("a's request arrives").expect("stream") {
            Some(RemoteMessage { message_type: Some(MessageType::MessageBatch(batch)) }) => {
                break batch.senders.first().cloned().expect("the request has a sender");
            }
            Some(_) => continue,
            None => panic!("the stream ended"),
        }
    };
    let failure = DeliveryFailure {
        target: Some(protoactor_actor::proto::Pid { address: peer.into(), id: "svc".into(), request_id: 0 }),
        kind: 99,
        reason: "a reason from a newer version".into(),
    };
    let batch = MessageBatch {
        type_names: vec!["remote.DeliveryFailure".into()],
        targets: vec![sender.id.clone()],
        envelopes: vec![MessageEnvelope {
            type_id: 0,
            message_data: failure.encode_to_vec(),
            target: 0,
            target_request_id: sender.request_id,
            ..Default::default()
        }],
        senders: vec![],
    };
    tx.send(RemoteMessage { message_type: Some(MessageType::MessageBatch(batch)) }).await.expect("send");
    match request.await.expect("task") {
        Err(Error::DeliveryFailed { kind: DeliveryFailureKind::Other, reason, .. }) => {
            assert_eq!(reason, "a reason from a newer version");
        }
        other => panic!("expected DeliveryFailed(Other), got {other:?}"),
    }
    drop(tx);
    a.stop().await;
}
