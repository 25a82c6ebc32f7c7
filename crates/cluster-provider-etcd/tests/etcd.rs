//! Members in one process, each with its own actor system, finding each
//! other through a real etcd started by the testkit fixture.

#![forbid(unsafe_code)]
use std::time::{Duration, Instant};

use etcd_client::{Client, GetOptions};
use protoactor_actor::prelude::*;
use protoactor_cluster::{Cluster, ClusterConfig, Topology};
use protoactor_cluster_provider_etcd::{EtcdConfig, EtcdProvider, MemberInfo};
use protoactor_identity_lookup_partition::PartitionIdentityLookup;
use protoactor_remote::RemoteConfig;
use protoactor_testkit::cluster::{Echoed, Hello, echo_kind, init_tracing, wait_until_async};
use protoactor_testkit::etcd::EtcdServer;
use protoactor_testkit::service::free_port;

const TTL: Duration = Duration::from_secs(2);
const DEADLINE: Duration = Duration::from_secs(15);
const PREFIX: &str = "/tests";

async fn etcd() -> EtcdServer {
    tokio::task::spawn_blocking(EtcdServer::start).await.expect("fixture thread").expect("etcd starts")
}

fn fast(etcd: &EtcdServer, ttl: Duration) -> EtcdConfig {
    EtcdConfig::new([etcd.endpoint()])
        .with_prefix(PREFIX)
        .with_ttl(ttl)
        .with_connect_timeout(Duration::from_secs(2))
        .with_max_retry_interval(Duration::from_millis(300))
}

fn cluster_config(provider: EtcdProvider, kinds: &[&str]) -> ClusterConfig {
    let remote = RemoteConfig::bind("127.0.0.1", 0)
        .with_json::<Hello>("etcd_tests.Hello")
        .with_json::<Echoed>("etcd_tests.Echoed");
    let mut config = ClusterConfig::new("shop", provider, PartitionIdentityLookup::new())
        .with_remote(remote)
        .with_request_timeout(Duration::from_secs(2))
        .with_join_timeout(DEADLINE)
        // These tests check what etcd's leases detect; fast suspicion
        // (integration-tests/tests/cluster/suspicion.rs) would act first.
        .with_suspicion_votes(0);
    for kind in kinds {
        config = config.with_kind(echo_kind(kind));
    }
    config
}

async fn member_with(config: EtcdConfig, kinds: &[&str]) -> (Cluster, EtcdProvider) {
    let provider = EtcdProvider::new(config);
    let system = ActorSystem::new();
    let cluster = Cluster::new(&system, cluster_config(provider.clone(), kinds)).expect("cluster");
    cluster.start_member().await.expect("member starts");
    (cluster, provider)
}

