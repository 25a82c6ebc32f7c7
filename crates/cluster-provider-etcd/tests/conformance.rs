//! The provider conformance suite (`protoactor_testkit::provider`) on a real
//! etcd started per test.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use protoactor_cluster_provider_etcd::{EtcdConfig, EtcdProvider};
use protoactor_testkit::etcd::EtcdServer;
use protoactor_testkit::provider;

async fn etcd() -> EtcdServer {
    tokio::task::spawn_blocking(EtcdServer::start).await.expect("fixture thread").unwrap_or_else(|e| panic!("{e}"))
}

fn maker(etcd: &EtcdServer, ttl: Duration) -> impl Fn() -> EtcdProvider + use<> {
    let endpoint = etcd.endpoint();
    move || {
        EtcdProvider::new(
            EtcdConfig::new([endpoint.clone()])
                .with_ttl(ttl)
                .with_connect_timeout(Duration::from_secs(2))
                .with_max_retry_interval(Duration::from_millis(300)),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_form_one_topology() {
    let etcd = etcd().await;
    provider::three_members_form_one_topology(&maker(&etcd, Duration::from_secs(3))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_leave_is_seen_at_once() {
    let etcd = etcd().await;
    provider::graceful_leave_is_seen_at_once(&maker(&etcd, Duration::from_secs(60)), Duration::from_secs(20)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_member_leaves_after_ttl() {
    let etcd = etcd().await;
    provider::silent_member_leaves_after_ttl(&maker(&etcd, Duration::from_secs(2)), Duration::from_secs(20)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_watches_without_registering() {
    let etcd = etcd().await;
    provider::client_watches_without_registering(&maker(&etcd, Duration::from_secs(3))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grains_work_end_to_end() {
    let etcd = etcd().await;
    provider::grains_work_end_to_end(&maker(&etcd, Duration::from_secs(3))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_outage_keeps_topology() {
    let etcd = Arc::new(Mutex::new(etcd().await));
    let make = maker(&etcd.lock().expect("fixture"), Duration::from_secs(10));
    let (down, up) = (etcd.clone(), etcd.clone());
    provider::backend_outage_keeps_topology(
        &make,
        Duration::from_secs(3),
        move || down.lock().expect("fixture").stop(),
        move || up.lock().expect("fixture").restart().unwrap_or_else(|e| panic!("{e}")),
    )
    .await;
}
