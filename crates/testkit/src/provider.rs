//! The cluster provider conformance suite (feature `provider`): the
//! behaviour every [`ClusterProvider`] must show, as async functions a
//! provider crate calls from its tests with a few lines.
//!
//! Each scenario starts members (and clients) in this process, each with its
//! own actor system, real remoting on loopback, the partition identity
//! lookup and the [echo kind](crate::cluster::echo_kind), under a cluster
//! name of its own, so scenarios can share one backend. `make` returns a
//! fresh provider for one member or client.
//!
//! | scenario | every provider | needs a backend to stop |
//! |---|---|---|
//! | [`three_members_form_one_topology`] | yes | |
//! | [`graceful_leave_is_seen_at_once`] | yes | |
//! | [`silent_member_leaves_after_ttl`] | yes | |
//! | [`client_watches_without_registering`] | yes | |
//! | [`grains_work_end_to_end`] | yes | |
//! | [`backend_outage_keeps_topology`] | registry providers (etcd, ZooKeeper, Consul, Kubernetes) | yes |
//!
//! The in-memory and automanaged providers have no backend to take away
//! (the peers are the backend), so they do not run the outage scenario.
//!
//! ```no_run
//! use std::time::Duration;
//! use protoactor_cluster::{InMemoryAgent, InMemoryProvider};
//! use protoactor_testkit::provider;
//!
//! # async fn demo() {
//! let agent = InMemoryAgent::with_ttl(Duration::from_secs(1));
//! provider::silent_member_leaves_after_ttl(&|| InMemoryProvider::new(&agent), Duration::from_secs(10)).await;
//! # }
//! ```

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use parking_lot::Mutex;
use protoactor_actor::prelude::*;
use protoactor_cluster::{Cluster, ClusterConfig, ClusterProvider, Member, Topology};
use protoactor_identity_lookup_partition::PartitionIdentityLookup;
use protoactor_remote::RemoteConfig;

use crate::cluster::{Echoed, Hello, echo_kind, init_tracing};

/// How long a scenario waits for a topology to appear before it fails.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// The kind every member hosts (some also host [`AUDIT`]).
pub const ECHO: &str = "echo";
/// A second kind, to check that kinds travel through the backend.
pub const AUDIT: &str = "audit";

/// Remoting on a free loopback port with [`Hello`]/[`Echoed`] registered.
pub fn remote_config() -> RemoteConfig {
    RemoteConfig::bind("127.0.0.1", 0)
        .with_json::<Hello>("testkit.provider.Hello")
        .with_json::<Echoed>("testkit.provider.Echoed")
}

/// The cluster configuration the scenarios use: `provider`, the partition
/// lookup, an echo grain per kind in `kinds`.
pub fn cluster_config(name: &str, provider: impl ClusterProvider, kinds: &[&str]) -> ClusterConfig {
    let mut config = ClusterConfig::new(name, provider, PartitionIdentityLookup::new())
        .with_remote(remote_config())
        .with_request_timeout(Duration::from_secs(3))
        .with_request_deadline(DEADLINE)
        .with_join_timeout(DEADLINE)
        // The suite checks what the provider detects; fast suspicion would
        // remove a stopped member before its registration expires.
        .with_suspicion_votes(0);
    for kind in kinds {
        config = config.with_kind(echo_kind(kind));
    }
    config
}

/// Starts a member of cluster `name` hosting `kinds`.
pub async fn start_member(name: &str, provider: impl ClusterProvider, kinds: &[&str]) -> Cluster {
    let cluster = Cluster::new(&ActorSystem::new(), cluster_config(name, provider, kinds)).expect("a valid config");
    cluster.start_member().await.unwrap_or_else(|e| panic!("the member starts: {e}"));
    cluster
}

/// Starts a client of cluster `name`.
pub async fn start_client(name: &str, provider: impl ClusterProvider) -> Cluster {
    let cluster = Cluster::new(&ActorSystem::new(), cluster_config(name, provider, &[])).expect("a valid config");
    cluster.start_client().await.unwrap_or_else(|e| panic!("the client starts: {e}"));
    cluster
}

/// A cluster name unique to this scenario run.
pub fn unique_name(scenario: &str) -> String {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("{scenario}-{nanos:08x}")
}

fn ids(t: &Topology) -> Vec<String> {
    t.members.iter().map(|m| m.id.clone()).collect()
}

