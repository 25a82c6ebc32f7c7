//! Several members in one process, each with its own health port, finding
//! each other through the automanaged provider.

#![forbid(unsafe_code)]
use std::net::TcpListener;
use std::time::{Duration, Instant};

use protoactor_actor::prelude::*;
use protoactor_cluster::{Cluster, ClusterConfig, Topology};
use protoactor_cluster_provider_automanaged::{AutomanagedConfig, AutomanagedProvider, HEALTH_PATH, PeerView};
use protoactor_identity_lookup_partition::PartitionIdentityLookup;
use protoactor_remote::RemoteConfig;
use protoactor_testkit::cluster::{Echoed, Hello, echo_kind, init_tracing, wait_until};

const POLL: Duration = Duration::from_millis(100);
const DEADLINE: Duration = Duration::from_secs(15);

/// Reserves a health port: the listener is handed to the member later.
fn reserve() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a health port");
    let address = listener.local_addr().expect("bound address").to_string();
    (listener, address)
}

fn fast(peers: &[String]) -> AutomanagedConfig {
    AutomanagedConfig::new(peers.iter().cloned()).with_poll_interval(POLL).with_timeout(Duration::from_secs(1))
}

fn cluster_config(name: &str, provider: AutomanagedProvider) -> ClusterConfig {
    let remote = RemoteConfig::bind("127.0.0.1", 0)
        .with_json::<Hello>("automanaged_tests.Hello")
        .with_json::<Echoed>("automanaged_tests.Echoed");
    ClusterConfig::new(name, provider, PartitionIdentityLookup::new())
        .with_kind(echo_kind("echo"))
        .with_remote(remote)
        .with_request_timeout(Duration::from_secs(2))
        .with_join_timeout(DEADLINE)
        // These tests check the missed-poll detection; fast suspicion
        // (integration-tests/tests/cluster/suspicion.rs) would act first.
        .with_suspicion_votes(0)
}

async fn start_member(name: &str, config: AutomanagedConfig) -> (Cluster, AutomanagedProvider) {
    let provider = AutomanagedProvider::new(config);
    let system = ActorSystem::new();
    let cluster = Cluster::new(&system, cluster_config(name, provider.clone())).expect("cluster");
    cluster.start_member().await.expect("member starts");
    (cluster, provider)
}

fn ids(t: &Topology) -> Vec<String> {
    t.members.iter().map(|m| m.id.clone()).collect()
}

/// Waits until `cluster` sees exactly the members `expected`.
async fn sees_exactly(cluster: &Cluster, expected: &[&Cluster]) -> bool {
    let mut want: Vec<String> = expected.iter().map(|c| c.id().to_string()).collect();
    want.sort();
    cluster.member_list().wait_for(DEADLINE, |t| ids(t) == want).await
}

fn view_of(provider: &AutomanagedProvider, peer: &str) -> PeerView {
    provider.peers().into_iter().find(|(a, _)| a == peer).map(|(_, v)| v).expect("configured peer")
}

