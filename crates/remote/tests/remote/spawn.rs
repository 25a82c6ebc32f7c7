//! Remote spawn through the `$activator`: success, unknown kind, name taken,
//! and failures that must not hang.
//!
//! Counterparts of the .NET `RemoteTests` are named in a comment above each test.

use crate::common;

use std::time::Duration;

use common::*;
use protoactor_actor::prelude::*;
use protoactor_remote::Error as RemoteError;

// .NET RemoteTests: CanSpawnRemoteActor
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_and_spawn_named_on_another_system() {
    let (a, b) = pair().await;
    let pid = a.remote.spawn(&b.address, "echo", WAIT).await.expect("remote spawn");
    assert_eq!(pid.address(), b.address, "the actor lives on B");
    assert!(b.system.is_registered(&pid), "B has the actor");
    assert!(!a.system.is_registered(&pid));
    let pong: Pong = a.system.root().request_future(&pid, Ping(3), WAIT).await.expect("spawned actor answers");
    assert_eq!(pong, Pong(3));

    let named = a.remote.spawn_named(&b.address, "my-echo", "echo", WAIT).await.expect("named spawn");
    assert_eq!(named, b.pid("my-echo"));
    let pong: Pong = a.system.root().request_future(&named, Ping(4), WAIT).await.expect("named answers");
    assert_eq!(pong, Pong(4));

    // Generated names do not collide.
    let other = a.remote.spawn(&b.address, "echo", WAIT).await.expect("second spawn");
    assert_ne!(other, pid);
    a.stop().await;
    b.stop().await;
}

// .NET RemoteTests: CanSpawnActorOnClientRemote. There is no client-only
// mode here; the counterpart spawns on the system that only ever opened the
// connection (the answer goes back over its own reverse stream).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_on_the_system_that_initiated_the_connection() {
    let (a, b) = pair().await;
    b.echo("echo");
    let _: Pong = a.system.root().request_future(&b.pid("echo"), Ping(1), WAIT).await.expect("A reached B");
    let pid = b.remote.spawn(&a.address, "echo", WAIT).await.expect("B spawns on A");
    assert_eq!(pid.address(), a.address);
    assert!(a.system.is_registered(&pid));
    let pong: Pong = b.system.root().request_future(&pid, Ping(2), WAIT).await.expect("answers B");
    assert_eq!(pong, Pong(2));
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_kind_is_a_clear_error() {
    let (a, b) = pair().await;
    let result = a.remote.spawn_named(&b.address, "x", "no-such-kind", WAIT).await;
    match &result {
        Err(RemoteError::UnknownKind { kind, address }) => {
            assert_eq!(kind, "no-such-kind");
            assert_eq!(address, &b.address);
        }
        other => panic!("expected UnknownKind, got {other:?}"),
    }
    let text = result.expect_err("unknown kind").to_string();
    assert!(text.contains("no-such-kind") && text.contains("with_kind"), "{text}");
    assert!(!b.system.is_registered(&b.pid("x")), "nothing was spawned");
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taken_name_returns_the_existing_actor() {
    let (a, b) = pair().await;
    let first = a.remote.spawn_named(&b.address, "only-one", "echo", WAIT).await.expect("first spawn");
    let second = a.remote.spawn_named(&b.address, "only-one", "echo", WAIT).await;
    match second {
        Err(RemoteError::NameTaken { name, address, existing }) => {
            assert_eq!(name, "only-one");
            assert_eq!(address, b.address);
            assert_eq!(existing, first, "the error names the existing actor");
            let pong: Pong = a.system.root().request_future(&existing, Ping(5), WAIT).await.expect("existing answers");
            assert_eq!(pong, Pong(5));
        }
        other => panic!("expected NameTaken, got {other:?}"),
    }

    // A name taken by an actor B spawned itself counts too.
    let (local, _seen) = b.recorder("local-name");
    match a.remote.spawn_named(&b.address, "local-name", "echo", WAIT).await {
        Err(RemoteError::NameTaken { existing, .. }) => assert_eq!(existing, local),
        other => panic!("expected NameTaken, got {other:?}"),
    }
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_on_an_address_nobody_listens_on_fails_fast() {
    let a = Node::start(config().with_retries(1, Duration::from_millis(50))).await;
    // Bind and drop to get a port that (almost certainly) refuses connections.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let result = a.remote.spawn(&format!("127.0.0.1:{port}"), "echo", Duration::from_secs(30)).await;
    assert!(
        matches!(
            result,
            Err(RemoteError::Request(Error::DeliveryFailed {
                kind: protoactor_actor::DeliveryFailureKind::EndpointGone,
                ..
            }))
        ),
        "the endpoint gives up and the request fails as endpoint gone: {result:?}"
    );
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_on_a_silent_peer_times_out() {
    let a = Node::start(config()).await;
    // Accepts TCP connections (the kernel does) but never speaks HTTP/2.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = silent.local_addr().expect("addr").to_string();
    let result = a.remote.spawn(&address, "echo", Duration::from_millis(300)).await;
    assert!(matches!(result, Err(RemoteError::Request(Error::Timeout { .. }))), "{result:?}");
    drop(silent);
    a.stop().await;
}
