//! Dead letters: messages to stopped or unknown pids are published on the
//! event stream, and requests to them fail at once instead of timing out.

use crate::common;

use std::time::Duration;

use common::{DeadLetter, Seen, WAIT, dead_letters, recv_within, seen, spawn_probe};
use protoactor_actor::{ActorSystem, Context, DeadLetterResponse, Error, Pid, Props};
use tokio::sync::mpsc::unbounded_channel;

const LONG_TIMEOUT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sending_to_a_stopped_actor_publishes_a_dead_letter() {
    let system = ActorSystem::new();
    let (_subscription, mut dead) = dead_letters(&system);
    let (target, _rx) = spawn_probe(&system);
    let (sender, _sender_rx) = spawn_probe(&system);
    system.root().stop_future(&target).await;

    system.root().send(&target, "lost");
    // Published on the sending thread: already in the channel.
    let letter = dead.try_recv().expect("dead letter published synchronously");
    assert_eq!(letter, DeadLetter { pid: target.clone(), message: "lost".into(), sender: None });

    system.root().request(&target, "lost with sender", &sender);
    let letter = dead.try_recv().expect("dead letter published synchronously");
    assert_eq!(letter, DeadLetter { pid: target.clone(), message: "lost with sender".into(), sender: Some(sender) });
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_pid_for_a_stopped_actor_also_dead_letters() {
    // Resolves through the registry rather than the pid's cached process.
    let system = ActorSystem::new();
    let (_subscription, mut dead) = dead_letters(&system);
    let target = system.root().spawn_named(Props::from_fn(|_| Ok(())), "gone").expect("fresh name");
    system.root().stop_future(&target).await;
    let fresh = Pid::new(system.address(), "gone");
    system.root().send(&fresh, 7u32);
    let letter = dead.try_recv().expect("dead letter published synchronously");
    assert_eq!(letter.pid, fresh);
    assert_eq!(letter.message, "7");
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_future_to_a_stopped_actor_fails_fast_with_dead_letter() {
    let system = ActorSystem::new();
    let (target, _rx) = spawn_probe(&system);
    system.root().stop_future(&target).await;
    // DeadLetter, not Timeout: the request failed before its (long) timeout.
    let result = system.root().request_future::<String, _>(&target, "anyone?", LONG_TIMEOUT).await;
    match result {
        Err(Error::DeadLetter { target: t }) => assert_eq!(t, target),
        other => panic!("expected DeadLetter, got {other:?}"),
    }
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_future_to_an_unknown_pid_fails_fast_with_dead_letter() {
    let system = ActorSystem::new();
    let ghost = Pid::new(system.address(), "never-spawned");
    let result = system.root().request_future::<String, _>(&ghost, "anyone?", LONG_TIMEOUT).await;
    assert!(matches!(result, Err(Error::DeadLetter { .. })), "{result:?}");
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_future_from_an_actor_to_a_dead_pid_fails_fast() {
    let system = ActorSystem::new();
    let ghost = Pid::new(system.address(), "never-spawned");
    let asker = system.root().spawn(Props::from_producer(move || Asker { target: ghost.clone() }));
    let answer: String = system.root().request_future(&asker, "go", LONG_TIMEOUT).await.expect("asker answers");
    assert!(answer.starts_with("Err(DeadLetter"), "{answer}");
    system.shutdown().await;
}

struct Asker {
    target: Pid,
}

impl protoactor_actor::Actor for Asker {
    async fn receive(&mut self, ctx: &mut Context) -> protoactor_actor::ActorResult {
        if ctx.message::<&'static str>() == Some(&"go") {
            let result = ctx.request_future::<String, _>(&self.target, "anyone?", LONG_TIMEOUT).await;
            ctx.respond(format!("{result:?}"));
        }
        Ok(())
    }
}

struct AskDead(Pid);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_actor_requesting_a_dead_pid_receives_dead_letter_response() {
    let system = ActorSystem::new();
    let ghost = Pid::new(system.address(), "never-spawned");
    let (tx, mut rx) = unbounded_channel();
    let asker = system.root().spawn(Props::from_fn(move |ctx: &mut Context| {
        if let Some(AskDead(target)) = ctx.message::<AskDead>() {
            ctx.request(target, "hello?");
        } else if let Some(response) = ctx.message::<DeadLetterResponse>() {
            let _ = tx.send(Some(response.target.clone()));
        } else if seen(ctx) != Seen::Started {
            let _ = tx.send(None);
        }
        Ok(())
    }));
    system.root().send(&asker, AskDead(ghost.clone()));
    assert_eq!(recv_within(&mut rx, WAIT).await, Some(ghost));
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_response_to_a_dead_sender_does_not_bounce_back() {
    let system = ActorSystem::new();
    let (_subscription, mut dead) = dead_letters(&system);
    let target = Pid::new(system.address(), "dead-target");
    let sender = Pid::new(system.address(), "dead-sender");
    system.root().request(&target, "ping", &sender);
    // Both hops happen on this thread: the request, then the dead-letter
    // response to the (also dead) sender, and nothing after that.
    let first = dead.try_recv().expect("the request is dead-lettered");
    assert_eq!(first, DeadLetter { pid: target.clone(), message: "ping".into(), sender: Some(sender.clone()) });
    let second = dead.try_recv().expect("the dead-letter response is dead-lettered");
    assert_eq!(second.pid, sender);
    assert!(second.message.ends_with("DeadLetterResponse"), "{second:?}");
    assert!(dead.try_recv().is_err(), "dead letters bounced");
    system.shutdown().await;
}