/// Waits until `cluster` sees exactly `expected` (by id); false after `within`.
pub async fn sees_exactly(cluster: &Cluster, expected: &[&Cluster], within: Duration) -> bool {
    let mut want: Vec<String> = expected.iter().map(|c| c.id().to_string()).collect();
    want.sort();
    cluster.member_list().wait_for(within, |t| ids(t) == want).await
}

async fn all_see_each_other(members: &[&Cluster]) {
    for m in members {
        let seen = sees_exactly(m, members, DEADLINE).await;
        assert!(seen, "{} sees exactly the {} members; it sees {:?}", m.id(), members.len(), m.member_list().members());
    }
}

async fn stop_all(clusters: impl IntoIterator<Item = Cluster>) {
    join_all(clusters.into_iter().map(|c| async move {
        tokio::time::timeout(DEADLINE, c.shutdown(true)).await.expect("shutdown in time");
    }))
    .await;
}

/// Three members hosting `[echo]`, `[echo, audit]` and `[audit]` all see the
/// same three members, with each one's address and kinds as it registered them.
pub async fn three_members_form_one_topology<P: ClusterProvider>(make: &impl Fn() -> P) {
    init_tracing();
    let name = unique_name("three");
    let a = start_member(&name, make(), &[ECHO]).await;
    let b = start_member(&name, make(), &[ECHO, AUDIT]).await;
    let c = start_member(&name, make(), &[AUDIT]).await;
    all_see_each_other(&[&a, &b, &c]).await;
    let want = [(&a, vec![ECHO]), (&b, vec![AUDIT, ECHO]), (&c, vec![AUDIT])];
    for viewer in [&a, &b, &c] {
        let topology = viewer.member_list().topology();
        for (m, kinds) in &want {
            let seen: &Member = topology.member(m.id()).expect("listed");
            let mut seen_kinds = seen.kinds.clone();
            seen_kinds.sort();
            assert_eq!(&seen_kinds, kinds, "{} sees the kinds of {}", viewer.id(), m.id());
            assert_eq!(seen.address(), m.address().to_string(), "{} sees the address of {}", viewer.id(), m.id());
        }
    }
    stop_all([a, b, c]).await;
}

/// A member shuts down gracefully: the others see it leave within
/// `within`, which the caller picks well below the provider's TTL (so only
/// a deregistration, not an expiry, can explain it), and block it.
pub async fn graceful_leave_is_seen_at_once<P: ClusterProvider>(make: &impl Fn() -> P, within: Duration) {
    init_tracing();
    let name = unique_name("graceful");
    let a = start_member(&name, make(), &[ECHO]).await;
    let b = start_member(&name, make(), &[ECHO]).await;
    let c = start_member(&name, make(), &[ECHO]).await;
    all_see_each_other(&[&a, &b, &c]).await;
    let gone = c.id().to_string();
    c.shutdown(true).await;
    for m in [&a, &b] {
        assert!(sees_exactly(m, &[&a, &b], within).await, "{} saw the graceful leave within {within:?}", m.id());
        assert!(m.member_list().is_blocked(&gone), "{} blocks the member that left", m.id());
    }
    stop_all([a, b]).await;
}

/// A member stops without deregistering (as a crashed process would): it is
/// still listed right after it stopped, the others drop it once its
/// registration expires (within `within`: the TTL plus the backend's check
/// period) and block its id.
pub async fn silent_member_leaves_after_ttl<P: ClusterProvider>(make: &impl Fn() -> P, within: Duration) {
    init_tracing();
    let name = unique_name("silent");
    let a = start_member(&name, make(), &[ECHO]).await;
    let b = start_member(&name, make(), &[ECHO]).await;
    let c = start_member(&name, make(), &[ECHO]).await;
    all_see_each_other(&[&a, &b, &c]).await;
    let gone = c.id().to_string();
    c.shutdown(false).await;
    assert!(a.member_list().contains(&gone), "a stopped member stays listed until its TTL runs out");
    for m in [&a, &b] {
        assert!(sees_exactly(m, &[&a, &b], within).await, "{} dropped the silent member within {within:?}", m.id());
        assert!(m.member_list().is_blocked(&gone), "{} blocks the silent member", m.id());
    }
    stop_all([a, b]).await;
}

