//! Messaging between systems over loopback: tell, request/response, forward,
//! senders, headers, ordering, serializers, remote stop.
//!
//! Counterparts of the .NET `RemoteTests` are named in a comment above each test.

use crate::common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::*;
use futures_util::future::join_all;
use protoactor_actor::MessageHeader;
use protoactor_actor::prelude::*;
use protoactor_actor::proto::{Touch, Touched};

// .NET RemoteTests: CanSendAndReceiveToExistingRemote
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tell_delivers_every_message_exactly_once() {
    let (a, b) = pair().await;
    let (_, mut seen) = b.recorder("sink");
    let sink = b.pid("sink");

    const N: u64 = 1000;
    for n in 0..N {
        a.system.root().send(&sink, Seq { from: 0, n });
    }
    a.system.root().send(&sink, Marker(1));

    // One sender over one stream keeps its order, so everything sent before
    // the marker has arrived once the marker has.
    let mut got = Vec::new();
    loop {
        let s = next_seen(&mut seen).await;
        match s.body {
            Body::Seq(seq) => {
                assert!(s.sender.is_none(), "a tell carries no sender: {:?}", s.sender);
                got.push(seq.n);
            }
            Body::Marker(1) => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(got.len() as u64, N, "exactly {N} messages arrive");
    assert_eq!(got.iter().copied().collect::<HashSet<_>>().len() as u64, N, "no duplicates");
    a.stop().await;
    b.stop().await;
}

// .NET RemoteTests: CanMakeRequestToRemoteActor (Touch / Touched)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_response_and_touch() {
    let (a, b) = pair().await;
    let echo = b.echo("echo");
    let remote_echo = b.pid("echo");

    let pong: Pong = a.system.root().request_future(&remote_echo, Ping(41), WAIT).await.expect("pong");
    assert_eq!(pong, Pong(41));

    let touched: Touched = a.system.root().request_future(&remote_echo, Touch {}, WAIT).await.expect("touched");
    let who = Pid::from_proto(&touched.who.expect("Touched names the actor"));
    assert_eq!(who, echo, "the remote actor answered for itself");
    assert_eq!(who.address(), b.address);

    // Asking for the wrong response type is reported, not a hang.
    let wrong = a.system.root().request_future::<Text, _>(&remote_echo, Ping(1), WAIT).await;
    assert!(matches!(wrong, Err(Error::UnexpectedResponse { .. })), "{wrong:?}");
    a.stop().await;
    b.stop().await;
}

// .NET RemoteTests: RemoteHandlesRequestIdsCorrectly (200 batched requests,
// each matched to its own reply)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_each_get_their_own_reply() {
    let (a, b) = pair().await;
    b.echo("echo");
    let echo = b.pid("echo");
    // Issued together so they share batches on the way out and back.
    let requests: Vec<_> =
        (0..200u64).map(|i| a.system.root().request_future::<Identity, _>(&echo, WhoAreYou(i), WAIT)).collect();
    let answers = join_all(requests).await;
    for (i, answer) in answers.into_iter().enumerate() {
        let identity = answer.expect("every request is answered");
        assert_eq!(identity.n, i as u64, "reply {i} went to its own request");
        let sender = identity.sender.expect("the request carried a sender");
        assert!(sender.starts_with(&format!("{}/", a.address)), "sender {sender} is at A");
    }
    a.stop().await;
    b.stop().await;
}

// .NET RemoteTests: WhenRemoteActorNotFound_DeadLetterException
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_to_missing_remote_actor_fails_with_dead_letter() {
    let (a, b) = pair().await;
    let nobody = b.pid("nobody-here");
    let result = a.system.root().request_future::<Pong, _>(&nobody, Ping(1), Duration::from_secs(30)).await;
    match result {
        Err(Error::DeadLetter { target }) => assert_eq!(target, nobody),
        other => panic!("expected a dead letter, got {other:?}"),
    }
    a.stop().await;
    b.stop().await;
}

