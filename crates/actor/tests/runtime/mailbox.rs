//! Mailboxes: system messages jump the queue, bounded mailboxes drop the
//! right messages, and the throughput budget keeps one busy actor from
//! starving another.

use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use protoactor_actor::prelude::*;
use protoactor_actor::{DeadLetterEvent, Subscription};
use tokio::sync::{mpsc, oneshot};

const WAIT: Duration = Duration::from_secs(5);

/// Holds the actor inside `receive` until `release` fires. `watch` is
/// watched first, so the Watch reaches its target before `entered` fires.
struct Block {
    entered: oneshot::Sender<()>,
    release: oneshot::Receiver<()>,
    watch: Option<Pid>,
}

struct N(u32);
struct Ping;

/// Logs what it handles, in order.
struct Recorder {
    log: mpsc::UnboundedSender<String>,
}

impl Actor for Recorder {
    async fn receive(&mut self, ctx: &mut Context) -> ActorResult {
        if let Some(block) = ctx.take_message::<Block>() {
            if let Some(target) = &block.watch {
                ctx.watch(target);
            }
            let _ = block.entered.send(());
            let _ = block.release.await;
            let _ = self.log.send("block".into());
        } else if let Some(N(i)) = ctx.message::<N>() {
            let _ = self.log.send(format!("n{i}"));
        } else if ctx.message_is::<Terminated>() {
            let _ = self.log.send("terminated".into());
        } else if ctx.message_is::<Stopping>() {
            let _ = self.log.send("stopping".into());
        } else if ctx.message_is::<Stopped>() {
            let _ = self.log.send("stopped".into());
        } else if ctx.message_is::<Ping>() {
            ctx.respond(());
        }
        Ok(())
    }
}

fn recorder() -> (Props, mpsc::UnboundedReceiver<String>) {
    let (log, rx) = mpsc::unbounded_channel();
    (Props::from_producer(move || Recorder { log: log.clone() }), rx)
}

/// Sends `Block` and waits until the actor is stuck inside it; returns the release.
async fn block(root: &RootContext, pid: &Pid, watch: Option<Pid>) -> oneshot::Sender<()> {
    let (entered, entered_rx) = oneshot::channel();
    let (release, release_rx) = oneshot::channel();
    root.send(pid, Block { entered, release: release_rx, watch });
    tokio::time::timeout(WAIT, entered_rx).await.expect("actor entered Block").expect("entered sent");
    release
}

/// Values of `N` messages that went to dead letters.
fn dead_ns(system: &ActorSystem) -> (Subscription, mpsc::UnboundedReceiver<u32>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let sub = system.event_stream().subscribe::<DeadLetterEvent>(move |e| {
        let message: &dyn Any = &*e.message;
        if let Some(N(i)) = message.downcast_ref::<N>() {
            let _ = tx.send(*i);
        }
    });
    (sub, rx)
}

async fn next<T: std::fmt::Debug>(rx: &mut mpsc::UnboundedReceiver<T>, what: &str) -> T {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
        .unwrap_or_else(|| panic!("channel closed waiting for {what}"))
}