/// A client sees the members without being listed itself, by them or by
/// itself, and reaches their grains.
pub async fn client_watches_without_registering<P: ClusterProvider>(make: &impl Fn() -> P) {
    init_tracing();
    let name = unique_name("client");
    let a = start_member(&name, make(), &[ECHO]).await;
    let b = start_member(&name, make(), &[ECHO]).await;
    let client = start_client(&name, make()).await;
    all_see_each_other(&[&a, &b]).await;
    assert!(sees_exactly(&client, &[&a, &b], DEADLINE).await, "the client sees both members");
    assert!(!a.member_list().contains(client.id()), "the client is not registered");
    let reply: Echoed = client.request("from-client", ECHO, Hello { text: "hi".into() }).await.expect("a reply");
    assert_eq!(reply.identity, "from-client");
    assert!(
        [a.address().to_string(), b.address().to_string()].contains(&reply.address),
        "answered by a member, not the client"
    );
    // A member joining later is seen by the client too.
    let c = start_member(&name, make(), &[ECHO]).await;
    assert!(sees_exactly(&client, &[&a, &b, &c], DEADLINE).await, "the client sees a member that joined later");
    stop_all([client, a, b, c]).await;
}

/// Grains on top: 30 identities requested from each of three members reach
/// one activation each (every member gets the same answer); after the host
/// of one of them leaves, the grain answers again from a remaining member.
pub async fn grains_work_end_to_end<P: ClusterProvider>(make: &impl Fn() -> P) {
    init_tracing();
    let name = unique_name("grains");
    let mut members = Vec::new();
    for _ in 0..3 {
        members.push(start_member(&name, make(), &[ECHO]).await);
    }
    all_see_each_other(&members.iter().collect::<Vec<_>>()).await;
    let identities: Vec<String> = (0..30).map(|i| format!("grain-{i}")).collect();
    let mut first = Vec::new();
    for id in &identities {
        let mut answers = Vec::new();
        for m in &members {
            let reply: Echoed = m.request(id, ECHO, Hello { text: id.clone() }).await.expect("a reply");
            assert_eq!((reply.identity.as_str(), reply.text.as_str()), (id.as_str(), id.as_str()));
            answers.push(reply.address);
        }
        assert!(answers.iter().all(|a| *a == answers[0]), "{id}: one activation for all members: {answers:?}");
        first.push(answers[0].clone());
    }
    let leaver_address = first[0].clone();
    let i = members.iter().position(|m| m.address().to_string() == leaver_address).expect("hosted by a member");
    let leaver = members.remove(i);
    leaver.shutdown(true).await;
    let rest: Vec<&Cluster> = members.iter().collect();
    all_see_each_other(&rest).await;
    let again: Echoed = members[0].request(&identities[0], ECHO, Hello { text: "again".into() }).await.expect("reply");
    assert_ne!(again.address, leaver_address, "the grain moved off the member that left");
    stop_all(members).await;
}

/// The backend goes away for `outage` (`stop` and `start` are blocking
/// calls, run off the runtime) and comes back. Meanwhile no member reports
/// an empty topology or drops a live member: they keep the last one. Once
/// it is back a new member joins and everyone sees it (the watch resumed).
pub async fn backend_outage_keeps_topology<P: ClusterProvider>(
    make: &impl Fn() -> P,
    outage: Duration,
    stop: impl FnOnce() + Send + 'static,
    start: impl FnOnce() + Send + 'static,
) {
    init_tracing();
    let name = unique_name("outage");
    let a = start_member(&name, make(), &[ECHO]).await;
    let b = start_member(&name, make(), &[ECHO]).await;
    all_see_each_other(&[&a, &b]).await;
    let both = [a.id().to_string(), b.id().to_string()];
    // Record every topology a and b see from here on.
    let seen: Arc<Mutex<Vec<Vec<String>>>> = Arc::default();
    let mut watchers = Vec::new();
    for m in [&a, &b] {
        let mut rx = m.member_list().subscribe();
        let seen = seen.clone();
        watchers.push(tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let t = rx.borrow_and_update().clone();
                seen.lock().push(ids(&t));
            }
        }));
    }
    tokio::task::spawn_blocking(stop).await.expect("the backend stops");
    // The outage lasts a while on purpose: providers must ride it out.
    tokio::time::sleep(outage).await;
    for m in [&a, &b] {
        let t = m.member_list().topology();
        assert!(both.iter().all(|id| t.member(id).is_some()), "{} kept both members during the outage", m.id());
    }
    tokio::task::spawn_blocking(start).await.expect("the backend starts again");
    let c = start_member(&name, make(), &[ECHO]).await;
    all_see_each_other(&[&a, &b, &c]).await;
    for w in watchers {
        w.abort();
    }
    for topology in seen.lock().iter() {
        assert!(
            both.iter().all(|id| topology.contains(id)),
            "a topology reported during or after the outage lost a live member: {topology:?}"
        );
    }
    stop_all([a, b, c]).await;
}