// .NET RemoteTests: CanForwardBetweenRemotes
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_across_three_systems_keeps_the_original_sender() {
    let (a, b, c) = trio().await;
    c.echo("echo");
    let c_echo = c.pid("echo");
    let (tx, mut through_b) = tokio::sync::mpsc::unbounded_channel();
    let forwarder = Props::from_fn(move |ctx: &mut Context| {
        if ctx.message_is::<WhoAreYou>() || ctx.message_is::<Marker>() {
            let _ = tx.send((ctx.message_type_name(), ctx.sender().cloned()));
            ctx.forward(&c_echo);
        }
        Ok(())
    });
    b.system.root().spawn_named(forwarder, "forwarder").expect("spawn forwarder");

    let identity: Identity =
        a.system.root().request_future(&b.pid("forwarder"), WhoAreYou(7), WAIT).await.expect("answered via C");
    assert_eq!(identity.n, 7);
    assert!(identity.responder.starts_with(&format!("{}/", c.address)), "C answered: {}", identity.responder);
    let sender_at_c = identity.sender.expect("C saw a sender");
    assert!(sender_at_c.starts_with(&format!("{}/future", a.address)), "C saw A's request: {sender_at_c}");

    let (kind, sender_at_b) = recv(&mut through_b, "the request at B").await;
    assert!(kind.ends_with("WhoAreYou"));
    assert_eq!(sender_at_b.map(|s| s.to_string()), Some(sender_at_c), "B saw the same original sender");
    // The reply did not come back through B: the next thing B sees is the marker.
    a.system.root().send(&b.pid("forwarder"), Marker(1));
    let (kind, _) = recv(&mut through_b, "the marker at B").await;
    assert!(kind.ends_with("Marker"), "only the marker passed B after the request, got {kind}");
    a.stop().await;
    b.stop().await;
    c.stop().await;
}

/// A's side of the sender test: asks B, and answers B's question back.
fn asker(b_target: Pid, tx: tokio::sync::mpsc::UnboundedSender<String>) -> Props {
    Props::from_fn(move |ctx: &mut Context| {
        if ctx.message_is::<Marker>() {
            ctx.request(&b_target, WhoAreYou(1));
        } else if let Some(identity) = ctx.message::<Identity>() {
            let _ = tx.send(format!("identity from {}", identity.responder));
        } else if let Some(Ping(n)) = ctx.message::<Ping>() {
            let sender = ctx.sender().map(|s| s.to_string()).unwrap_or_default();
            let _ = tx.send(format!("ping {n} from {sender}"));
            ctx.respond(Pong(*n));
        }
        Ok(())
    })
}

