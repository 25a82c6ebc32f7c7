//! Lifecycle messages and their order: Started first; Stopping, children
//! stopped, then Stopped; Restarting on restart; poison versus stop; shutdown.

use crate::common;

use std::sync::Arc;

use common::{Seen, WAIT, dead_letters, recv_n, recv_until, recv_within, seen, spawn_probe};
use parking_lot::Mutex;
use protoactor_actor::{Actor, ActorError, ActorResult, ActorSystem, Context, Error, Props, Started, Terminated};
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use tokio::sync::oneshot;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn started_comes_before_any_user_message() {
    let system = ActorSystem::new();
    let (pid, mut rx) = spawn_probe(&system);
    // Sent immediately after spawn: they must still queue behind Started.
    system.root().send(&pid, "a");
    system.root().send(&pid, "b");
    let got = recv_n(&mut rx, 3, WAIT).await;
    assert_eq!(got, vec![Seen::Started, Seen::msg("a"), Seen::msg("b")]);
    system.shutdown().await;
}

/// Reports every lifecycle event as `"<name>:<Seen>"` on one shared channel.
fn labelled(name: &'static str, tx: UnboundedSender<String>, children: &'static [&'static str]) -> Props {
    Props::from_fn(move |ctx: &mut Context| {
        let _ = tx.send(format!("{name}:{:?}", seen(ctx)));
        if ctx.message_is::<Started>() {
            for child in children {
                ctx.spawn_named(labelled(child, tx.clone(), &[]), child).expect("fresh child name");
            }
        }
        Ok(())
    })
}

fn position(events: &[String], event: &str) -> usize {
    events.iter().position(|e| e == event).unwrap_or_else(|| panic!("`{event}` missing from {events:?}"))
}

/// Remembers the value its producer read.
struct Snapshot(usize);

struct Read;

impl Actor for Snapshot {
    async fn receive(&mut self, ctx: &mut Context) -> ActorResult {
        if ctx.message_is::<Read>() {
            ctx.respond(self.0);
        }
        Ok(())
    }
}

/// The producer runs inside the spawn call (as in Proto.Actor), from the
/// root and from an actor: what it reads is what was current at spawn, even
/// if it changes before the actor's task first runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_producer_runs_inside_the_spawn_call() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let system = ActorSystem::new();
    let root = system.root();
    let value = Arc::new(AtomicUsize::new(1));
    let props = {
        let value = value.clone();
        Props::from_producer(move || Snapshot(value.load(Ordering::SeqCst)))
    };
    let from_root = root.spawn(props.clone());
    value.store(2, Ordering::SeqCst);
    assert_eq!(root.request_future::<usize, _>(&from_root, Read, WAIT).await.expect("answer"), 1);

    let spawner = root.spawn(Props::from_fn({
        let value = value.clone();
        move |ctx: &mut Context| {
            if ctx.message_is::<Read>() {
                let child = ctx.spawn(props.clone());
                value.store(3, Ordering::SeqCst);
                ctx.respond(child);
            }
            Ok(())
        }
    }));
    let child = root.request_future::<protoactor_actor::Pid, _>(&spawner, Read, WAIT).await.expect("child");
    assert_eq!(root.request_future::<usize, _>(&child, Read, WAIT).await.expect("answer"), 2);

    // A producer that panics fails the spawn call itself and leaves nothing registered.
    let before = system.actor_count();
    let spawned = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        root.spawn_named(Props::from_producer(|| -> Snapshot { panic!("no instance") }), "broken")
    }));
    assert!(spawned.is_err(), "the panic reached the spawner");
    assert_eq!(system.actor_count(), before);
    assert!(root.spawn_named(Props::from_producer(|| Snapshot(0)), "broken").is_ok(), "the name stayed free");
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_then_children_stopped_then_stopped() {
    let system = ActorSystem::new();
    let (tx, mut rx) = unbounded_channel();
    let parent = system.root().spawn(labelled("parent", tx, &["a", "b"]));
    let mut started = recv_n(&mut rx, 3, WAIT).await;
    started.sort();
    assert_eq!(started, vec!["a:Started", "b:Started", "parent:Started"]);

    system.root().stop_future(&parent).await;
    // stop_future resolved, so every event is already in the channel.
    let mut events = Vec::new();
    while let Ok(e) = rx.try_recv() {
        events.push(e);
    }
    // Per child: Stopping, Stopped, and the parent's Terminated for it.
    assert_eq!(events.len(), 2 + 2 * 3, "{events:?}");
    assert_eq!(events.first().map(String::as_str), Some("parent:Stopping"), "{events:?}");
    assert_eq!(events.last().map(String::as_str), Some("parent:Stopped"), "{events:?}");
    for child in ["a", "b"] {
        let stopping = position(&events, &format!("{child}:Stopping"));
        let stopped = position(&events, &format!("{child}:Stopped"));
        let terminated = events
            .iter()
            .position(|e| e.starts_with("parent:Terminated") && e.contains(&format!("/{child})")))
            .unwrap_or_else(|| panic!("no Terminated for {child}: {events:?}"));
        assert!(stopping < stopped && stopped < terminated, "{events:?}");
    }
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actor_count_has_dropped_once_stop_future_resolves() {
    // The race is narrow, so repeat: one lagging count in any round fails.
    let system = ActorSystem::new();
    for round in 0..200 {
        let (pid, _rx) = spawn_probe(&system);
        assert_eq!(system.actor_count(), 1, "round {round}");
        system.root().stop_future(&pid).await;
        assert_eq!(system.actor_count(), 0, "round {round}: stop_future resolved before the count dropped");
    }
    system.shutdown().await;
}

/// Counts "inc" messages; fails on "boom"; reports lifecycle with the count.
struct Counter {
    count: u32,
    tx: UnboundedSender<String>,
}

impl Actor for Counter {
    async fn receive(&mut self, ctx: &mut Context) -> ActorResult {
        match ctx.message::<&'static str>() {
            Some(&"inc") => self.count += 1,
            Some(&"boom") => return Err(ActorError::msg("boom")),
            _ => {}
        }
        let label = match ctx.message::<Terminated>() {
            Some(t) => format!("Terminated({})", t.who.id().rsplit('/').next().unwrap_or_default()),
            None => format!("{:?}", seen(ctx)),
        };
        let _ = self.tx.send(format!("{label}@{}", self.count));
        if ctx.message_is::<Started>() {
            ctx.spawn_named(Props::from_fn(|_| Ok(())), "kid").expect("the old child has stopped before a restart");
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_delivers_restarting_to_the_old_instance_then_started_to_a_fresh_one() {
    let system = ActorSystem::new();
    let (tx, mut rx) = unbounded_channel();
    let pid = system.root().spawn(Props::from_producer(move || Counter { count: 0, tx: tx.clone() }));
    let root = system.root();
    root.send(&pid, "inc");
    root.send(&pid, "inc");
    root.send(&pid, "boom");
    root.send(&pid, "inc");
    let mut first_counts = 0;
    let got = recv_until(&mut rx, WAIT, |e| {
        first_counts += usize::from(e == "Msg(\"inc\")@1");
        first_counts == 2
    })
    .await;
    assert_eq!(
        got,
        vec![
            "Started@0",
            "Msg(\"inc\")@1",
            "Msg(\"inc\")@2",
            // The failing instance is told, with its state intact...
            "Restarting@2",
            // Its child is stopped before the restart completes.
            "Terminated(kid)@2",
            // ...and a fresh one (count 0) starts and re-spawns its child under the same name.
            "Started@0",
            "Msg(\"inc\")@1",
        ]
    );
    system.shutdown().await;
}

/// Reports everything; while handling "m1" it waits for the test to open a gate,
/// so the test can queue messages behind it.
struct Gated {
    tx: UnboundedSender<Seen>,
    gate: Option<oneshot::Receiver<()>>,
}

impl Actor for Gated {
    async fn receive(&mut self, ctx: &mut Context) -> ActorResult {
        let s = seen(ctx);
        let _ = self.tx.send(s.clone());
        if s == Seen::msg("m1")
            && let Some(gate) = self.gate.take()
        {
            let _ = gate.await;
            let _ = self.tx.send(Seen::msg("m1 done"));
        }
        Ok(())
    }
}

fn gated(tx: UnboundedSender<Seen>) -> (Props, oneshot::Sender<()>) {
    let (open, gate) = oneshot::channel();
    let gate = Arc::new(Mutex::new(Some(gate)));
    let props = Props::from_producer(move || Gated { tx: tx.clone(), gate: gate.lock().take() });
    (props, open)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_finishes_the_current_message_and_dead_letters_the_rest() {
    let system = ActorSystem::new();
    let (_subscription, mut dead) = dead_letters(&system);
    let (tx, mut rx) = unbounded_channel();
    let (props, open) = gated(tx);
    let pid = system.root().spawn(props);
    system.root().send(&pid, "m1");
    recv_until(&mut rx, WAIT, |s| *s == Seen::msg("m1")).await;

    // The actor is inside m1: these queue behind it.
    for m in ["m2", "m3", "m4", "m5"] {
        system.root().send(&pid, m);
    }
    system.root().stop(&pid);
    open.send(()).expect("actor waits on the gate");

    let events = recv_until(&mut rx, WAIT, |s| *s == Seen::Stopped).await;
    assert_eq!(events, vec![Seen::msg("m1 done"), Seen::Stopping, Seen::Stopped]);
    let letters = recv_n(&mut dead, 4, WAIT).await;
    let messages: Vec<_> = letters.iter().map(|l| l.message.as_str()).collect();
    assert_eq!(messages, ["m2", "m3", "m4", "m5"]);
    assert!(letters.iter().all(|l| l.pid == pid));
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_handles_the_messages_queued_before_it() {
    let system = ActorSystem::new();
    let (_subscription, mut dead) = dead_letters(&system);
    let (tx, mut rx) = unbounded_channel();
    let (props, open) = gated(tx);
    let pid = system.root().spawn(props);
    system.root().send(&pid, "m1");
    recv_until(&mut rx, WAIT, |s| *s == Seen::msg("m1")).await;

    for m in ["m2", "m3", "m4", "m5"] {
        system.root().send(&pid, m);
    }
    system.root().poison(&pid);
    system.root().send(&pid, "after poison");
    open.send(()).expect("actor waits on the gate");

    let events = recv_until(&mut rx, WAIT, |s| *s == Seen::Stopped).await;
    assert_eq!(
        events,
        vec![
            Seen::msg("m1 done"),
            Seen::msg("m2"),
            Seen::msg("m3"),
            Seen::msg("m4"),
            Seen::msg("m5"),
            Seen::Stopping,
            Seen::Stopped
        ]
    );
    let letter = recv_within(&mut dead, WAIT).await;
    assert_eq!(letter.message, "after poison");
    assert_eq!(letter.pid, pid);
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_every_actor_and_refuses_new_ones() {
    let system = ActorSystem::new();
    let mut probes = Vec::new();
    for _ in 0..5 {
        probes.push(spawn_probe(&system));
    }
    let (tx, mut family) = unbounded_channel();
    system.root().spawn(labelled("parent", tx, &["a", "b"]));
    recv_n(&mut family, 3, WAIT).await;
    for (pid, _) in &probes {
        system.root().send(pid, "work");
    }
    assert_eq!(system.actor_count(), 8);

    system.shutdown().await;
    assert_eq!(system.actor_count(), 0);
    // shutdown returned once all had stopped, so each Stopped is already reported.
    for (pid, rx) in &mut probes {
        let mut events = Vec::new();
        while let Ok(e) = rx.try_recv() {
            events.push(e);
        }
        assert_eq!(events.last(), Some(&Seen::Stopped), "{pid}: {events:?}");
        assert_eq!(events.iter().filter(|e| **e == Seen::Stopped).count(), 1, "{pid}: {events:?}");
    }
    let mut rest = Vec::new();
    while let Ok(e) = family.try_recv() {
        rest.push(e);
    }
    for who in ["parent", "a", "b"] {
        assert!(rest.contains(&format!("{who}:Stopped")), "{who} not stopped: {rest:?}");
    }

    let refused = system.root().spawn_named(Props::from_fn(|_| Ok(())), "late");
    assert!(matches!(refused, Err(Error::ShuttingDown)), "{refused:?}");
}
