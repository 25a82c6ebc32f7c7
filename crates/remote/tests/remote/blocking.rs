//! A blocked member is heard no more: blocking closes its connections, and a
//! member that was frozen while it was blocked gets nothing through when it
//! wakes (it learns of the block instead).

use crate::common;

use std::time::{Duration, Instant};

use common::*;
use protoactor_actor::DeliveryFailureKind;
use protoactor_actor::prelude::*;
use protoactor_remote::BlockedByPeer;
use tokio::sync::mpsc;

/// A node on its own single-threaded runtime, whose thread the test can
/// block: the in-process stand-in for a SIGSTOPped member.
struct Freezable {
    node: Node,
    handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Freezable {
    fn start(config: protoactor_remote::RemoteConfig) -> Freezable {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async move {
                let node = Node::start(config).await;
                let _ = ready_tx.send((node, tokio::runtime::Handle::current()));
                let _ = stopped.await;
            });
        });
        let (node, handle) = ready_rx.recv().expect("the frozen node starts");
        Freezable { node, handle, stop: Some(stop), thread: Some(thread) }
    }

    /// Blocks the node's only thread until the returned sender is used or dropped.
    fn freeze(&self) -> std::sync::mpsc::Sender<()> {
        let (thaw, frozen) = std::sync::mpsc::channel::<()>();
        let (entered_tx, entered) = std::sync::mpsc::channel::<()>();
        self.handle.spawn(async move {
            let _ = entered_tx.send(());
            let _ = frozen.recv();
        });
        entered.recv().expect("the node's thread is frozen");
        thaw
    }
}

impl Drop for Freezable {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_wakes_after_being_blocked_gets_nothing_through() {
    let a = Node::start(config()).await;
    let (sink, mut seen) = a.recorder("sink");
    a.echo("echo");
    let b = Freezable::start(config().with_retries(1, Duration::from_millis(50)));
    let b_id = b.node.system.id().to_string();
    let (_sub, mut blocked_by_peer) = b.node.system.event_stream().subscribe_channel::<BlockedByPeer>();

    // B talks to A over the connection it opened.
    let pong: Pong = b.node.system.root().request_future(&a.pid("echo"), Ping(1), WAIT).await.expect("B reaches A");
    assert_eq!(pong, Pong(1));
    b.node.system.root().send(&sink, Marker(1));
    assert_eq!(next_seen(&mut seen).await.body, Body::Marker(1));
    assert!(a.remote.connection_stats().open >= 1);

    // B freezes with a message and a request queued on its open connection...
    let thaw = b.freeze();
    b.node.system.root().send(&sink, Marker(2));
    let request = b.node.system.root().request_future::<Pong, _>(&a.pid("echo"), Ping(2), Duration::from_secs(30));
    let request = tokio::spawn(request);

    // ...and A blocks it meanwhile: its connection is closed at once.
    a.remote.block(&b_id);
    let deadline = Instant::now() + WAIT;
    while a.remote.connection_stats().open > 0 {
        assert!(Instant::now() < deadline, "A still has B's connection open: {:?}", a.remote.connection_stats());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // B wakes: its request fails as blocked, and it hears that A blocked it.
    drop(thaw);
    let result = tokio::time::timeout(WAIT, request).await.expect("B's request ends in time").expect("task");
    assert!(
        matches!(&result, Err(Error::DeliveryFailed { kind: DeliveryFailureKind::BlockedMember, .. })),
        "{result:?}"
    );
    let event = recv(&mut blocked_by_peer, "BlockedByPeer on B").await;
    assert_eq!(event.address, a.address);

    // Nothing B queued while frozen reached A's actors.
    assert!(
        matches!(seen.try_recv(), Err(mpsc::error::TryRecvError::Empty)),
        "a message from a blocked member got through"
    );
    assert!(a.remote.is_blocked(&b_id));

    // The survivor's graceful shutdown does not wait on the blocked member.
    let started = Instant::now();
    a.stop().await;
    eprintln!("survivor's graceful shutdown after blocking a frozen member: {:?}", started.elapsed());
    drop(b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_closes_the_inbound_connection_of_a_member_that_is_not_frozen_too() {
    let (a, b) = pair().await;
    let (sink, mut seen) = a.recorder("sink");
    b.system.root().send(&sink, Marker(1));
    assert_eq!(next_seen(&mut seen).await.body, Body::Marker(1));
    let (_sub, mut blocked_by_peer) = b.system.event_stream().subscribe_channel::<BlockedByPeer>();
    a.remote.block(b.system.id());
    // B's connection breaks; its reconnect is refused and it learns why.
    let event = recv(&mut blocked_by_peer, "BlockedByPeer on B").await;
    assert_eq!(event.address, a.address);
    let late = b.system.root().request_future::<Pong, _>(&a.pid("sink"), Ping(1), WAIT).await;
    assert!(matches!(&late, Err(Error::DeliveryFailed { kind: DeliveryFailureKind::BlockedMember, .. })), "{late:?}");
    assert!(matches!(seen.try_recv(), Err(mpsc::error::TryRecvError::Empty)));
    a.stop().await;
    b.stop().await;
}
