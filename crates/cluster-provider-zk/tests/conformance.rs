//! The provider conformance suite (`protoactor_testkit::provider`) on a real
//! ZooKeeper started per test.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use protoactor_cluster_provider_zk::{ZkConfig, ZkProvider};
use protoactor_testkit::provider;
use protoactor_testkit::zookeeper::ZooKeeperServer;

async fn zookeeper() -> ZooKeeperServer {
    tokio::task::spawn_blocking(ZooKeeperServer::start).await.expect("fixture thread").unwrap_or_else(|e| panic!("{e}"))
}

fn maker(server: &ZooKeeperServer, session: Duration) -> impl Fn() -> ZkProvider + use<> {
    let connect = server.connect_string();
    move || {
        ZkProvider::new(
            ZkConfig::new(connect.clone()).with_session_timeout(session).with_connect_timeout(Duration::from_secs(5)),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_form_one_topology() {
    let zk = zookeeper().await;
    provider::three_members_form_one_topology(&maker(&zk, Duration::from_secs(4))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_leave_is_seen_at_once() {
    let zk = zookeeper().await;
    // ZooKeeper caps the session timeout at 20 ticks (40 s by default).
    provider::graceful_leave_is_seen_at_once(&maker(&zk, Duration::from_secs(30)), Duration::from_secs(15)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_member_leaves_after_ttl() {
    let zk = zookeeper().await;
    provider::silent_member_leaves_after_ttl(&maker(&zk, Duration::from_secs(2)), Duration::from_secs(20)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_watches_without_registering() {
    let zk = zookeeper().await;
    provider::client_watches_without_registering(&maker(&zk, Duration::from_secs(4))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grains_work_end_to_end() {
    let zk = zookeeper().await;
    provider::grains_work_end_to_end(&maker(&zk, Duration::from_secs(4))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_outage_keeps_topology() {
    let zk = Arc::new(Mutex::new(zookeeper().await));
    // Sessions outlive the outage, as they would a short restart.
    let make = maker(&zk.lock().expect("fixture"), Duration::from_secs(12));
    let (down, up) = (zk.clone(), zk.clone());
    provider::backend_outage_keeps_topology(
        &make,
        Duration::from_secs(2),
        move || down.lock().expect("fixture").stop(),
        move || up.lock().expect("fixture").start_again().unwrap_or_else(|e| panic!("{e}")),
    )
    .await;
}
