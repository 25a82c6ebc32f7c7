//! Activation (ports of the .NET `ClusterTests` activation rows) on three
//! members and a client over one in-memory agent: membership agrees,
//! grains activate once per identity and kind, filters and unknown kinds
//! fail fast with their own error.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use protoactor_cluster::Error;
use protoactor_integration_tests::*;

async fn ping(node: &Node, identity: &str, kind: &str, message: impl Into<String>) -> Result<Pong, Error> {
    node.request(identity, kind, Ping { message: message.into() }).await
}

fn assert_pong(pong: &Pong, identity: &str, kind: &str, message: &str) {
    assert_eq!((pong.identity.as_str(), pong.kind.as_str(), pong.message.as_str()), (identity, kind, message));
}

/// ClusterMembersMatch: every node (members and client) reports the same
/// member-id set: the three members, never the client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_members_match() {
    init_tracing();
    let activations = Arc::new(Activations::default());
    let tc = TestCluster::start(&[echo_kind("echo", &activations)]).await;
    let expected: BTreeSet<String> = tc.members.iter().map(|m| m.id().to_string()).collect();
    assert_eq!(expected.len(), 3);
    assert!(!expected.contains(tc.client.id()), "the client is not a member");
    for node in tc.nodes() {
        let t = node.member_list().topology();
        let seen: BTreeSet<String> = t.members.iter().map(|m| m.id.clone()).collect();
        assert_eq!(seen, expected, "node {} sees the same members", node.id());
        assert_eq!(t.hash, tc.members[0].member_list().topology().hash, "same topology hash");
    }
    tc.shutdown().await;
}

/// CanSpawnASingleVirtualActor: ping -> pong for one identity within 10 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn can_spawn_a_single_virtual_actor() {
    init_tracing();
    let activations = Arc::new(Activations::default());
    let tc = TestCluster::start(&[echo_kind("echo", &activations)]).await;
    let pong = tokio::time::timeout(Duration::from_secs(10), ping(&tc.members[0], "single", "echo", "hello"))
        .await
        .expect("answered within 10 s")
        .expect("pong");
    assert_pong(&pong, "single", "echo", "hello");
    assert_eq!(pong.count, 1);
    assert!(tc.member_at(&pong.address).is_some(), "it lives on a member");
    assert_eq!(activations.started(), 1);
    tc.shutdown().await;
}

/// CanSpawnVirtualActorsSequentially: ten identities, one after the other,
/// from every node; each answers correctly and is activated once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn can_spawn_virtual_actors_sequentially() {
    init_tracing();
    let activations = Arc::new(Activations::default());
    let tc = TestCluster::start(&[echo_kind("echo", &activations)]).await;
    for (n, node) in tc.nodes().enumerate() {
        for i in 0..10 {
            let id = format!("seq-{i}");
            let pong = ping(node, &id, "echo", &format!("{n}/{i}")).await.expect("pong");
            assert_pong(&pong, &id, "echo", &format!("{n}/{i}"));
            assert_eq!(pong.count, n as u64 + 1, "node {n} reaches the same activation of {id}");
        }
    }
    assert_eq!(activations.started(), 10);
    tc.shutdown().await;
}

/// CanSpawnVirtualActorsConcurrently: ten identities at once from every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn can_spawn_virtual_actors_concurrently() {
    init_tracing();
    let activations = Arc::new(Activations::default());
    let tc = TestCluster::start(&[echo_kind("echo", &activations)]).await;
    let calls = tc.nodes().flat_map(|node| {
        (0..10).map(move |i| async move {
            let id = format!("conc-{i}");
            (id.clone(), ping(node, &id, "echo", &id).await)
        })
    });
    let results = join_all(calls).await;
    assert_eq!(results.len(), 40);
    for (id, result) in results {
        let pong = result.expect("pong");
        assert_pong(&pong, &id, "echo", &id);
    }
    assert_eq!(activations.started(), 10, "one activation per identity");
    tc.shutdown().await;
}

/// ConcurrentActivationsOnSameIdWorks: ten concurrent first requests to one
/// identity from one member all succeed, with one activation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_activations_on_same_id_work() {
    init_tracing();
    let activations = Arc::new(Activations::default());
    let tc = TestCluster::start(&[echo_kind("echo", &activations)]).await;
    let results = join_all((0..10).map(|i| ping(&tc.members[0], "same", "echo", i.to_string()))).await;
    let counts: BTreeSet<u64> = results.into_iter().map(|r| r.expect("pong").count).collect();
    assert_eq!(counts, (1..=10).collect(), "one activation saw all ten");
    assert_eq!(activations.started(), 1);
    tc.shutdown().await;
}

