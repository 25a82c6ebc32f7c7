//! Members on a real ZooKeeper (started per test by the testkit fixture).

#![forbid(unsafe_code)]
use std::time::{Duration, Instant};

use protoactor_actor::Subscription;
use protoactor_actor::prelude::*;
use protoactor_cluster::{Cluster, ClusterConfig, ClusterTopology, Topology};
use protoactor_cluster_provider_zk::{LeaderChanged, MemberInfo, ZkConfig, ZkProvider};
use protoactor_identity_lookup_partition::PartitionIdentityLookup;
use protoactor_remote::RemoteConfig;
use protoactor_testkit::cluster::{Echoed, Hello, echo_kind, init_tracing, wait_until, wait_until_async};
use protoactor_testkit::zookeeper::ZooKeeperServer;
use tokio::sync::mpsc::UnboundedReceiver;

const SESSION: Duration = Duration::from_secs(2);
const DEADLINE: Duration = Duration::from_secs(15);

fn server() -> ZooKeeperServer {
    ZooKeeperServer::start().unwrap_or_else(|e| panic!("ZooKeeper must be available for these tests: {e}"))
}

fn zk(server: &ZooKeeperServer) -> ZkConfig {
    ZkConfig::new(server.connect_string()).with_session_timeout(SESSION).with_connect_timeout(Duration::from_secs(5))
}

fn cluster_config(name: &str, provider: ZkProvider, kinds: &[&str]) -> ClusterConfig {
    let remote =
        RemoteConfig::bind("127.0.0.1", 0).with_json::<Hello>("zk_tests.Hello").with_json::<Echoed>("zk_tests.Echoed");
    let mut config = ClusterConfig::new(name, provider, PartitionIdentityLookup::new())
        .with_remote(remote)
        .with_request_timeout(Duration::from_secs(2))
        .with_join_timeout(DEADLINE)
        // These tests check what ZooKeeper's sessions detect; fast suspicion
        // (integration-tests/tests/cluster/suspicion.rs) would act first.
        .with_suspicion_votes(0);
    for kind in kinds {
        config = config.with_kind(echo_kind(kind));
    }
    config
}

struct Node {
    cluster: Cluster,
    provider: ZkProvider,
    leaders: UnboundedReceiver<LeaderChanged>,
    topologies: UnboundedReceiver<ClusterTopology>,
    _subscriptions: (Subscription, Subscription),
}

async fn start(name: &str, config: ZkConfig, kinds: &[&str]) -> Node {
    let provider = ZkProvider::new(config);
    let system = ActorSystem::new();
    let (s1, leaders) = system.event_stream().subscribe_channel::<LeaderChanged>();
    let (s2, topologies) = system.event_stream().subscribe_channel::<ClusterTopology>();
    let cluster = Cluster::new(&system, cluster_config(name, provider.clone(), kinds)).expect("cluster");
    cluster.start_member().await.expect("member starts");
    Node { cluster, provider, leaders, topologies, _subscriptions: (s1, s2) }
}

async fn start_three(server: &ZooKeeperServer, name: &str) -> Vec<Node> {
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(start(name, zk(server), &["echo"]).await);
    }
    for n in &nodes {
        assert!(sees_exactly(&n.cluster, &nodes.iter().collect::<Vec<_>>()).await, "{} sees all three", n.cluster.id());
    }
    nodes
}

fn ids(t: &Topology) -> Vec<String> {
    t.members.iter().map(|m| m.id.clone()).collect()
}

async fn sees_exactly(cluster: &Cluster, expected: &[&Node]) -> bool {
    let mut want: Vec<String> = expected.iter().map(|n| n.cluster.id().to_string()).collect();
    want.sort();
    cluster.member_list().wait_for(DEADLINE, |t| ids(t) == want).await
}

