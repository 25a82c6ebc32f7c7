//! The basic promise: a grain is activated once on first request and found
//! again from every member.

use std::time::Duration;

use protoactor_integration_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_one_activation() {
    let EchoMembers { activations, members: [a, b, c], .. } = echo_members().await;

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
