//! A member in its own OS process killed with SIGKILL: it deregisters
//! nothing and says goodbye to no one, so the survivors can only learn of
//! its death from the provider's store, when its etcd lease or ZooKeeper
//! session expires. Then its grains are activated again on a survivor.
//! Fast failure suspicion (which would block it within milliseconds, see
//! `suspicion.rs`) is off here: these tests are about the provider's path.
#![cfg(target_os = "linux")]

use std::time::{Duration, Instant};

use protoactor_cluster::{Cluster, ClusterProvider, Topology};
use protoactor_integration_tests::churn::config_with;
use protoactor_integration_tests::member_process::{EXPIRY, MemberProcess, Via, etcd_provider, zk_provider};
use protoactor_integration_tests::{Activations, Ping, Pong, echo_kind, init_tracing, start_member};
use protoactor_testkit::etcd::EtcdServer;
use protoactor_testkit::zookeeper::ZooKeeperServer;

const DEADLINE: Duration = Duration::from_secs(15);
/// How long after the expiry the survivors may take to drop the member.
const MARGIN: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_a_killed_member_process_leaves_when_its_lease_expires_and_its_grains_move() {
    init_tracing();
    let etcd = started(EtcdServer::start, "etcd").await;
    let endpoint = etcd.endpoint();
    // The last keep-alive was at most TTL/3 before the kill.
    let earliest = EXPIRY * 2 / 3 - Duration::from_millis(100);
    killed_member_leaves(|| etcd_provider(&endpoint), Via::Etcd(&endpoint), earliest).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_a_killed_member_process_leaves_when_its_session_expires_and_its_grains_move() {
    init_tracing();
    let server = started(ZooKeeperServer::start, "ZooKeeper").await;
    let connect = server.connect_string();
    // The session outlives the last ping by about 2/3 of its timeout.
    killed_member_leaves(|| zk_provider(&connect), Via::Zk(&connect), Duration::from_secs(1)).await;
}

/// Starts a real server on a blocking thread (it waits for the server to
/// answer); a missing server fails the test with the fixture's install hint.
async fn started<S: Send + 'static>(start: fn() -> Result<S, String>, what: &str) -> S {
    tokio::task::spawn_blocking(start)
        .await
        .expect("fixture thread")
        .unwrap_or_else(|e| panic!("{what} must be available for these tests: {e}"))
}

/// Two members in this process and one in its own, all through the same
/// provider; the process is killed. `earliest` is how soon after the kill
/// the provider may let it go at the soonest.
async fn killed_member_leaves<P: ClusterProvider>(provider: impl Fn() -> P, via: Via<'_>, earliest: Duration) {
    let activations = std::sync::Arc::new(Activations::default());
    let kinds = [echo_kind("echo", &activations)];
    let config = || config_with(provider(), &kinds).with_suspicion_votes(0);
    let a = start_member(config()).await;
    let b = start_member(config()).await;
    // Ready only once it sees all three: the process's view is checked too.
    let mut process = MemberProcess::start(env!("CARGO_BIN_EXE_cluster_member"), via, 3).await;
    let all = [a.id(), b.id(), process.id.as_str()];
    for m in [&a, &b] {
        assert!(sees_exactly_by(m, &all, Instant::now() + DEADLINE).await, "{} sees all three", m.id());
    }

    // Activate grains until one lives in the process.
    let mut on_process = None;
    for i in 0..64 {
        let identity = format!("grain-{i}");
        let reply = echo(&a, &identity, "hi").await;
        assert_eq!(reply.identity, identity);
        if reply.address == process.address {
            on_process = Some(identity);
            break;
        }
    }
    let identity = on_process.expect("some grain lands on the member process");

    process.kill().await;
    let killed = Instant::now();
    // Proving absence over a window: the provider cannot have let it go yet.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for m in [&a, &b] {
        assert!(m.member_list().contains(&process.id), "{} still lists the killed member", m.id());
        assert!(!m.member_list().is_blocked(&process.id), "{} has not blocked it yet", m.id());
    }

    let deadline = killed + EXPIRY + MARGIN;
    for m in [&a, &b] {
        assert!(sees_exactly_by(m, &[a.id(), b.id()], deadline).await, "{} drops the killed member in time", m.id());
    }
    let took = killed.elapsed();
    assert!(took >= earliest, "left after {took:?}, before the provider could have expired it");
    for m in [&a, &b] {
        assert!(m.member_list().is_blocked(&process.id), "{} blocks the killed member", m.id());
    }
    eprintln!("the killed member left {took:?} after SIGKILL (expiry {EXPIRY:?})");

    // The grain is activated again on a survivor, the same one from both.
    let survivors = [a.address().to_string(), b.address().to_string()];
    let mut hosted_at = None;
    for (m, count) in [(&a, 1), (&b, 2)] {
        let reply = echo(m, &identity, "again").await;
        assert_eq!(reply.message, "again");
        assert_eq!(reply.count, count, "{identity} starts afresh on the survivor");
        assert!(survivors.contains(&reply.address), "{identity} now lives on a survivor, not {}", reply.address);
        hosted_at.get_or_insert(reply.address.clone());
        assert_eq!(hosted_at.as_deref(), Some(reply.address.as_str()), "one activation, reached from both");
    }
    for m in [a, b] {
        tokio::time::timeout(DEADLINE, m.shutdown(true)).await.expect("shutdown in time");
    }
}

async fn echo(cluster: &Cluster, identity: &str, message: &str) -> Pong {
    cluster.request(identity, "echo", Ping { message: message.into() }).await.expect("echo answers")
}

fn ids(t: &Topology) -> Vec<String> {
    let mut ids: Vec<String> = t.members.iter().map(|m| m.id.clone()).collect();
    ids.sort();
    ids
}

/// Waits, until `deadline`, for `cluster` to see exactly the members `want`.
async fn sees_exactly_by(cluster: &Cluster, want: &[&str], deadline: Instant) -> bool {
    let mut want: Vec<String> = want.iter().map(|id| id.to_string()).collect();
    want.sort();
    cluster.member_list().wait_for(deadline.saturating_duration_since(Instant::now()), |t| ids(t) == want).await
}