/// The next leadership event naming `leader`, skipping older ones.
async fn leader_becomes(rx: &mut UnboundedReceiver<LeaderChanged>, leader: &str) -> LeaderChanged {
    tokio::time::timeout(DEADLINE, async {
        loop {
            let event = rx.recv().await.expect("event stream open");
            if event.leader_id == leader {
                return event;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no LeaderChanged naming {leader}"))
}

fn left_ids(rx: &mut UnboundedReceiver<ClusterTopology>) -> Vec<String> {
    let mut left = Vec::new();
    while let Ok(t) = rx.try_recv() {
        left.extend(t.left.into_iter().map(|m| m.id));
    }
    left
}

async fn stop_all(nodes: impl IntoIterator<Item = Node>) {
    for n in nodes {
        tokio::time::timeout(DEADLINE, n.cluster.shutdown(true)).await.expect("shutdown in time");
    }
}

/// A raw client, to look at what the provider wrote.
async fn raw(server: &ZooKeeperServer) -> zookeeper_client::Client {
    zookeeper_client::Client::connector()
        .with_session_timeout(SESSION)
        .connect(&server.connect_string())
        .await
        .expect("raw client connects")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_form_one_topology_with_their_kinds_and_a_leader() {
    init_tracing();
    let server = server();
    let mut nodes = Vec::new();
    nodes.push(start("shop", zk(&server), &["echo"]).await);
    nodes.push(start("shop", zk(&server), &["echo", "cart"]).await);
    nodes.push(start("shop", zk(&server), &["cart"]).await);
    // A member of another cluster on the same server stays out.
    let other = start("other", zk(&server), &["echo"]).await;
    let all: Vec<&Node> = nodes.iter().collect();
    for n in &all {
        assert!(sees_exactly(&n.cluster, &all).await, "{} sees the three shop members", n.cluster.id());
    }
    assert!(sees_exactly(&other.cluster, &[&other]).await, "the other cluster sees only itself");
    let topology = nodes[0].cluster.member_list().topology();
    for n in &nodes {
        let seen = topology.member(n.cluster.id()).expect("member in topology");
        let mut want: Vec<String> = n.cluster.config().kinds().iter().map(|k| k.name().to_string()).collect();
        let mut got = seen.kinds.clone();
        want.sort();
        got.sort();
        assert_eq!(got, want, "kinds of {}", n.cluster.id());
        assert_eq!(seen.address(), n.cluster.address().to_string());
    }
    assert_eq!(topology.members_for_kind("cart").count(), 2);

    // What is in ZooKeeper: one ephemeral sequential znode per member, with its info as JSON.
    let client = raw(&server).await;
    let mut children = client.list_children("/protoactor/shop").await.expect("list");
    children.sort();
    assert_eq!(children.len(), 3, "{children:?}");
    let (data, stat) = client.get_data(&format!("/protoactor/shop/{}", children[0])).await.expect("data");
    assert_ne!(stat.ephemeral_owner, 0, "member znodes are ephemeral");
    let info: MemberInfo = serde_json::from_slice(&data).expect("member info JSON");
    assert_eq!(info.id, nodes[0].cluster.id(), "the first member has the lowest sequence");
    assert_eq!(info.cluster, "shop");
    assert_eq!(info.kinds, vec!["echo".to_string()]);
    assert_eq!(Some(format!("/protoactor/shop/{}", children[0])), nodes[0].provider.node());

    // The first member leads, and every member says so.
    let first = nodes[0].cluster.id().to_string();
    for n in &mut nodes {
        let event = leader_becomes(&mut n.leaders, &first).await;
        assert_eq!(event.is_self, n.cluster.id() == first, "is_self on {}", n.cluster.id());
        assert_eq!(event.cluster, "shop");
        assert_eq!(n.provider.leader().map(|l| l.leader_id), Some(first.clone()));
    }

    // Grains answer from every member; one activation.
    let mut hosted_at = None;
    for n in &nodes {
        let reply: Echoed =
            n.cluster.request("grain-1", "cart", Hello { text: "hi".into() }).await.expect("cart reply");
        assert_eq!(reply.identity, "grain-1");
        hosted_at.get_or_insert(reply.address.clone());
        assert_eq!(hosted_at.as_deref(), Some(reply.address.as_str()));
        assert_ne!(reply.address, nodes[0].cluster.address().to_string(), "member 0 does not host `cart`");
    }
    stop_all(nodes).await;
    stop_all([other]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_leave_is_seen_at_once_and_moves_the_leadership() {
    init_tracing();
    let server = server();
    // A long session: leaving "at once" must not be the session expiry.
    let long = |s: &ZooKeeperServer| zk(s).with_session_timeout(Duration::from_secs(20));
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(start("shop", long(&server), &["echo"]).await);
    }
    let all: Vec<&Node> = nodes.iter().collect();
    for n in &all {
        assert!(sees_exactly(&n.cluster, &all).await);
    }
    let leaving = nodes.remove(0);
    let node = leaving.provider.node().expect("registered");
    let left_at = Instant::now();
    leaving.cluster.shutdown(true).await;
    let rest: Vec<&Node> = nodes.iter().collect();
    for n in &rest {
        assert!(sees_exactly(&n.cluster, &rest).await);
    }
    let took = left_at.elapsed();
    assert!(took < Duration::from_secs(5), "a graceful leave took {took:?} with a 20 s session");
    let client = raw(&server).await;
    assert_eq!(client.check_stat(&node).await.expect("stat"), None, "its znode is gone");

    // The next-lowest sequence leads now.
    let next = nodes[0].cluster.id().to_string();
    for n in &mut nodes {
        let event = leader_becomes(&mut n.leaders, &next).await;
        assert_eq!(event.is_self, n.cluster.id() == next);
    }
    stop_all(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_member_leaves_after_the_session_timeout_and_its_grains_move() {
    init_tracing();
    let server = server();
    let mut nodes = start_three(&server, "shop").await;
    // Activate grains until one lives on the member we will kill.
    let victim = nodes[2].cluster.address().to_string();
    let mut identity = None;
    for i in 0..64 {
        let id = format!("grain-{i}");
        let reply: Echoed = nodes[0].cluster.request(&id, "echo", Hello { text: "hi".into() }).await.expect("reply");
        if reply.address == victim {
            identity = Some(id);
            break;
        }
    }
    let identity = identity.expect("some grain lands on the victim");

    let dead = nodes.remove(2);
    let dead_id = dead.cluster.id().to_string();
    let killed_at = Instant::now();
    dead.cluster.shutdown(false).await;
    // Not at once: the znode stays until ZooKeeper expires the session.
    tokio::time::sleep(Duration::from_millis(300)).await; // proving absence over a window
    assert!(nodes[0].cluster.member_list().contains(&dead_id), "an ungraceful stop does not deregister");
    let rest: Vec<&Node> = nodes.iter().collect();
    for n in &rest {
        assert!(sees_exactly(&n.cluster, &rest).await, "the killed member leaves");
    }
    let took = killed_at.elapsed();
    assert!(took >= Duration::from_secs(1), "left after {took:?}, before the 2 s session could expire");
    assert!(took < Duration::from_secs(10), "left after {took:?}");

    // The grain is activated again on a survivor, the same one from both.
    let mut hosted_at = None;
    for n in &nodes {
        let reply: Echoed =
            n.cluster.request(&identity, "echo", Hello { text: "again".into() }).await.expect("re-activated");
        assert_ne!(reply.address, victim);
        hosted_at.get_or_insert(reply.address.clone());
        assert_eq!(hosted_at.as_deref(), Some(reply.address.as_str()));
    }
    stop_all(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_fails_the_start_clearly_and_in_time() {
    init_tracing();
    let port = protoactor_testkit::service::free_port();
    let config = ZkConfig::new(format!("127.0.0.1:{port}"))
        .with_session_timeout(SESSION)
        .with_connect_timeout(Duration::from_secs(3));
    let system = ActorSystem::new();
    let cluster = Cluster::new(&system, cluster_config("shop", ZkProvider::new(config), &["echo"])).expect("cluster");
    let started = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(10), cluster.start_member()).await.expect("bounded");
    let error = result.expect_err("nothing listens there").to_string();
    assert!(started.elapsed() < Duration::from_secs(8), "took {:?}", started.elapsed());
    assert!(error.contains(&format!("127.0.0.1:{port}")), "names the connect string: {error}");
    assert!(error.contains("ZooKeeper is running"), "says what to check: {error}");
    cluster.shutdown(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_fail_the_start_clearly() {
    init_tracing();
    let server = server();
    let good = start("vault", zk(&server).with_auth("alice", "right"), &["echo"]).await;
    assert!(sees_exactly(&good.cluster, &[&good]).await);
    // The znodes are CREATOR_ALL: without the credentials nothing is readable.
    let client = raw(&server).await;
    assert_eq!(client.list_children("/protoactor/vault").await, Err(zookeeper_client::Error::NoAuth));

    let system = ActorSystem::new();
    let provider = ZkProvider::new(zk(&server).with_auth("alice", "wrong"));
    let cluster = Cluster::new(&system, cluster_config("vault", provider, &["echo"])).expect("cluster");
    let result = tokio::time::timeout(Duration::from_secs(10), cluster.start_member()).await.expect("bounded");
    let error = result.expect_err("wrong password").to_string();
    assert!(error.contains("not authorized"), "{error}");
    assert!(error.contains("with_auth"), "{error}");
    cluster.shutdown(false).await;
    stop_all([good]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chroot_and_root_place_the_znodes() {
    init_tracing();
    let server = server();
    let config = zk(&server).with_chroot("/apps/shop").with_root("/members");
    let node = start("c1", config, &["echo"]).await;
    let client = raw(&server).await;
    let children = client.list_children("/apps/shop/members/c1").await.expect("registered under the chroot");
    assert_eq!(children.len(), 1, "{children:?}");
    assert!(children[0].starts_with("member-"));
    stop_all([node]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_keeps_every_member() {
    init_tracing();
    let mut server = server();
    let mut nodes = start_three(&server, "shop").await;
    for n in &mut nodes {
        let _ = left_ids(&mut n.topologies);
    }
    // Longer sessions than the restart: they survive it.
    server.restart().expect("server restarts");
    // The members talk to ZooKeeper again: a new member joins and all see four.
    let late = start("shop", zk(&server), &["echo"]).await;
    nodes.push(late);
    let all: Vec<&Node> = nodes.iter().collect();
    for n in &all {
        assert!(sees_exactly(&n.cluster, &all).await, "{} sees all four after the restart", n.cluster.id());
    }
    for n in &mut nodes {
        assert_eq!(left_ids(&mut n.topologies), Vec::<String>::new(), "nobody left on {}", n.cluster.id());
    }
    stop_all(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_session_re_registers_without_dropping_anyone() {
    init_tracing();
    let server = server();
    let mut nodes = start_three(&server, "shop").await;
    for n in &mut nodes {
        let _ = left_ids(&mut n.topologies);
    }
    let before: Vec<(Option<String>, Option<i64>)> =
        nodes.iter().map(|n| (n.provider.node(), n.provider.session_id())).collect();
    server.pause().expect("SIGSTOP");
    // Paused past the session timeout: every session expires on resume.
    // (Timing is the subject here.)
    tokio::time::sleep(SESSION * 3).await;
    server.resume().expect("SIGCONT");
    for (n, (node, session)) in nodes.iter().zip(&before) {
        assert!(
            wait_until(DEADLINE, || n.provider.session_id().is_some() && n.provider.session_id() != *session).await,
            "{} opened a new session",
            n.cluster.id()
        );
        assert!(
            wait_until(DEADLINE, || n.provider.node().is_some() && n.provider.node() != *node).await,
            "{} registered again",
            n.cluster.id()
        );
    }
    let client = raw(&server).await;
    assert!(
        wait_until_async(DEADLINE, || async {
            client.list_children("/protoactor/shop").await.map(|c| c.len()).ok() == Some(3)
        })
        .await,
        "three znodes again"
    );
    let all: Vec<&Node> = nodes.iter().collect();
    for n in &all {
        assert!(sees_exactly(&n.cluster, &all).await);
    }
    for n in &mut nodes {
        assert_eq!(left_ids(&mut n.topologies), Vec::<String>::new(), "nobody left on {}", n.cluster.id());
    }
    // Still one cluster: a grain answers from everywhere.
    for n in &nodes {
        let reply: Echoed = n.cluster.request("after", "echo", Hello { text: "x".into() }).await.expect("reply");
        assert_eq!(reply.identity, "after");
    }
    stop_all(nodes).await;
}
