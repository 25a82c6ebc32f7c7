//! Remote watch and unwatch: a local watcher learns when a remote actor stops,
//! never after unwatching, and when the remote system goes away.
//!
//! Counterparts of the .NET `RemoteTests` are named in a comment above each test.

use crate::common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use protoactor_actor::TerminatedReason;
use protoactor_remote::EndpointTerminated;

// .NET RemoteTests: CanWatchRemoteActor, WhenRemoteTerminated_LocalWatcherReceivesNotification
// (exactly one Terminated)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_gets_exactly_one_terminated_when_the_remote_actor_stops() {
    let (a, b) = pair().await;
    let target = b.echo("target");
    let remote_target = b.pid("target");
    let (watcher, mut seen) = a.recorder("watcher");
    watch_and_sync(&a.system, &watcher, &remote_target).await;

    // Stopped locally on B; the Terminated crosses the wire.
    tokio::time::timeout(WAIT, b.system.root().stop_future(&target)).await.expect("target stops");
    let s = next_seen(&mut seen).await;
    assert_eq!(terminated(&s), Some((remote_target.clone(), TerminatedReason::Stopped)), "{s:?}");
    assert_eq!(s.sender, None);

    // B's marker travels behind any further Terminated B might have sent, and
    // system messages overtake user messages at the watcher: if the marker
    // comes next, there was exactly one Terminated.
    b.system.root().send(&a.pid("watcher"), Marker(9));
    let s = next_seen(&mut seen).await;
    assert_eq!(s.body, Body::Marker(9), "no second Terminated: {s:?}");
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_gets_terminated_when_a_remote_stop_is_sent() {
    let (a, b) = pair().await;
    b.echo("target");
    let remote_target = b.pid("target");
    let (watcher, mut seen) = a.recorder("watcher");
    watch_and_sync(&a.system, &watcher, &remote_target).await;
    a.system.root().stop(&remote_target);
    let s = next_seen(&mut seen).await;
    assert_eq!(terminated(&s), Some((remote_target, TerminatedReason::Stopped)), "{s:?}");
    a.stop().await;
    b.stop().await;
}

// .NET RemoteTests: CanWatchMultipleRemoteActors
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_watcher_watches_several_remote_actors() {
    let (a, b) = pair().await;
    let (watcher, mut seen) = a.recorder("watcher");
    let mut targets = Vec::new();
    for i in 0..5 {
        let name = format!("target-{i}");
        b.echo(&name);
        let pid = b.pid(&name);
        watch_and_sync(&a.system, &watcher, &pid).await;
        targets.push(pid);
    }
    for pid in &targets {
        a.system.root().stop(pid);
    }
    let mut got = HashSet::new();
    for _ in 0..targets.len() {
        let s = next_seen(&mut seen).await;
        let (who, why) = terminated(&s).unwrap_or_else(|| panic!("expected Terminated, got {s:?}"));
        assert_eq!(why, TerminatedReason::Stopped);
        assert!(got.insert(who.clone()), "{who} reported twice");
    }
    assert_eq!(got, targets.into_iter().collect::<HashSet<_>>());
    a.stop().await;
    b.stop().await;
}

// .NET RemoteTests: MultipleLocalActorsCanWatchRemoteActor
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_local_watchers_of_one_remote_actor_are_all_told() {
    let (a, b) = pair().await;
    b.echo("target");
    let remote_target = b.pid("target");
    let mut watchers = Vec::new();
    for i in 0..3 {
        let (watcher, seen) = a.recorder(&format!("watcher-{i}"));
        watch_and_sync(&a.system, &watcher, &remote_target).await;
        watchers.push(seen);
    }
    a.system.root().stop(&remote_target);
    for seen in &mut watchers {
        let s = next_seen(seen).await;
        assert_eq!(terminated(&s), Some((remote_target.clone(), TerminatedReason::Stopped)), "{s:?}");
    }
    a.stop().await;
    b.stop().await;
}

// .NET RemoteTests: CanUnwatchRemoteActor
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unwatched_remote_actor_sends_no_terminated() {
    let (a, b) = pair().await;
    let unwatched = b.echo("unwatched");
    let control = b.echo("control");
    let (watcher, mut seen) = a.recorder("watcher");
    watch_and_sync(&a.system, &watcher, &b.pid("unwatched")).await;
    watch_and_sync(&a.system, &watcher, &b.pid("control")).await;

    let _: Ack =
        a.system.root().request_future(&watcher, UnwatchCmd(b.pid("unwatched")), WAIT).await.expect("unwatch acked");
    // The Unwatch travels ahead of this request, and is handled before it.
    let _: Pong = a.system.root().request_future(&b.pid("unwatched"), Ping(1), WAIT).await.expect("sync");

    // Stop the unwatched actor first and wait until it is gone, then the
    // control: a Terminated for the unwatched one would have been sent first.
    tokio::time::timeout(WAIT, b.system.root().stop_future(&unwatched)).await.expect("stops");
    tokio::time::timeout(WAIT, b.system.root().stop_future(&control)).await.expect("stops");
    let s = next_seen(&mut seen).await;
    assert_eq!(
        terminated(&s),
        Some((b.pid("control"), TerminatedReason::Stopped)),
        "the first Terminated is the control's, none for the unwatched actor: {s:?}"
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watching_a_missing_remote_actor_reports_it_terminated() {
    let (a, b) = pair().await;
    let (watcher, mut seen) = a.recorder("watcher");
    let missing = b.pid("never-spawned");
    let _: Ack = a.system.root().request_future(&watcher, WatchCmd(missing.clone()), WAIT).await.expect("ack");
    let s = next_seen(&mut seen).await;
    let (who, why) = terminated(&s).unwrap_or_else(|| panic!("expected Terminated, got {s:?}"));
    assert_eq!(who, missing);
    assert!(matches!(why, TerminatedReason::NotFound | TerminatedReason::Stopped), "{why:?}");
    a.stop().await;
    b.stop().await;
}

/// The remote system goes away (its remoting shuts down); `graceful` picks
/// between telling peers first and dropping everything at once.
async fn remote_system_goes_away(graceful: bool) {
    let a =
        Node::start(config().with_retries(1, Duration::from_millis(50)).with_connect_timeout(Duration::from_secs(1)))
            .await;
    let b = Node::start(config()).await;
    b.echo("target");
    let remote_target = b.pid("target");
    let (watcher, mut seen) = a.recorder("watcher");
    watch_and_sync(&a.system, &watcher, &remote_target).await;
    let (_sub, mut ended) = a.system.event_stream().subscribe_channel::<EndpointTerminated>();

    // Only remoting stops: the actor itself stays alive, so the only
    // possible reason is the address.
    b.remote.shutdown(graceful).await;

    let s = next_seen(&mut seen).await;
    assert_eq!(terminated(&s), Some((remote_target.clone(), TerminatedReason::AddressTerminated)), "{s:?}");
    let event = recv(&mut ended, "EndpointTerminated").await;
    assert_eq!(event.address, b.address);
    assert!(!event.reason.is_empty());

    // A new watch of that address while it is known dead is answered at once.
    let other = b.pid("other");
    let _: Ack = a.system.root().request_future(&watcher, WatchCmd(other.clone()), WAIT).await.expect("ack");
    let s = next_seen(&mut seen).await;
    assert_eq!(terminated(&s), Some((other, TerminatedReason::AddressTerminated)), "{s:?}");
    a.stop().await;
    b.system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_system_shutting_down_terminates_watches_with_address_terminated() {
    remote_system_goes_away(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_system_vanishing_terminates_watches_with_address_terminated() {
    remote_system_goes_away(false).await;
}
