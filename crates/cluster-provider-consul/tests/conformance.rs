//! The provider conformance suite (`protoactor_testkit::provider`) against
//! the fake Consul agent in `support/`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use protoactor_cluster_provider_consul::{ConsulConfig, ConsulProvider};
use protoactor_testkit::provider;
use support::FakeConsul;

fn maker(fake: &FakeConsul, ttl: Duration) -> impl Fn() -> ConsulProvider + use<> {
    let config = ConsulConfig::new(fake.address())
        .with_ttl(ttl)
        .with_deregister_critical_after(Duration::from_secs(2))
        .with_blocking_wait(Duration::from_secs(5))
        .with_max_retry_interval(Duration::from_millis(300));
    move || ConsulProvider::new(config.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_form_one_topology() {
    let fake = FakeConsul::start_new().await;
    provider::three_members_form_one_topology(&maker(&fake, Duration::from_secs(3))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_leave_is_seen_at_once() {
    let fake = FakeConsul::start_new().await;
    provider::graceful_leave_is_seen_at_once(&maker(&fake, Duration::from_secs(60)), Duration::from_secs(20)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_member_leaves_after_ttl() {
    let fake = FakeConsul::start_new().await;
    provider::silent_member_leaves_after_ttl(&maker(&fake, Duration::from_secs(1)), Duration::from_secs(20)).await;
    assert!(
        protoactor_testkit::cluster::wait_until(Duration::from_secs(20), || fake.services().is_empty()).await,
        "every service was deregistered or reaped: {:?}",
        fake.services()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_watches_without_registering() {
    let fake = FakeConsul::start_new().await;
    provider::client_watches_without_registering(&maker(&fake, Duration::from_secs(3))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grains_work_end_to_end() {
    let fake = FakeConsul::start_new().await;
    provider::grains_work_end_to_end(&maker(&fake, Duration::from_secs(3))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_outage_keeps_topology() {
    let fake = FakeConsul::start_new().await;
    let make = maker(&fake, Duration::from_secs(10));
    let runtime = tokio::runtime::Handle::current();
    let (down, up) = (fake.clone(), fake.clone());
    provider::backend_outage_keeps_topology(
        &make,
        Duration::from_secs(2),
        move || down.stop(),
        move || runtime.block_on(up.start()),
    )
    .await;
}
