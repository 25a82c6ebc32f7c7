//! The pid cache (ports of .NET `PidCacheTests`, `RetryOnDeadLetterTests`):
//! cached requests skip the lookup, stopped grains leave the host's cache,
//! and a stale entry is retried through the lookup transparently.

use std::sync::Arc;
use std::time::Duration;

use protoactor_actor::Pid;
use protoactor_integration_tests::*;
use tokio::time::Instant;

/// After the first request, later requests from the same node are served
/// from the pid cache: the node's identity lookup (the round trip to the
/// owner) is called exactly once for twenty requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_request_skips_the_lookup() {
    init_tracing();
    let activations = Arc::new(Activations::default());
    let tc = TestCluster::start(&[echo_kind("echo", &activations)]).await;
    for (n, node) in tc.nodes().enumerate() {
        let before = node.lookups();
        assert!(node.pid_cache().get("cached", "echo").is_none(), "each node has its own cache");
        for i in 0..20 {
            let pong: Pong = node.request("cached", "echo", Ping { message: i.to_string() }).await.expect("pong");
            assert_eq!(pong.message, i.to_string());
        }
        assert_eq!(node.lookups() - before, 1, "node {n}: only the first request asked the lookup");
        let cached = node.pid_cache().get("cached", "echo").expect("the activation is cached");
        assert!(tc.member_at(cached.address()).is_some(), "the cached pid is on a member");
    }
    assert_eq!(activations.started(), 1);
    tc.shutdown().await;
}

/// PurgesPidCacheOnVirtualActorShutdown: when a grain stops, its host's
/// pid cache entry goes away promptly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purges_pid_cache_on_virtual_actor_shutdown() {
    init_tracing();
    let activations = Arc::new(Activations::default());
    let tc = TestCluster::start(&[echo_kind("echo", &activations)]).await;
    let first: Pong = tc.client.request("purged", "echo", Ping::default()).await.expect("pong");
    let host = tc.member_at(&first.address).expect("host member");
    // A request from the host caches the (local) activation there.
    let _: Pong = host.request("purged", "echo", Ping::default()).await.expect("pong from host");
    let pid = host.pid_cache().get("purged", "echo").expect("host caches its activation");
    assert_eq!(pid.address(), &*host.address());

    let _: Ack = tc.client.request("purged", "echo", Die {}).await.expect("die acknowledged");
    assert!(wait_until(Duration::from_secs(2), || activations.stopped() == 1).await, "the grain stopped");
    let stopped_at = Instant::now();
    assert!(
        wait_until(Duration::from_secs(1), || host.pid_cache().get("purged", "echo").is_none()).await,
        "the host forgot the stopped activation"
    );
    tracing::info!(after = ?stopped_at.elapsed(), "pid cache purged");
    tc.shutdown().await;
}

/// RetryOnDeadLetter: a member's cache entry is rewritten to a pid that does
/// not exist on another member; the request gets a dead-letter response,
/// drops the entry, asks the lookup once and returns the real pong, without
/// waiting for a per-attempt timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_on_dead_letter() {
    init_tracing();
    let activations = Arc::new(Activations::default());
    let tc = TestCluster::start(&[echo_kind("echo", &activations)]).await;
    let first: Pong = tc.client.request("ghost", "echo", Ping::default()).await.expect("pong");
    let host = first.address.clone();
    // Caller: a member that does not host it; bogus target: the third member.
    let caller = tc.members.iter().find(|m| *m.address() != *host).expect("a non-host member");
    let third = tc.members.iter().find(|m| *m.address() != *host && m.id() != caller.id()).expect("a third member");
    let _: Pong = caller.request("ghost", "echo", Ping::default()).await.expect("caller pong");
    let real = caller.pid_cache().get("ghost", "echo").expect("caller caches it");

    caller.pid_cache().set("ghost", "echo", Pid::new(&*third.address(), "no-such-actor"));
    let before = caller.lookups();
    let started = Instant::now();
    let pong: Pong =
        caller.request("ghost", "echo", Ping { message: "again".into() }).await.expect("transparent retry");
    let took = started.elapsed();
    assert_eq!((pong.message.as_str(), pong.address.as_str(), pong.count), ("again", host.as_str(), 3));
    assert_eq!(caller.lookups() - before, 1, "one lookup after the dead letter");
    assert!(took < caller.config().request_timeout(), "dead letter, not a timeout, triggered the retry ({took:?})");
    assert_eq!(caller.pid_cache().get("ghost", "echo"), Some(real), "the cache points at the real activation again");
    assert_eq!(activations.started(), 1);
    tc.shutdown().await;
}
