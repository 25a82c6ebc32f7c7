//! Watching: Terminated on stop, for already-dead and never-existing pids,
//! unwatch, several watchers, and the parent's single notification.

use crate::common;

use common::{Seen, WAIT, recv_until, recv_within, seen, spawn_probe};
use protoactor_actor::{ActorSystem, Context, Pid, Props, Started, Terminated, TerminatedReason};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

struct WatchIt(Pid);
struct UnwatchIt(Pid);
struct WatchThenUnwatch(Pid);

/// Follows watch commands (answering "ok" once done) and reports everything else.
fn watcher(tx: UnboundedSender<Seen>) -> Props {
    Props::from_fn(move |ctx: &mut Context| {
        if let Some(WatchIt(target)) = ctx.message::<WatchIt>() {
            ctx.watch(target);
            ctx.respond("ok");
        } else if let Some(UnwatchIt(target)) = ctx.message::<UnwatchIt>() {
            ctx.unwatch(target);
            ctx.respond("ok");
        } else if let Some(WatchThenUnwatch(target)) = ctx.message::<WatchThenUnwatch>() {
            ctx.watch(target);
            ctx.unwatch(target);
            ctx.respond("ok");
        } else if !ctx.message_is::<Started>() {
            let _ = tx.send(seen(ctx));
        }
        Ok(())
    })
}

fn spawn_watcher(system: &ActorSystem) -> (Pid, UnboundedReceiver<Seen>) {
    let (tx, rx) = unbounded_channel();
    (system.root().spawn(watcher(tx)), rx)
}

async fn command<M: Send + 'static>(system: &ActorSystem, watcher: &Pid, command: M) {
    let ok: &str = system.root().request_future(watcher, command, WAIT).await.expect("watcher answers");
    assert_eq!(ok, "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_gets_terminated_when_the_target_stops() {
    let system = ActorSystem::new();
    let (target, _target_rx) = spawn_probe(&system);
    let (watcher, mut rx) = spawn_watcher(&system);
    command(&system, &watcher, WatchIt(target.clone())).await;
    system.root().stop(&target);
    let got = recv_within(&mut rx, WAIT).await;
    assert_eq!(got, Seen::Terminated(Terminated { who: target, why: TerminatedReason::Stopped }));
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watching_an_already_stopped_actor_delivers_terminated_at_once() {
    let system = ActorSystem::new();
    let (target, _target_rx) = spawn_probe(&system);
    system.root().stop_future(&target).await;
    let (watcher, mut rx) = spawn_watcher(&system);
    command(&system, &watcher, WatchIt(target.clone())).await;
    match recv_within(&mut rx, WAIT).await {
        Seen::Terminated(Terminated { who, why }) => {
            assert_eq!(who, target);
            assert!(matches!(why, TerminatedReason::Stopped | TerminatedReason::NotFound), "{why:?}");
        }
        other => panic!("expected Terminated, got {other:?}"),
    }
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watching_a_pid_that_never_existed_reports_not_found() {
    let system = ActorSystem::new();
    let ghost = Pid::new(system.address(), "no-such-actor");
    let (watcher, mut rx) = spawn_watcher(&system);
    command(&system, &watcher, WatchIt(ghost.clone())).await;
    let got = recv_within(&mut rx, WAIT).await;
    assert_eq!(got, Seen::Terminated(Terminated { who: ghost, why: TerminatedReason::NotFound }));
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unwatch_cancels_the_notification() {
    let system = ActorSystem::new();
    for how in ["separate", "together"] {
        let (target, _target_rx) = spawn_probe(&system);
        let (watcher, mut rx) = spawn_watcher(&system);
        if how == "separate" {
            command(&system, &watcher, WatchIt(target.clone())).await;
            command(&system, &watcher, UnwatchIt(target.clone())).await;
        } else {
            command(&system, &watcher, WatchThenUnwatch(target.clone())).await;
        }
        // The target handles Watch and Unwatch before this stop. Had the unwatch
        // been lost, the Terminated would be queued at the watcher before
        // stop_future resolves, and system messages overtake the marker.
        system.root().stop_future(&target).await;
        system.root().send(&watcher, "marker");
        assert_eq!(recv_within(&mut rx, WAIT).await, Seen::msg("marker"), "{how}");
    }
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_watcher_is_notified_once() {
    let system = ActorSystem::new();
    let (target, _target_rx) = spawn_probe(&system);
    let mut watchers = Vec::new();
    for _ in 0..3 {
        let (watcher, rx) = spawn_watcher(&system);
        command(&system, &watcher, WatchIt(target.clone())).await;
        watchers.push((watcher, rx));
    }
    // Watching twice must not mean two notifications.
    command(&system, &watchers[0].0, WatchIt(target.clone())).await;
    system.root().stop_future(&target).await;
    let expected = Seen::Terminated(Terminated { who: target.clone(), why: TerminatedReason::Stopped });
    for (watcher, rx) in &mut watchers {
        system.root().send(watcher, "marker");
        let got = recv_until(rx, WAIT, |s| *s == Seen::msg("marker")).await;
        assert_eq!(got, vec![expected.clone(), Seen::msg("marker")], "{watcher}");
    }
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_watching_its_child_gets_one_terminated() {
    let system = ActorSystem::new();
    let (tx, mut rx) = unbounded_channel();
    let parent = system.root().spawn(Props::from_fn(move |ctx: &mut Context| {
        if ctx.message_is::<Started>() {
            let child = ctx.spawn_named(Props::from_fn(|_| Ok(())), "child").expect("fresh name");
            ctx.watch(&child);
        } else if ctx.message::<&'static str>() == Some(&"stop child") {
            let child = ctx.children().pop().expect("one child");
            ctx.stop(&child);
        } else {
            let _ = tx.send(seen(ctx));
        }
        Ok(())
    }));
    system.root().send(&parent, "stop child");
    let first = recv_within(&mut rx, WAIT).await;
    let Seen::Terminated(Terminated { who, why }) = first else { panic!("expected Terminated, got {first:?}") };
    assert_eq!(who.id(), format!("{}/child", parent.id()));
    assert_eq!(why, TerminatedReason::Stopped);
    // A second Terminated would already be queued (and jump the marker).
    system.root().send(&parent, "marker");
    assert_eq!(recv_within(&mut rx, WAIT).await, Seen::msg("marker"));
    system.shutdown().await;
}