/// B's side: answers, then asks the sender a question of its own.
fn replier(tx: tokio::sync::mpsc::UnboundedSender<String>) -> Props {
    Props::from_fn(move |ctx: &mut Context| {
        if ctx.message_is::<WhoAreYou>() {
            let sender = ctx.sender().cloned().expect("the asker sent with a sender");
            let _ = tx.send(format!("asked by {sender}"));
            ctx.respond(Identity { n: 1, responder: ctx.self_pid().to_string(), sender: Some(sender.to_string()) });
            ctx.request(&sender, Ping(42));
        } else if let Some(Pong(n)) = ctx.message::<Pong>() {
            let sender = ctx.sender().map(|s| s.to_string()).unwrap_or_default();
            let _ = tx.send(format!("pong {n} from {sender}"));
        }
        Ok(())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_sees_the_remote_actor_as_sender_and_can_talk_back() {
    let (a, b) = pair().await;
    let (b_tx, mut at_b) = tokio::sync::mpsc::unbounded_channel();
    let (a_tx, mut at_a) = tokio::sync::mpsc::unbounded_channel();
    let replier_pid = b.system.root().spawn_named(replier(b_tx), "replier").expect("spawn replier");
    let asker_pid = a.system.root().spawn_named(asker(b.pid("replier"), a_tx), "asker").expect("spawn asker");

    a.system.root().send(&asker_pid, Marker(0));
    assert_eq!(recv(&mut at_b, "B asked").await, format!("asked by {asker_pid}"));
    let mut a_events = vec![recv(&mut at_a, "A's first event").await, recv(&mut at_a, "A's second event").await];
    a_events.sort();
    assert_eq!(a_events, vec![format!("identity from {replier_pid}"), format!("ping 42 from {replier_pid}")]);
    assert_eq!(recv(&mut at_b, "B's answer back").await, format!("pong 42 from {asker_pid}"));
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_travel_with_requests_tells_and_forwards() {
    let (a, b, c) = trio().await;
    b.echo("echo");
    let (_, mut seen) = b.recorder("sink");
    c.echo("echo");
    let c_echo = c.pid("echo");
    b.system
        .root()
        .spawn_named(
            Props::from_fn(move |ctx: &mut Context| {
                if ctx.message_is::<GetHeaders>() {
                    ctx.forward(&c_echo);
                }
                Ok(())
            }),
            "forwarder",
        )
        .expect("spawn forwarder");

    let header = MessageHeader::new().with("trace-id", "abc-123").with("tenant", "ünïcode ✓");
    let root = a.system.root().with_header(header.clone());
    let expected =
        vec![("trace-id".to_string(), "abc-123".to_string()), ("tenant".to_string(), "ünïcode ✓".to_string())];

    let HeaderList(mut got) = root.request_future(&b.pid("echo"), GetHeaders, WAIT).await.expect("headers");
    got.sort();
    let mut want = expected.clone();
    want.sort();
    assert_eq!(got, want, "request headers arrive");

    let HeaderList(mut got) = root.request_future(&b.pid("forwarder"), GetHeaders, WAIT).await.expect("forwarded");
    got.sort();
    assert_eq!(got, want, "headers survive a forward to a third system");

    root.send(&b.pid("sink"), Marker(3));
    let s = next_seen(&mut seen).await;
    assert_eq!(s.body, Body::Marker(3));
    let h = s.header.expect("a tell carries its headers");
    assert_eq!(h.get("trace-id"), Some("abc-123"));
    assert_eq!(h.get("tenant"), Some("ünïcode ✓"));

    // No header sent, none received.
    let HeaderList(none) = a.system.root().request_future(&b.pid("echo"), GetHeaders, WAIT).await.expect("none");
    assert!(none.is_empty(), "{none:?}");
    a.stop().await;
    b.stop().await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_per_sender_is_kept_for_10k_messages() {
    let (a, b) = pair().await;
    let (_, mut seen) = b.recorder("sink");
    let sink = b.pid("sink");
    const N: u64 = 10_000;
    // Two concurrent senders: each one's order must survive the shared queue,
    // batching and the stream.
    let senders: Vec<_> = (1..=2u32)
        .map(|from| {
            let root = a.system.root();
            let sink = sink.clone();
            tokio::spawn(async move {
                for n in 0..N {
                    root.send(&sink, Seq { from, n });
                    if n % 1000 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            })
        })
        .collect();
    join_all(senders).await.into_iter().for_each(|r| r.expect("sender task"));

    let mut next = [0u64; 3];
    let mut total = 0;
    while total < 2 * N {
        let s = next_seen(&mut seen).await;
        let Body::Seq(Seq { from, n }) = s.body else { panic!("unexpected {s:?}") };
        assert_eq!(n, next[from as usize], "sender {from} out of order");
        next[from as usize] += 1;
        total += 1;
    }
    assert_eq!(next, [0, N, N]);
    a.stop().await;
    b.stop().await;
}

// .NET RemoteTests: CanMakeBinaryRequestToRemoteActor (and the JSON /
// protobuf serializer variants the suite runs under)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_protobuf_and_binary_messages_round_trip() {
    let (a, b) = pair().await;
    b.echo("echo");
    let echo = b.pid("echo");
    let root = a.system.root();

    let text = Text("json: ünïcode, \"quotes\", \\ and \n newlines".to_string());
    let back: Text = root.request_future(&echo, text.clone(), WAIT).await.expect("json round trip");
    assert_eq!(back, text);

    let proto = ProtoPing {
        n: u64::MAX,
        note: "protobuf ✓".to_string(),
        payload: vec![0, 1, 2, 255],
        tags: vec!["a".into(), String::new(), "c".into()],
    };
    let back: ProtoPing = root.request_future(&echo, proto.clone(), WAIT).await.expect("protobuf round trip");
    assert_eq!(back, proto);
    // The empty message is valid protobuf too (zero bytes on the wire).
    let back: ProtoPing = root.request_future(&echo, ProtoPing::default(), WAIT).await.expect("empty protobuf");
    assert_eq!(back, ProtoPing::default());

    let binary = BinaryMessage { payload: (0..=255u8).cycle().take(10_000).collect() };
    let back: BinaryMessage = root.request_future(&echo, binary.clone(), WAIT).await.expect("binary round trip");
    assert_eq!(back, binary);
    assert!(a.remote.serialization().is_registered::<ProtoPing>());
    assert!(a.remote.serialization().is_registered::<BinaryMessage>());
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_pill_and_stop_sent_remotely_stop_the_remote_actor() {
    let (a, b) = pair().await;
    let (victim, mut seen) = b.recorder("victim");
    let remote_victim = b.pid("victim");
    for n in 0..10 {
        a.system.root().send(&remote_victim, Seq { from: 0, n });
    }
    a.system.root().poison(&remote_victim);
    // A poison pill is graceful: what was queued before it is handled first.
    for n in 0..10 {
        assert_eq!(next_seen(&mut seen).await.body, Body::Seq(Seq { from: 0, n }));
    }
    loop {
        match next_seen(&mut seen).await.body {
            Body::Stopped => break,
            Body::Other => {} // Stopping
            other => panic!("unexpected {other:?}"),
        }
    }
    let deadline = Instant::now() + WAIT;
    while b.system.is_registered(&victim) {
        assert!(Instant::now() < deadline, "the poisoned actor is removed");
        tokio::task::yield_now().await;
    }

    // poison_future watches remotely and completes on the remote Terminated.
    let (_, _seen2) = b.recorder("victim2");
    tokio::time::timeout(WAIT, a.system.root().poison_future(&b.pid("victim2")))
        .await
        .expect("poison_future completes");
    assert!(!b.system.is_registered(&b.pid("victim2")));

    // A remote Stop (system message) too.
    let (_, mut seen3) = b.recorder("victim3");
    a.system.root().stop(&b.pid("victim3"));
    recv_matching(&mut seen3, "victim3 stopped", |s| (s.body == Body::Stopped).then_some(())).await;
    let after = a.system.root().request_future::<Pong, _>(&b.pid("victim3"), Ping(1), WAIT).await;
    assert!(matches!(after, Err(Error::DeadLetter { .. })), "{after:?}");
    a.stop().await;
    b.stop().await;
}

// .NET RemoteTests: ConcurrentMessagesWorks (1/2/10 messages of 1–100 bytes,
// local and remote, all acknowledged, the remote actor still alive after)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_messages_to_local_and_remote_actors_are_all_acknowledged() {
    let (a, b) = pair().await;
    let local = a.echo("local-echo");
    b.echo("echo");
    let remote = b.pid("echo");
    for count in [1usize, 2, 10] {
        let mut requests = Vec::new();
        let mut expected = Vec::new();
        for _ in 0..count {
            let len = fastrand::usize(1..=100);
            let text = Text((0..len).map(|_| fastrand::alphanumeric()).collect());
            for target in [&local, &remote] {
                expected.push(text.clone());
                requests.push(a.system.root().request_future::<Text, _>(target, text.clone(), WAIT));
            }
        }
        let answers: Vec<Text> = join_all(requests).await.into_iter().map(|r| r.expect("acknowledged")).collect();
        assert_eq!(answers, expected, "{count} concurrent messages");
    }
    let touched: Touched = a.system.root().request_future(&remote, Touch {}, WAIT).await.expect("still alive");
    assert!(touched.who.is_some());
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_carries_both_directions() {
    let (a, b) = pair().await;
    let (_sub, mut b_dialed) = b.system.event_stream().subscribe_channel::<protoactor_remote::EndpointConnected>();
    b.echo("echo");
    let a_echo = a.echo("echo");
    let pong: Pong = a.system.root().request_future(&b.pid("echo"), Ping(1), WAIT).await.expect("A asks B");
    assert_eq!(pong, Pong(1));
    // B would have announced a connection of its own before sending on it.
    assert!(b_dialed.try_recv().is_err(), "B answered over a connection it dialed itself");
    // B's own requests to A use A's connection too, senders and all.
    let pong: Pong = b.system.root().request_future(&a_echo, Ping(2), WAIT).await.expect("B asks A");
    assert_eq!(pong, Pong(2));
    assert!(b_dialed.try_recv().is_err(), "B dialed A although A's connection was up");
    a.stop().await;
    b.stop().await;
}
