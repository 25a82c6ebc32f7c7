//! Timers: one-shot sends, cancellation, and repeated sends.

use std::time::{Duration, Instant};

use protoactor_actor::prelude::*;
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Label {
    Fire,
    Marker,
    Tick,
}

/// Forwards every `Label` it receives, with its arrival time.
fn forwarder(root: &RootContext) -> (Pid, mpsc::UnboundedReceiver<(Label, Instant)>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let pid = root.spawn(Props::from_fn(move |ctx| {
        if let Some(label) = ctx.message::<Label>() {
            let _ = tx.send((*label, Instant::now()));
        }
        Ok(())
    }));
    (pid, rx)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<(Label, Instant)>) -> (Label, Instant) {
    tokio::time::timeout(WAIT, rx.recv()).await.expect("a timer message arrives").expect("channel open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_once_arrives_after_the_delay() {
    let system = ActorSystem::new();
    let (pid, mut rx) = forwarder(&system.root());
    let delay = Duration::from_millis(200);
    let scheduled = Instant::now();
    let handle = system.scheduler().send_once(delay, &pid, Label::Fire);
    assert!(!handle.is_finished(), "not fired yet");

    let (label, at) = next(&mut rx).await;
    assert_eq!(label, Label::Fire);
    assert!(at.duration_since(scheduled) >= delay, "arrived early: {:?}", at.duration_since(scheduled));
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_send_once_never_arrives() {
    let system = ActorSystem::new();
    let (pid, mut rx) = forwarder(&system.root());
    let scheduler = system.scheduler();
    let handle = scheduler.send_once(Duration::from_millis(100), &pid, Label::Fire);
    handle.cancel();
    // Fires well after the cancelled timer would have: if that one were still
    // live, it would arrive first.
    let _marker = scheduler.send_once(Duration::from_millis(300), &pid, Label::Marker);

    let (label, _) = next(&mut rx).await;
    assert_eq!(label, Label::Marker, "the cancelled timer fired");
    assert!(rx.try_recv().is_err(), "nothing else arrived");
    assert!(handle.is_finished(), "a cancelled timer reports finished");
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_repeatedly_delivers_until_cancelled() {
    let system = ActorSystem::new();
    let root = system.root();
    let (pid, mut rx) = forwarder(&root);
    let scheduler = system.scheduler();
    let interval = Duration::from_millis(20);
    let started = Instant::now();
    let handle = scheduler.send_repeatedly(Duration::from_millis(10), interval, &pid, Label::Tick);

    let mut ticks = Vec::new();
    for _ in 0..4 {
        let (label, at) = next(&mut rx).await;
        assert_eq!(label, Label::Tick);
        ticks.push(at);
    }
    assert!(
        ticks[3].duration_since(started) >= Duration::from_millis(10) + interval * 3,
        "ticks came too fast: {ticks:?}"
    );
    handle.cancel();
    let after_cancel = rx.try_recv().ok();

    // Absence over a window of ten intervals: a live timer would send ~10 ticks.
    let _marker = scheduler.send_once(interval * 10, &pid, Label::Marker);
    let mut late = Vec::new();
    loop {
        let (label, _) = next(&mut rx).await;
        if label == Label::Marker {
            break;
        }
        late.push(label);
    }
    // One tick may have been in flight (sent, not yet forwarded) at cancel time.
    assert!(late.len() + usize::from(after_cancel.is_some()) <= 1, "ticks after cancel: {late:?}");
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_once_carries_the_sender() {
    let system = ActorSystem::new();
    let root = system.root();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let target = root.spawn(Props::from_fn(move |ctx| {
        if ctx.message_is::<Label>() {
            let _ = tx.send(ctx.sender().cloned());
        }
        Ok(())
    }));
    let (sender, _) = forwarder(&root);
    let _timer = system.scheduler().request_once(Duration::from_millis(10), &target, Label::Fire, &sender);
    let got = tokio::time::timeout(WAIT, rx.recv()).await.expect("arrives").expect("open");
    assert_eq!(got, Some(sender));
    system.shutdown().await;
}
