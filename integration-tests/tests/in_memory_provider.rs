//! The provider conformance suite (`protoactor_testkit::provider`) on the
//! cluster crate's in-memory provider. There is no backend to stop (the
//! agent lives in the process), so the outage scenario does not apply.

use std::time::Duration;

use protoactor_cluster::{InMemoryAgent, InMemoryProvider};
use protoactor_testkit::provider;

fn maker(agent: InMemoryAgent) -> impl Fn() -> InMemoryProvider {
    move || InMemoryProvider::new(&agent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_form_one_topology() {
    provider::three_members_form_one_topology(&maker(InMemoryAgent::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_leave_is_seen_at_once() {
    let agent = InMemoryAgent::with_ttl(Duration::from_secs(60));
    provider::graceful_leave_is_seen_at_once(&maker(agent), Duration::from_secs(20)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_member_leaves_after_ttl() {
    let agent = InMemoryAgent::with_ttl(Duration::from_secs(1));
    provider::silent_member_leaves_after_ttl(&maker(agent), Duration::from_secs(20)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_watches_without_registering() {
    provider::client_watches_without_registering(&maker(InMemoryAgent::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grains_work_end_to_end() {
    provider::grains_work_end_to_end(&maker(InMemoryAgent::new())).await;
}