/// 200 concurrent first requests to one identity, spread over the three
/// members and the client: exactly one activation answers them all, and it
/// saw every one of them once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_first_requests_make_one_activation() {
    init_tracing();
    let activations = Arc::new(Activations::default());
    let tc = TestCluster::start(&[echo_kind("echo", &activations)]).await;
    let nodes: Vec<&Node> = tc.nodes().collect();
    let results = join_all((0..200).map(|i| ping(nodes[i % nodes.len()], "hot", "echo", i.to_string()))).await;
    let mut counts = BTreeSet::new();
    let mut addresses = BTreeSet::new();
    for (i, r) in results.into_iter().enumerate() {
        let pong = r.unwrap_or_else(|e| panic!("request {i} failed: {e}"));
        assert_pong(&pong, "hot", "echo", &i.to_string());
        counts.insert(pong.count);
        addresses.insert(pong.address);
    }
    assert_eq!(addresses.len(), 1, "one host: {addresses:?}");
    assert_eq!(counts, (1..=200).collect(), "one activation handled all 200");
    assert_eq!(activations.started(), 1);
    tc.shutdown().await;
}

/// CanSpawnMultipleKindsWithSameIdentityConcurrently: one identity under
/// two kinds is two actors with separate state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_identity_under_two_kinds_is_two_actors() {
    init_tracing();
    let (a1, a2) = (Arc::new(Activations::default()), Arc::new(Activations::default()));
    let tc = TestCluster::start(&[echo_kind("echo", &a1), echo_kind("echo2", &a2)]).await;
    let nodes: Vec<&Node> = tc.nodes().collect();
    let nodes = &nodes;
    let calls = (0..8).map(|i| {
        let kind = if i % 2 == 0 { "echo" } else { "echo2" };
        async move { (kind, ping(nodes[i % nodes.len()], "twin", kind, "x").await) }
    });
    let mut counts = (BTreeSet::new(), BTreeSet::new());
    for (kind, r) in join_all(calls).await {
        let pong = r.expect("pong");
        assert_pong(&pong, "twin", kind, "x");
        if kind == "echo" { &mut counts.0 } else { &mut counts.1 }.insert(pong.count);
    }
    assert_eq!(counts.0, (1..=4).collect(), "echo/twin has its own state");
    assert_eq!(counts.1, (1..=4).collect(), "echo2/twin has its own state");
    assert_eq!((a1.started(), a2.started()), (1, 1));
    tc.shutdown().await;
}

/// CanFilterActivations: the kind's identity filter refuses "invalid"; the
/// request fails at once with `IdentityBlocked`, after a single lookup (no
/// retries), from members and client alike. Allowed identities still work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn can_filter_activations() {
    init_tracing();
    let activations = Arc::new(Activations::default());
    let kind = echo_kind("filtered", &activations).with_identity_filter(|ci| ci.identity != "invalid");
    let tc = TestCluster::start(&[kind]).await;
    for node in tc.nodes() {
        let before = node.lookups();
        let result = ping(node, "invalid", "filtered", "x").await;
        assert!(
            matches!(&result, Err(Error::IdentityBlocked { kind, identity }) if kind == "filtered" && identity == "invalid"),
            "blocked: {result:?}"
        );
        // One lookup: refused at once, not retried until the deadline.
        assert_eq!(node.lookups() - before, 1, "no retry after IdentityBlocked");
        assert!(node.pid_cache().get("invalid", "filtered").is_none());
    }
    assert_eq!(activations.started(), 0, "nothing was activated for the refused identity");
    let pong = ping(&tc.client, "valid", "filtered", "ok").await.expect("allowed identity answers");
    assert_pong(&pong, "valid", "filtered", "ok");
    assert_eq!(activations.started(), 1);
    tc.shutdown().await;
}

/// TimeoutVirtualActorsNotJoined (our variant): a kind no member hosts fails
/// with `UnknownKind` quickly instead of hanging, on members and client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_kind_fails_fast() {
    init_tracing();
    let activations = Arc::new(Activations::default());
    let tc = TestCluster::start(&[echo_kind("echo", &activations)]).await;
    for node in tc.nodes() {
        let result = tokio::time::timeout(Duration::from_secs(2), ping(node, "x", "no-such-kind", "x"))
            .await
            .expect("answers within 2 s");
        assert!(
            matches!(&result, Err(Error::UnknownKind { kind, .. }) if kind == "no-such-kind"),
            "unknown kind: {result:?}"
        );
    }
    assert_eq!(activations.started(), 0);
    tc.shutdown().await;
}