fn drain<T>(rx: &mut mpsc::UnboundedReceiver<T>) -> Vec<T> {
    let mut out = Vec::new();
    while let Ok(v) = rx.try_recv() {
        out.push(v);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_is_handled_before_queued_user_messages_which_go_to_dead_letters() {
    let system = ActorSystem::new();
    let root = system.root();
    let (_sub, mut dead) = dead_ns(&system);
    let (props, mut log) = recorder();
    let pid = root.spawn(props);

    let release = block(&root, &pid, None).await;
    for i in 1..=3 {
        root.send(&pid, N(i));
    }
    root.stop(&pid);
    release.send(()).expect("actor waits for release");

    let mut handled = Vec::new();
    while handled.last().map(String::as_str) != Some("stopped") {
        handled.push(next(&mut log, "stopped").await);
    }
    assert_eq!(handled, ["block", "stopping", "stopped"], "no queued user message was handled");
    let mut dropped = Vec::new();
    for _ in 0..3 {
        dropped.push(next(&mut dead, "dead letters").await);
    }
    assert_eq!(dropped, [1, 2, 3]);
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_is_handled_before_queued_user_messages() {
    let system = ActorSystem::new();
    let root = system.root();
    let (watched_props, _) = recorder();
    let watched = root.spawn(watched_props);
    let (props, mut log) = recorder();
    let watcher = root.spawn(props);

    // The watcher registers its watch, then blocks; meanwhile user messages
    // queue up and the watched actor terminates.
    let release = block(&root, &watcher, Some(watched.clone())).await;
    root.send(&watcher, N(1));
    root.send(&watcher, N(2));
    // The watcher's Watch was queued before the future's, so its Terminated
    // is in the watcher's system queue once this completes.
    tokio::time::timeout(WAIT, root.stop_future(&watched)).await.expect("watched actor stops");
    release.send(()).expect("actor waits for release");

    let mut handled = Vec::new();
    for _ in 0..4 {
        handled.push(next(&mut log, "watcher messages").await);
    }
    assert_eq!(handled, ["block", "terminated", "n1", "n2"]);
    system.shutdown().await;
}

async fn bounded_overflow(policy: OverflowPolicy) -> (Vec<String>, Vec<u32>) {
    let system = ActorSystem::new();
    let root = system.root();
    let (_sub, mut dead) = dead_ns(&system);
    let (props, mut log) = recorder();
    let pid = root.spawn(props.with_mailbox(MailboxKind::bounded(3, policy)));

    let release = block(&root, &pid, None).await;
    for i in 1..=6 {
        root.send(&pid, N(i));
    }
    // Overflow is decided on send, so the dead letters are already published.
    let dropped = drain(&mut dead);
    release.send(()).expect("actor waits for release");

    let mut handled = Vec::new();
    for _ in 0..4 {
        handled.push(next(&mut log, "handled messages").await);
    }
    // Ping queues behind anything still pending, so after its reply nothing
    // else can arrive.
    root.request_future::<(), _>(&pid, Ping, WAIT).await.expect("ping");
    handled.extend(drain(&mut log));
    system.shutdown().await;
    (handled, dropped)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounded_drop_newest_refuses_arrivals_at_a_full_mailbox() {
    let (handled, dropped) = bounded_overflow(OverflowPolicy::DropNewest).await;
    assert_eq!(handled, ["block", "n1", "n2", "n3"]);
    assert_eq!(dropped, [4, 5, 6]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounded_drop_oldest_makes_room_by_dropping_the_oldest() {
    let (handled, dropped) = bounded_overflow(OverflowPolicy::DropOldest).await;
    assert_eq!(handled, ["block", "n4", "n5", "n6"]);
    assert_eq!(dropped, [1, 2, 3]);
}

struct Work;

/// One worker thread, a flood of 100k slow messages to one actor: another
/// actor's single request still completes long before the flood is done,
/// because the flooded actor yields after every `throughput` messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn throughput_budget_keeps_a_flooded_actor_from_starving_another() {
    const FLOOD: u64 = 100_000;
    let system = ActorSystem::new();
    let root = system.root();
    let done = Arc::new(AtomicU64::new(0));
    let progress = done.clone();
    let flooded = root.spawn(
        Props::from_fn(move |ctx| {
            if ctx.message_is::<Work>() {
                // Workload, not synchronisation: at least 10 µs per message
                // makes the whole flood take at least a second.
                let start = Instant::now();
                while start.elapsed() < Duration::from_micros(10) {
                    std::hint::spin_loop();
                }
                progress.fetch_add(1, Ordering::Relaxed);
            } else if ctx.message_is::<Ping>() {
                ctx.respond(());
            }
            Ok(())
        })
        .with_throughput(1),
    );
    let quick = root.spawn(Props::from_fn(|ctx| {
        if ctx.message_is::<Ping>() {
            ctx.respond("pong");
        }
        Ok(())
    }));

    for _ in 0..FLOOD {
        root.send(&flooded, Work);
    }
    let reply =
        root.request_future::<&str, _>(&quick, Ping, Duration::from_secs(30)).await.expect("quick actor answers");
    let at_reply = done.load(Ordering::Relaxed);
    assert_eq!(reply, "pong");
    assert!(at_reply < FLOOD, "the quick actor answered only after the whole flood ({at_reply} handled)");

    root.request_future::<(), _>(&flooded, Ping, Duration::from_secs(60)).await.expect("flood finishes");
    assert_eq!(done.load(Ordering::Relaxed), FLOOD, "the flooded actor was not starved either");
    system.shutdown().await;
}
