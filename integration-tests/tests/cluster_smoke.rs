//! The basic promise: a grain is activated once on first request and found
//! again from every member.

use std::sync::Arc;
use std::time::Duration;

use protoactor_cluster::InMemoryAgent;
use protoactor_integration_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_one_activation() {
    init_tracing();
    let agent = InMemoryAgent::new();
    let activations = Arc::new(Activations::default());
    let kinds = [echo_kind("echo", &activations)];
    let a = start_member(test_config(&agent, &kinds)).await;
    let b = start_member(test_config(&agent, &kinds)).await;
    let c = start_member(test_config(&agent, &kinds)).await;
    assert!(wait_members(&[&a, &b, &c], 3).await, "members see each other");

    let mut address = None;
    for (i, member) in [&a, &b, &c].into_iter().enumerate() {
        let pong: Pong = member.request("x", "echo", Ping { message: format!("hi {i}") }).await.expect("pong");
        assert_eq!(pong.message, format!("hi {i}"));
        assert_eq!(pong.identity, "x");
        assert_eq!(pong.count, i as u64 + 1, "one activation serves every member");
        address.get_or_insert(pong.address.clone());
        assert_eq!(address.as_deref(), Some(pong.address.as_str()));
    }
    assert_eq!(activations.started(), 1);
    for m in [a, b, c] {
        tokio::time::timeout(Duration::from_secs(15), m.shutdown(true)).await.expect("shutdown in time");
    }
}