async fn stop_all(clusters: impl IntoIterator<Item = Cluster>) {
    for c in clusters {
        tokio::time::timeout(Duration::from_secs(15), c.shutdown(true)).await.expect("shutdown in time");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_form_one_topology_and_serve_grains() {
    init_tracing();
    let reserved: Vec<(TcpListener, String)> = (0..3).map(|_| reserve()).collect();
    let peers: Vec<String> = reserved.iter().map(|(_, a)| a.clone()).collect();
    let mut members = Vec::new();
    for (listener, address) in reserved {
        let (cluster, provider) = start_member("shop", fast(&peers).with_listener(listener)).await;
        assert_eq!(provider.health_address().map(|a| a.to_string()), Some(address));
        members.push((cluster, provider));
    }
    let clusters: Vec<&Cluster> = members.iter().map(|(c, _)| c).collect();
    for c in &clusters {
        assert!(sees_exactly(c, &clusters).await, "{} sees all three members", c.id());
    }
    for (cluster, provider) in &members {
        for (peer, view) in provider.peers() {
            assert!(matches!(view, PeerView::Member { .. }), "{} sees peer {peer} as {view:?}", cluster.id());
        }
    }

    let mut hosted_at = None;
    for c in &clusters {
        let reply: Echoed =
            c.request("grain-1", "echo", Hello { text: format!("from {}", c.id()) }).await.expect("echo reply");
        assert_eq!(reply.text, format!("from {}", c.id()));
        assert_eq!(reply.identity, "grain-1");
        hosted_at.get_or_insert(reply.address.clone());
        assert_eq!(hosted_at.as_deref(), Some(reply.address.as_str()), "one activation, reached from every member");
    }
    stop_all(members.into_iter().map(|(c, _)| c)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_member_leaves_after_the_missed_poll_limit() {
    init_tracing();
    const MISSED: u32 = 5;
    let reserved: Vec<(TcpListener, String)> = (0..3).map(|_| reserve()).collect();
    let peers: Vec<String> = reserved.iter().map(|(_, a)| a.clone()).collect();
    let mut clusters = Vec::new();
    for (listener, _) in reserved {
        clusters.push(start_member("shop", fast(&peers).with_missed_polls(MISSED).with_listener(listener)).await.0);
    }
    let all: Vec<&Cluster> = clusters.iter().collect();
    for c in &all {
        assert!(sees_exactly(c, &all).await, "three members first");
    }
    let c = clusters.pop().expect("third member");
    let gone = c.id().to_string();
    let stopped_at = Instant::now();
    c.shutdown(false).await;

    let rest: Vec<&Cluster> = clusters.iter().collect();
    for m in &rest {
        assert!(sees_exactly(m, &rest).await, "{} drops the stopped member", m.id());
        assert!(m.member_list().is_blocked(&gone), "the member that left is blocked");
    }
    // It leaves only after MISSED polls in a row failed: the first miss can
    // come right after the stop, the last MISSED-1 intervals later (half of
    // that as the bound, for timer slack). Dropping on the first miss would
    // take about one interval.
    let took = stopped_at.elapsed();
    assert!(took >= POLL * (MISSED - 1) / 2, "left after {took:?}, before the missed-poll limit");
    stop_all(clusters).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_member_rejoins_with_a_new_id() {
    init_tracing();
    let reserved: Vec<(TcpListener, String)> = (0..3).map(|_| reserve()).collect();
    let peers: Vec<String> = reserved.iter().map(|(_, a)| a.clone()).collect();
    let restarted_address = peers[2].clone();
    let mut clusters = Vec::new();
    for (listener, _) in reserved {
        clusters.push(start_member("shop", fast(&peers).with_listener(listener)).await.0);
    }
    let all: Vec<&Cluster> = clusters.iter().collect();
    for c in &all {
        assert!(sees_exactly(c, &all).await, "three members first");
    }
    let old = clusters.pop().expect("third member");
    let old_id = old.id().to_string();
    old.shutdown(false).await;

    // The same health address, a new process (new system, new id); started
    // at once, before the others' missed-poll limit may have passed.
    let port: u16 = restarted_address.rsplit_once(':').and_then(|(_, p)| p.parse().ok()).expect("port");
    let (new, provider) = start_member("shop", fast(&peers).with_bind("127.0.0.1", port)).await;
    assert_ne!(new.id(), old_id);
    assert_eq!(provider.health_address().map(|a| a.to_string()), Some(restarted_address.clone()));

    clusters.push(new);
    let all: Vec<&Cluster> = clusters.iter().collect();
    for c in &all {
        assert!(sees_exactly(c, &all).await, "{} sees the restarted member and not the old one", c.id());
    }
    for c in &clusters[..2] {
        assert!(c.member_list().is_blocked(&old_id), "the old id is blocked");
    }
    let reply: Echoed = clusters[2].request("grain-r", "echo", Hello { text: "again".into() }).await.expect("echo");
    assert_eq!(reply.text, "again");
    stop_all(clusters).await;
}

/// Serves `router` on a free port; returns its address.
async fn spawn_http(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    tokio::spawn(async move { axum::serve(listener, router).await });
    address
}

/// Accepts connections and never answers.
async fn spawn_silent() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    address
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_and_foreign_peers_are_tolerated() {
    use axum::routing::get;
    init_tracing();
    let dead = {
        // Bound then closed: nothing listens there.
        let (listener, address) = reserve();
        drop(listener);
        address
    };
    let not_found = spawn_http(axum::Router::new()).await;
    let not_json =
        spawn_http(axum::Router::new().route(HEALTH_PATH, get(|| async { "hello, I am a web server" }))).await;
    let wrong_shape = spawn_http(axum::Router::new().route(
        HEALTH_PATH,
        get(|| async { ([("content-type", "application/json")], r#"{"status":"ok","members":[]}"#) }),
    ))
    .await;
    let silent = spawn_silent().await;
    let junk = [dead, not_found, not_json, wrong_shape, silent];

    let (la, a_addr) = reserve();
    let (lb, b_addr) = reserve();
    let mut peers = vec![a_addr, b_addr];
    peers.extend(junk.iter().cloned());
    let config = |l| fast(&peers).with_timeout(Duration::from_millis(300)).with_listener(l);
    let (a, pa) = start_member("shop", config(la)).await;
    let (b, _pb) = start_member("shop", config(lb)).await;
    assert!(sees_exactly(&a, &[&a, &b]).await, "a sees a and b");
    assert!(sees_exactly(&b, &[&a, &b]).await, "b sees a and b");

    // Every junk peer was polled repeatedly and counted as missing.
    let all_missing = wait_until(DEADLINE, || {
        junk.iter().all(|p| matches!(view_of(&pa, p), PeerView::Missing { misses, .. } if misses >= 3))
    })
    .await;
    assert!(all_missing, "junk peers are misses: {:?}", pa.peers());
    assert_eq!(ids(&a.member_list().topology()).len(), 2, "junk never joins and the members stay");

    let reply: Echoed = a.request("grain-j", "echo", Hello { text: "still works".into() }).await.expect("echo");
    assert_eq!(reply.text, "still works");
    stop_all([a, b]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_of_another_cluster_is_ignored() {
    init_tracing();
    let (la, a_addr) = reserve();
    let (lb, b_addr) = reserve();
    let (lx, x_addr) = reserve();
    let peers = vec![a_addr, b_addr, x_addr.clone()];
    // The stranger serves before the others start, so their first poll round sees it.
    let (x, px) = start_member("other", fast(&peers).with_listener(lx)).await;
    let (a, pa) = start_member("shop", fast(&peers).with_listener(la)).await;
    let (b, pb) = start_member("shop", fast(&peers).with_listener(lb)).await;

    assert!(sees_exactly(&a, &[&a, &b]).await, "a sees only its own cluster");
    assert!(sees_exactly(&b, &[&a, &b]).await, "b sees only its own cluster");
    for p in [&pa, &pb] {
        assert_eq!(view_of(p, &x_addr), PeerView::OtherCluster { name: "other".into() });
    }
    assert!(wait_until(DEADLINE, || matches!(view_of(&px, &peers[0]), PeerView::OtherCluster { .. })).await);
    assert_eq!(ids(&x.member_list().topology()), [x.id().to_string()], "the stranger sees itself alone");
    assert!(!a.member_list().contains(x.id()) && !b.member_list().contains(x.id()));
    stop_all([a, b, x]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sees_the_members_and_reaches_grains() {
    init_tracing();
    let reserved: Vec<(TcpListener, String)> = (0..2).map(|_| reserve()).collect();
    let peers: Vec<String> = reserved.iter().map(|(_, a)| a.clone()).collect();
    let mut members = Vec::new();
    for (listener, _) in reserved {
        members.push(start_member("shop", fast(&peers).with_listener(listener)).await.0);
    }

    let provider = AutomanagedProvider::new(fast(&peers));
    let system = ActorSystem::new();
    let client = Cluster::new(&system, cluster_config("shop", provider.clone())).expect("client");
    client.start_client().await.expect("client starts");
    assert_eq!(provider.health_address(), None, "a client serves no health endpoint");

    let expected: Vec<&Cluster> = members.iter().collect();
    assert!(sees_exactly(&client, &expected).await, "the client sees both members, not itself");
    let reply: Echoed = client.request("grain-c", "echo", Hello { text: "from client".into() }).await.expect("echo");
    assert_eq!(reply.text, "from client");
    assert!(members.iter().any(|m| *m.address() == *reply.address), "hosted on a member");
    for m in &members {
        assert!(!m.member_list().contains(client.id()), "members do not list the client");
    }
    stop_all(std::iter::once(client).chain(members)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_health_port_fails_the_start_clearly() {
    init_tracing();
    let (_taken, address) = reserve();
    let port: u16 = address.rsplit_once(':').and_then(|(_, p)| p.parse().ok()).expect("port");
    let provider = AutomanagedProvider::new(fast(std::slice::from_ref(&address)).with_bind("127.0.0.1", port));
    let system = ActorSystem::new();
    let cluster = Cluster::new(&system, cluster_config("shop", provider)).expect("cluster");
    let error = cluster.start_member().await.expect_err("the port is taken");
    let text = error.to_string();
    assert!(text.contains("cannot bind the health endpoint") && text.contains(&address), "{text}");
    cluster.shutdown(false).await;
}
