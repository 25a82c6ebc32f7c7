//! Request behaviour (ports of .NET `HandlesSlowResponsesCorrectly`,
//! `ReSpawnsClusterActorsFromDifferentNodes`, `CanRespawnVirtualActors`):
//! late replies still count, and grains that stopped come back fresh.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use protoactor_actor::prelude::*;
use protoactor_cluster::{GrainContext, Kind};
use protoactor_integration_tests::*;
use tokio::time::Instant;

/// A reply that comes after the per-attempt timeout (500 ms) but within the
/// deadline is returned: the grain answers 1.2 s after the first attempt;
/// the retry does not discard it. The pong returned is the first attempt's
/// (count 1), which proves the late reply was the one that counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handles_slow_responses_correctly() {
    init_tracing();
    let activations = Arc::new(Activations::default());
    let tc = TestCluster::start_with(&[echo_kind("echo", &activations)], |c| {
        c.with_request_timeout(Duration::from_millis(500)).with_request_deadline(Duration::from_secs(10))
    })
    .await;
    for node in [&tc.members[0], &tc.client] {
        let id = format!("slow-{}", node.id());
        let started = Instant::now();
        let pong: Pong =
            node.request(&id, "echo", SlowPing { message: "zzz".into(), delay_ms: 1200 }).await.expect("slow pong");
        let took = started.elapsed();
        assert_eq!((pong.identity.as_str(), pong.message.as_str()), (id.as_str(), "zzz"));
        assert!(took >= Duration::from_millis(1200), "the reply came after the delay ({took:?})");
        assert!(took < Duration::from_secs(5), "well within the deadline ({took:?})");
        assert_eq!(pong.count, 1, "the first attempt's reply is returned");
    }
    assert_eq!(activations.started(), 2, "retries reached the same activation");
    tc.shutdown().await;
}

/// After an activation stops (`Die`), a request from another member that
/// still caches its old pid activates it again, with fresh state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn respawns_cluster_actors_from_different_nodes() {
    init_tracing();
    let activations = Arc::new(Activations::default());
    let tc = TestCluster::start(&[echo_kind("echo", &activations)]).await;
    let (a, b) = (&tc.members[0], &tc.members[1]);
    let first: Pong = a.request("phoenix", "echo", Ping { message: "a".into() }).await.expect("pong from a");
    let second: Pong = b.request("phoenix", "echo", Ping { message: "b".into() }).await.expect("pong from b");
    assert_eq!((first.count, second.count), (1, 2), "both reach one activation");
    let old = b.pid_cache().get("phoenix", "echo").expect("b caches the activation");

    let _: Ack = a.request("phoenix", "echo", Die {}).await.expect("die acknowledged");
    let again: Pong =
        b.request("phoenix", "echo", Ping { message: "b again".into() }).await.expect("pong after respawn");
    assert_eq!(again.count, 1, "a fresh activation answered");
    assert_eq!(activations.started(), 2);
    assert_eq!(activations.stopped(), 1);
    let new = b.pid_cache().get("phoenix", "echo").expect("b caches the new activation");
    assert_ne!(new, old, "the cache moved on from the dead pid");
    tc.shutdown().await;
}

/// CanRespawnVirtualActors: activate ten, stop them all, request them again
/// from every node: all answer, each from a new activation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn can_respawn_virtual_actors() {
    init_tracing();
    let activations = Arc::new(Activations::default());
    let tc = TestCluster::start(&[echo_kind("echo", &activations)]).await;
    let ids: Vec<String> = (0..10).map(|i| format!("re-{i}")).collect();
    let nodes: Vec<&Node> = tc.nodes().collect();
    for node in &nodes {
        for r in join_all(ids.iter().map(|id| node.request::<Pong, _>(id, "echo", Ping::default()))).await {
            r.expect("first round");
        }
    }
    assert_eq!(activations.started(), 10);
    for r in join_all(ids.iter().map(|id| tc.client.request::<Ack, _>(id, "echo", Die {}))).await {
        r.expect("die acknowledged");
    }
    assert!(wait_until(Duration::from_secs(5), || activations.stopped() == 10).await, "all ten stopped");
    for (n, node) in nodes.iter().enumerate() {
        let pongs = join_all(ids.iter().map(|id| node.request::<Pong, _>(id, "echo", Ping::default()))).await;
        for (id, r) in ids.iter().zip(pongs) {
            let pong = r.expect("second round");
            assert_eq!(pong.identity, *id);
            assert_eq!(pong.count, n as u64 + 1, "node {n}: {id} is a new activation");
        }
    }
    assert_eq!(activations.started(), 20, "each identity was activated once more");
    tc.shutdown().await;
}

/// A grain whose `Stopped` hook panics still frees its identity: the next
/// request activates it again instead of finding it taken forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grain_whose_stop_hook_panics_can_be_activated_again() {
    init_tracing();
    struct Fragile(u64);
    impl Actor for Fragile {
        async fn receive(&mut self, ctx: &mut Context) -> ActorResult {
            if ctx.message_is::<Stopped>() {
                panic!("the stop hook fails");
            }
            if let Some(ping) = ctx.message::<Ping>() {
                self.0 += 1;
                let identity = ctx.cluster_identity().map(|i| i.identity.clone()).unwrap_or_default();
                let address = ctx.system().address().to_string();
                let message = ping.message.clone();
                ctx.respond(Pong { message, identity, kind: "fragile".into(), address, count: self.0 });
                if ping.message == "die" {
                    let me = ctx.self_pid().clone();
                    ctx.stop(&me);
                }
            }
            Ok(())
        }
    }
    let kind = Kind::new("fragile", Props::from_producer(|| Fragile(0)));
    let tc = TestCluster::start(&[kind]).await;
    let ping = |m: &str| Ping { message: m.into() };
    let first: Pong = tc.client.request("f", "fragile", ping("die")).await.expect("first activation answers");
    assert_eq!(first.count, 1);
    let again: Pong = tc.client.request("f", "fragile", ping("again")).await.expect("activated again");
    assert_eq!(again.count, 1, "a fresh activation, not the stopped one");
    tc.shutdown().await;
}

