//! The provider conformance suite (`protoactor_testkit::provider`) against
//! the fake API server in `support/`: each member gets a pod of its own; the
//! fake kubelet's readiness probe on the member's remoting port decides
//! whether the pod is Ready.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use protoactor_cluster_provider_k8s::{KubernetesConfig, KubernetesProvider};
use protoactor_testkit::provider;
use support::{FakeApiServer, NAMESPACE};

async fn maker(fake: &Arc<FakeApiServer>) -> impl Fn() -> KubernetesProvider + use<> {
    let client = fake.client(None).await;
    let fake = fake.clone();
    move || {
        let pod = fake.create_pod();
        KubernetesProvider::new(
            KubernetesConfig::default()
                .with_client(client.clone())
                .with_pod(NAMESPACE, pod)
                .with_request_timeout(Duration::from_secs(5))
                .with_max_retry_interval(Duration::from_millis(300)),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_form_one_topology() {
    let fake = FakeApiServer::start_new().await;
    provider::three_members_form_one_topology(&maker(&fake).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_leave_is_seen_at_once() {
    let fake = FakeApiServer::start_new().await;
    // The readiness probe would take 3 failed probes (~300 ms); removing
    // the labels is seen at the next event. The bound only rules out a hang.
    provider::graceful_leave_is_seen_at_once(&maker(&fake).await, Duration::from_secs(20)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_member_leaves_after_ttl() {
    let fake = FakeApiServer::start_new().await;
    provider::silent_member_leaves_after_ttl(&maker(&fake).await, Duration::from_secs(20)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_watches_without_registering() {
    let fake = FakeApiServer::start_new().await;
    provider::client_watches_without_registering(&maker(&fake).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grains_work_end_to_end() {
    let fake = FakeApiServer::start_new().await;
    provider::grains_work_end_to_end(&maker(&fake).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_outage_keeps_topology() {
    let fake = FakeApiServer::start_new().await;
    let make = maker(&fake).await;
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
