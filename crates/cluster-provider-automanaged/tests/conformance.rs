//! The provider conformance suite (`protoactor_testkit::provider`) on the
//! automanaged provider. There is no backend to stop (the peers are the
//! backend), so the outage scenario does not apply.

use std::net::TcpListener;
use std::time::Duration;

use parking_lot::Mutex;
use protoactor_cluster_provider_automanaged::{AutomanagedConfig, AutomanagedProvider};
use protoactor_testkit::provider;

/// Health ports reserved up front, so every member's peer list names them
/// all; each provider made takes the next one.
fn maker(n: usize) -> impl Fn() -> AutomanagedProvider {
    let listeners: Vec<TcpListener> =
        (0..n).map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a health port")).collect();
    let peers: Vec<String> = listeners.iter().map(|l| l.local_addr().expect("bound address").to_string()).collect();
    let pool = Mutex::new(listeners);
    move || {
        let listener = pool.lock().pop().expect("enough health ports reserved");
        AutomanagedProvider::new(
            AutomanagedConfig::new(peers.iter().cloned())
                .with_listener(listener)
                .with_poll_interval(Duration::from_millis(100))
                .with_timeout(Duration::from_secs(1))
                .with_missed_polls(3),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_form_one_topology() {
    provider::three_members_form_one_topology(&maker(3)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_leave_is_seen_at_once() {
    // The health endpoint stops answering at shutdown: gone after 3 missed polls.
    provider::graceful_leave_is_seen_at_once(&maker(3), Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_member_leaves_after_ttl() {
    provider::silent_member_leaves_after_ttl(&maker(3), Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_watches_without_registering() {
    provider::client_watches_without_registering(&maker(4)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grains_work_end_to_end() {
    provider::grains_work_end_to_end(&maker(3)).await;
}