/// A request whose retry is pausing (30 s backoff) starts its next attempt
/// when the topology changes, not when the backoff is over: the member that
/// hosted its grain is stopped abruptly, the request finds nobody to answer
/// and pauses, and the provider then drops the member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_starts_when_the_topology_changes_not_after_its_backoff() {
    init_tracing();
    let agent = protoactor_cluster::InMemoryAgent::new();
    let activations = Arc::new(Activations::default());
    let kinds = [echo_kind("echo", &activations)];
    let slow_retry =
        protoactor_cluster::RetryPolicy::new(20, Duration::from_secs(30)).with_max_backoff(Duration::from_secs(30));
    let config = || test_config(&agent, &kinds).with_retry(slow_retry).with_request_deadline(Duration::from_secs(120));
    let a = start_member(config()).await;
    let b = start_member(config()).await;
    assert!(wait_members(&[&a, &b], 2).await);
    // A grain that lives on b.
    let mut on_b = None;
    for i in 0..200 {
        let id = format!("g-{i}");
        let pong: Pong = a.request(&id, "echo", Ping { message: "warm".into() }).await.expect("warm-up");
        if pong.address == *b.address() {
            on_b = Some(id);
            break;
        }
    }
    let id = on_b.expect("some grain lands on b");
    tokio::time::timeout(Duration::from_secs(10), b.shutdown(false)).await.expect("abrupt stop in time");
    let started = Instant::now();
    let request = {
        let a = a.clone();
        let id = id.clone();
        tokio::spawn(async move { a.request::<Pong, _>(&id, "echo", Ping { message: "after".into() }).await })
    };
    // Let the request fail against b and begin its pause (pacing only: if
    // the topology changes first, it simply never pauses).
    tokio::time::sleep(Duration::from_millis(300)).await;
    agent.deregister(b.id());
    let pong = tokio::time::timeout(Duration::from_secs(20), request)
        .await
        .expect("the retry woke on the topology change, well before its 30 s backoff")
        .expect("task")
        .expect("the grain answers from a");
    assert_eq!(pong.address, *a.address());
    tracing::info!(took = ?started.elapsed(), "request across the member's loss");
    a.shutdown(true).await;
}

/// A message type that only the client registered.
#[derive(Clone, PartialEq, prost::Message)]
struct OnlyOnClient {
    #[prost(string, tag = "1")]
    note: String,
}

impl prost::Name for OnlyOnClient {
    const NAME: &'static str = "OnlyOnClient";
    const PACKAGE: &'static str = "tests";
}

/// Failures that a retry meets again come back at once with their kind
/// (`Error::Undeliverable`, after one attempt), not as a `RequestFailed`
/// after the retries and the deadline: a type the member does not know,
/// and a message too large for the frame limit. A grain whose member went
/// away is retried (`a_retry_starts_when_the_topology_changes_not_after_its_backoff`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_no_retry_can_fix_return_at_once_with_their_kind() {
    init_tracing();
    let agent = protoactor_cluster::InMemoryAgent::new();
    let activations = Arc::new(Activations::default());
    let kinds = [echo_kind("echo", &activations)];
    // Retries that would take the whole 120 s deadline if they were made.
    let patient = |c: protoactor_cluster::ClusterConfig| {
        c.with_retry(protoactor_cluster::RetryPolicy::new(1000, Duration::from_millis(100)))
            .with_request_deadline(Duration::from_secs(120))
    };
    let member = start_member(patient(test_config(&agent, &kinds))).await;
    let remote = test_remote().with_protobuf::<OnlyOnClient>().with_max_frame_size(16 * 1024);
    let client = start_client(patient(test_config(&agent, &kinds)).with_remote(remote)).await;
    assert!(wait_until(Duration::from_secs(10), || client.member_list().topology().members.len() == 1).await);
    let _: Pong = client.request("g", "echo", Ping { message: "warm".into() }).await.expect("warm-up");

    let unknown = client.request::<Pong, _>("g", "echo", OnlyOnClient { note: "?".into() }).await;
    match &unknown {
        Err(protoactor_cluster::Error::Undeliverable { failure, reason, member: at, .. }) => {
            assert_eq!(*failure, protoactor_actor::DeliveryFailureKind::UnknownType);
            assert!(reason.contains("tests.OnlyOnClient"), "names the type: {reason}");
            assert_eq!(at, &*member.address());
        }
        other => panic!("expected Undeliverable(UnknownType), got {other:?}"),
    }
    assert_eq!(
        unknown.as_ref().err().and_then(|e| e.delivery_kind()),
        Some(protoactor_actor::DeliveryFailureKind::UnknownType)
    );

    let large = client.request::<Pong, _>("g", "echo", Ping { message: "x".repeat(64 * 1024) }).await;
    match &large {
        Err(protoactor_cluster::Error::Undeliverable { failure, .. }) => {
            assert_eq!(*failure, protoactor_actor::DeliveryFailureKind::TooLarge)
        }
        other => panic!("expected Undeliverable(TooLarge), got {other:?}"),
    }
    // The grain is unharmed: the same activation answers.
    let pong: Pong = client.request("g", "echo", Ping { message: "after".into() }).await.expect("still served");
    assert_eq!(pong.count, 2, "the activation that answered the warm-up");
    assert_eq!(activations.started(), 1);
    client.shutdown(true).await;
    member.shutdown(true).await;
}