async fn member(etcd: &EtcdServer, ttl: Duration) -> (Cluster, EtcdProvider) {
    member_with(fast(etcd, ttl), &["echo"]).await
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

async fn raw_client(etcd: &EtcdServer) -> Client {
    Client::connect([etcd.endpoint()], None).await.expect("test client connects")
}

/// The member infos registered for cluster `shop`, by key.
async fn registered(client: &mut Client) -> Vec<(String, MemberInfo, i64)> {
    let response =
        client.get(format!("{PREFIX}/shop/"), Some(GetOptions::new().with_prefix())).await.expect("etcd get");
    response
        .kvs()
        .iter()
        .map(|kv| {
            let info: MemberInfo = serde_json::from_slice(kv.value()).expect("member info JSON");
            (String::from_utf8_lossy(kv.key()).into_owned(), info, kv.lease())
        })
        .collect()
}

async fn stop_all(clusters: impl IntoIterator<Item = Cluster>) {
    for c in clusters {
        tokio::time::timeout(DEADLINE, c.shutdown(true)).await.expect("shutdown in time");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_form_one_topology_with_their_kinds() {
    init_tracing();
    let etcd = etcd().await;
    let a = member_with(fast(&etcd, TTL), &["echo"]).await.0;
    let b = member_with(fast(&etcd, TTL), &["echo", "audit"]).await.0;
    let c = member_with(fast(&etcd, TTL), &["audit"]).await.0;
    let all = [&a, &b, &c];
    for m in all {
        assert!(sees_exactly(m, &all).await, "{} sees all three members", m.id());
    }
    let topology = a.member_list().topology();
    for (m, kinds) in [(&a, vec!["echo"]), (&b, vec!["audit", "echo"]), (&c, vec!["audit"])] {
        let seen = topology.member(m.id()).expect("listed");
        assert_eq!(seen.kinds, kinds, "kinds of {}", m.id());
        assert_eq!(seen.address(), m.address().to_string());
    }

    // What is in etcd: one leased key per member, JSON with the cluster name.
    let mut client = raw_client(&etcd).await;
    let mut keys: Vec<(String, MemberInfo, i64)> = registered(&mut client).await;
    keys.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(keys.len(), 3);
    for (key, info, lease) in &keys {
        assert_eq!(key, &format!("{PREFIX}/shop/{}", info.id));
        assert_eq!(info.cluster, "shop");
        assert_ne!(*lease, 0, "{key} is bound to a lease");
    }

    // A client watches without registering; another cluster's member is not seen.
    let client_provider = EtcdProvider::new(fast(&etcd, TTL));
    let client_cluster =
        Cluster::new(&ActorSystem::new(), cluster_config(client_provider, &[])).expect("client cluster");
    client_cluster.start_client().await.expect("client starts");
    let other_provider = EtcdProvider::new(fast(&etcd, TTL));
    let other_config = ClusterConfig::new("other", other_provider, PartitionIdentityLookup::new())
        .with_kind(echo_kind("echo"))
        .with_join_timeout(DEADLINE);
    let other = Cluster::new(&ActorSystem::new(), other_config).expect("other cluster");
    other.start_member().await.expect("other cluster's member starts");
    assert!(sees_exactly(&client_cluster, &all).await, "the client sees the three members, not itself");
    assert!(sees_exactly(&other, &[&other]).await, "the other cluster sees only itself");
    assert_eq!(registered(&mut client).await.len(), 3, "the client did not register");

    let reply: Echoed =
        client_cluster.request("grain-1", "echo", Hello { text: "hi".into() }).await.expect("echo from the client");
    assert_eq!(reply.identity, "grain-1");
    stop_all([client_cluster, other, a, b, c]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_shutdown_revokes_the_lease_and_leaves_at_once() {
    init_tracing();
    let etcd = etcd().await;
    // A long TTL: leaving well within it proves the lease was revoked.
    let long = Duration::from_secs(30);
    let a = member(&etcd, long).await.0;
    let (b, b_provider) = member(&etcd, long).await;
    assert!(sees_exactly(&a, &[&a, &b]).await);
    let lease = b_provider.lease_id().expect("b holds a lease");
    let gone = b.id().to_string();
    let started = Instant::now();
    b.shutdown(true).await;
    assert!(sees_exactly(&a, &[&a]).await, "a drops b");
    assert!(started.elapsed() < Duration::from_secs(10), "left after {:?}, not at once", started.elapsed());
    assert!(a.member_list().is_blocked(&gone));
    let mut client = raw_client(&etcd).await;
    assert!(registered(&mut client).await.iter().all(|(_, info, _)| info.id != gone), "b's key is gone");
    let ttl = client.lease_time_to_live(lease, None).await.expect("lease ttl").ttl();
    assert!(ttl <= 0, "b's lease was revoked (ttl {ttl})");
    stop_all([a]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ungraceful_stop_leaves_when_the_lease_expires() {
    init_tracing();
    let etcd = etcd().await;
    let a = member(&etcd, TTL).await.0;
    let b = member(&etcd, TTL).await.0;
    assert!(sees_exactly(&a, &[&a, &b]).await);
    let gone = b.id().to_string();
    let stopped = Instant::now();
    b.shutdown(false).await;
    assert!(sees_exactly(&a, &[&a]).await, "a drops b once its lease expired");
    // The last keep-alive was at most TTL/3 before the stop, so the key
    // lives at least 2/3 TTL more; leaving earlier means it was deleted.
    let took = stopped.elapsed();
    assert!(took >= TTL * 2 / 3 - Duration::from_millis(100), "left after {took:?}, before its lease expired");
    assert!(a.member_list().is_blocked(&gone));
    stop_all([a]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grains_move_to_another_member_when_their_host_dies() {
    init_tracing();
    let etcd = etcd().await;
    let mut clusters = Vec::new();
    for _ in 0..3 {
        clusters.push(member(&etcd, TTL).await.0);
    }
    let all: Vec<&Cluster> = clusters.iter().collect();
    for c in &all {
        assert!(sees_exactly(c, &all).await, "three members first");
    }
    let first: Echoed = clusters[0].request("grain-m", "echo", Hello { text: "one".into() }).await.expect("echo");
    for c in &clusters {
        let again: Echoed = c.request("grain-m", "echo", Hello { text: "two".into() }).await.expect("echo");
        assert_eq!(again.address, first.address, "one activation, reached from every member");
    }
    let host = clusters.iter().position(|c| c.address().to_string() == first.address).expect("the host is a member");
    let dead = clusters.remove(host);
    dead.shutdown(false).await;

    let rest: Vec<&Cluster> = clusters.iter().collect();
    for c in &rest {
        assert!(sees_exactly(c, &rest).await, "{} drops the dead host after the TTL", c.id());
    }
    for c in &clusters {
        let moved: Echoed = c.request("grain-m", "echo", Hello { text: "three".into() }).await.expect("echo");
        assert_ne!(moved.address, first.address, "re-activated on a live member");
        assert_eq!(moved.text, "three");
    }
    stop_all(clusters).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_etcd_fails_start_member_within_the_connect_timeout() {
    init_tracing();
    // Nothing listens there.
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    let config = EtcdConfig::new([endpoint.clone()]).with_connect_timeout(Duration::from_secs(1));
    let system = ActorSystem::new();
    let cluster = Cluster::new(&system, cluster_config(EtcdProvider::new(config), &["echo"])).expect("cluster");
    let started = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(10), cluster.start_member()).await.expect("bounded");
    let took = started.elapsed();
    let error = result.expect_err("no etcd there").to_string();
    assert!(error.contains(&endpoint), "{error}");
    assert!(error.contains("no answer within") || error.contains("failed"), "{error}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    cluster.shutdown(false).await;

    // Bad configuration is refused before any connection is tried.
    let cluster = Cluster::new(
        &ActorSystem::new(),
        cluster_config(EtcdProvider::new(EtcdConfig::new(["https://127.0.0.1:1"])), &["echo"]),
    )
    .expect("cluster");
    let error = cluster.start_member().await.expect_err("https without TLS").to_string();
    assert!(error.contains("with_tls"), "{error}");
    cluster.shutdown(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_fail_start_member_and_right_ones_work() {
    init_tracing();
    let etcd = etcd().await;
    let mut admin = raw_client(&etcd).await;
    admin.user_add("root", "root-pw", None).await.expect("add root");
    admin.user_grant_role("root", "root").await.expect("grant root");
    admin.auth_enable().await.expect("enable auth");

    let system = ActorSystem::new();
    let bad = fast(&etcd, TTL).with_user("root", "wrong");
    let cluster = Cluster::new(&system, cluster_config(EtcdProvider::new(bad), &["echo"])).expect("cluster");
    let result = tokio::time::timeout(Duration::from_secs(10), cluster.start_member()).await.expect("bounded");
    let error = result.expect_err("wrong password").to_string();
    assert!(error.contains("authentication failed"), "{error}");
    cluster.shutdown(false).await;

    let (good, _) = member_with(fast(&etcd, TTL).with_user("root", "root-pw"), &["echo"]).await;
    assert!(sees_exactly(&good, &[&good]).await);
    stop_all([good]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_survive_an_etcd_restart_and_keep_watching() {
    init_tracing();
    let mut etcd = etcd().await;
    let (a, a_provider) = member(&etcd, TTL).await;
    let (b, b_provider) = member(&etcd, TTL).await;
    assert!(sees_exactly(&a, &[&a, &b]).await);
    assert!(sees_exactly(&b, &[&a, &b]).await);
    let mut changes = a.member_list().subscribe();

    tokio::task::block_in_place(|| etcd.kill());
    tokio::task::block_in_place(|| etcd.restart()).expect("etcd restarts");

    // Watch resumed: a member that joins after the restart is seen by both.
    let c = member(&etcd, TTL).await.0;
    for m in [&a, &b, &c] {
        assert!(sees_exactly(m, &[&a, &b, &c]).await, "{} sees all three after the restart", m.id());
    }
    // Nobody was dropped meanwhile: every topology a reported had a and b.
    while changes.has_changed().unwrap_or(false) {
        let t = changes.borrow_and_update().clone();
        assert!(t.member(a.id()).is_some() && t.member(b.id()).is_some(), "a dropped someone: {:?}", ids(&t));
    }
    assert!(a.member_list().blocked().is_empty() && b.member_list().blocked().is_empty(), "no member blocked");
    // The leases outlived the restart: no re-registration was needed.
    assert_eq!(a_provider.registrations(), 1);
    assert_eq!(b_provider.registrations(), 1);

    // And keep-alives resumed: the keys outlive several TTLs.
    let mut client = raw_client(&etcd).await;
    let lease = a_provider.lease_id().expect("a's lease");
    for _ in 0..3 {
        // Waiting a TTL is the subject here: an unrenewed lease would expire.
        tokio::time::sleep(TTL).await;
        let ttl = client.lease_time_to_live(lease, None).await.expect("lease ttl").ttl();
        assert!(ttl > 0, "a's lease is renewed (ttl {ttl})");
    }
    stop_all([c, b, a]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_lease_is_granted_again_and_the_member_registers_again() {
    init_tracing();
    let etcd = etcd().await;
    let (a, provider) = member(&etcd, TTL).await;
    let old = provider.lease_id().expect("a lease");
    let mut client = raw_client(&etcd).await;
    client.lease_revoke(old).await.expect("revoke a's lease behind its back");

    assert!(wait_until_async(DEADLINE, || async { provider.registrations() == 2 }).await, "registered again");
    let new = provider.lease_id().expect("a new lease");
    assert_ne!(new, old);
    let id = a.id().to_string();
    assert!(
        wait_until_async(DEADLINE, || {
            let (mut c, id) = (client.clone(), id.clone());
            async move { registered(&mut c).await.iter().any(|(_, info, lease)| info.id == id && *lease == new) }
        })
        .await,
        "the key is back, bound to the new lease"
    );
    assert!(a.member_list().topology().member(a.id()).is_some(), "a kept listing itself");
    let ttl = client.lease_time_to_live(new, None).await.expect("lease ttl").ttl();
    assert!(ttl > 0, "the new lease is kept alive");
    stop_all([a]).await;
}

/// A TCP proxy to etcd that can cut every connection and refuse new ones,
/// making etcd unreachable for the members behind it only.
struct Proxy {
    endpoint: String,
    open: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(target: u16) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let endpoint = format!("http://{}", listener.local_addr().expect("proxy address"));
        let (open, _) = tokio::sync::watch::channel(true);
        let gate = open.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !*gate.borrow() {
                    continue; // dropped: refused
                }
                let mut closed = gate.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = closed.wait_for(|open| !*open) => {}
                    }
                });
            }
        });
        Proxy { endpoint, open, task }
    }

    fn set_open(&self, open: bool) {
        self.open.send_replace(open);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_outage_past_a_compaction_the_member_lists_again() {
    init_tracing();
    let etcd = etcd().await;
    let proxy = Proxy::start(etcd.client_port()).await;
    // `a` reaches etcd through the proxy only; its long TTL outlives the outage.
    let behind_proxy = EtcdConfig::new([proxy.endpoint.clone()])
        .with_prefix(PREFIX)
        .with_ttl(Duration::from_secs(30))
        .with_connect_timeout(Duration::from_secs(2))
        .with_max_retry_interval(Duration::from_millis(300));
    let a = member_with(behind_proxy, &["echo"]).await.0;
    let c = member(&etcd, TTL).await.0;
    assert!(sees_exactly(&a, &[&a, &c]).await);

    proxy.set_open(false);
    // While `a` cannot see etcd: c dies (its key expires), b joins, and
    // etcd compacts away the history a would resume its watch from.
    let c_id = c.id().to_string();
    c.shutdown(false).await;
    let b = member(&etcd, TTL).await.0;
    let mut client = raw_client(&etcd).await;
    assert!(
        wait_until_async(DEADLINE, || {
            let (mut client, c_id) = (client.clone(), c_id.clone());
            async move { registered(&mut client).await.iter().all(|(_, info, _)| info.id != c_id) }
        })
        .await,
        "c's lease expired"
    );
    let revision = client.get("x", None).await.expect("get").header().expect("header").revision();
    client.compact(revision, None).await.expect("compact");
    assert!(a.member_list().contains(&c_id), "a keeps its last known topology while etcd is unreachable");
    assert!(!a.member_list().contains(b.id()));

    proxy.set_open(true);
    // The watch cannot resume (compacted): only a full list shows that c
    // left and b joined.
    assert!(sees_exactly(&a, &[&a, &b]).await, "a lists again after the compaction");
    assert!(sees_exactly(&b, &[&a, &b]).await);
    stop_all([b, a]).await;
}
