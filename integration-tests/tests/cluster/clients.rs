//! Clients (port of .NET `ClientsCanCallCluster`): a client joins, sees the
//! members, calls grains, and hosts none of them.

use std::collections::BTreeSet;
use std::sync::Arc;

use protoactor_cluster::Error;
use protoactor_integration_tests::*;

/// A client (configured with the same kinds as the members) gets the right
/// pongs for ten identities; none of the activations lives at the client's
/// address, the client is not in the topology and counts no activations,
/// and the members reach the same activations the client did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_can_call_cluster() {
    init_tracing();
    let activations = Arc::new(Activations::default());
    let tc = TestCluster::start(&[echo_kind("echo", &activations)]).await;
    let client = &tc.client;
    assert!(client.is_client());
    assert!(client.member_list().topology().member(client.id()).is_none(), "the client is not a member");

    let mut hosts = BTreeSet::new();
    for i in 0..10 {
        let id = format!("c-{i}");
        let pong: Pong = client.request(&id, "echo", Ping { message: id.clone() }).await.expect("pong");
        assert_eq!((pong.identity.as_str(), pong.message.as_str(), pong.count), (id.as_str(), id.as_str(), 1));
        assert_ne!(pong.address, &*client.address(), "{id} must not live on the client");
        assert!(tc.member_at(&pong.address).is_some(), "{id} lives on a member");
        hosts.insert(pong.address);
    }
    assert!(client.activation_counts().values().all(|n| *n == 0), "client hosts nothing");
    assert_eq!(activations.started(), 10);
    assert_eq!(client.pid_cache().len(), 10, "the client caches where each grain lives");

    // The members find the activations the client created.
    for member in &tc.members {
        for i in 0..10 {
            let id = format!("c-{i}");
            let pong: Pong = member.request(&id, "echo", Ping { message: "m".into() }).await.expect("pong");
            assert_ne!(pong.address, &*client.address());
        }
    }
    assert_eq!(activations.started(), 10, "members reached the same activations");
    tc.shutdown().await;
}

/// A client started after the members finds them and calls a grain; an
/// unknown kind from the client is `UnknownKind`, not a hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_client_joins_and_calls() {
    init_tracing();
    let activations = Arc::new(Activations::default());
    let kinds = [echo_kind("echo", &activations)];
    let tc = TestCluster::start(&kinds).await;
    let late = start_client(test_config(&tc.agent, &kinds)).await;
    assert!(wait_members(&[&late], 3).await, "the late client sees the three members");
    assert!(!late.hosts_kind("echo"), "a client hosts nothing, though its config lists the kind");
    assert!(tc.members.iter().all(|m| m.hosts_kind("echo")), "members host it");
    let pong: Pong = late.request("late", "echo", Ping { message: "hi".into() }).await.expect("pong");
    assert_eq!(pong.identity, "late");
    assert_ne!(pong.address, &*late.address());
    let unknown = late.request::<Pong, _>("late", "nope", Ping::default()).await;
    assert!(matches!(unknown, Err(Error::UnknownKind { .. })), "{unknown:?}");
    tokio::time::timeout(std::time::Duration::from_secs(15), late.shutdown(true)).await.expect("shutdown in time");
    tc.shutdown().await;
}
