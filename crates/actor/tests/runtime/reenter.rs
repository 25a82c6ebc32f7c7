//! `reenter_after`: the mailbox keeps flowing while a future is pending, and
//! the continuation runs later inside the actor with the original sender.

use crate::common;

use std::time::Duration;

use common::{WAIT, recv_n, recv_within};
use protoactor_actor::{Actor, ActorResult, ActorSystem, Context, Props, Reentered};
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use tokio::sync::oneshot;

/// Starts slow work that finishes when the test sends on the oneshot.
struct Work(&'static str, oneshot::Receiver<u32>);

struct Worker {
    tx: UnboundedSender<String>,
    total: u32,
}

impl Actor for Worker {
    async fn receive(&mut self, ctx: &mut Context) -> ActorResult {
        if let Some(Work(name, done)) = ctx.take_message::<Work>() {
            let _ = self.tx.send(format!("begin {name}"));
            ctx.reenter_after(done, move |me: &mut Worker, ctx: &mut Context, value: Result<u32, _>| {
                let value = value.unwrap_or(0);
                me.total += value;
                let _ = me.tx.send(format!("continue {name} reentered={}", ctx.message_is::<Reentered>()));
                ctx.respond(format!("{name} finished with {value}"));
                Ok(())
            });
        } else if let Some(text) = ctx.message::<&'static str>() {
            let _ = self.tx.send(format!("handle {text}"));
            match *text {
                "total" => ctx.respond(self.total),
                _ => ctx.respond("ok"),
            }
        }
        Ok(())
    }
}

fn worker(tx: UnboundedSender<String>) -> Props {
    Props::from_producer(move || Worker { tx: tx.clone(), total: 0 })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn later_messages_run_before_the_continuation_which_answers_the_original_request() {
    let system = ActorSystem::new();
    let (tx, mut rx) = unbounded_channel();
    let pid = system.root().spawn(worker(tx));

    let (finish, done) = oneshot::channel();
    let request_a = system.root().request_future::<String, _>(&pid, Work("A", done), WAIT);
    let request_a = tokio::spawn(request_a);
    assert_eq!(recv_within(&mut rx, WAIT).await, "begin A");

    // B is handled while A's continuation waits: the mailbox is not blocked.
    let b: &str = system.root().request_future(&pid, "B", WAIT).await.expect("B answered while A is pending");
    assert_eq!(b, "ok");
    assert_eq!(recv_within(&mut rx, WAIT).await, "handle B");
    assert!(!request_a.is_finished(), "A must not be answered before its future completes");

    finish.send(7).expect("the continuation is waiting");
    let a = request_a.await.expect("request task").expect("A answered by the continuation");
    assert_eq!(a, "A finished with 7");
    assert_eq!(recv_within(&mut rx, WAIT).await, "continue A reentered=true");

    // The continuation changed the actor's state.
    let total: u32 = system.root().request_future(&pid, "total", WAIT).await.expect("total");
    assert_eq!(total, 7);
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_continuation_answers_its_own_requester_in_completion_order() {
    let system = ActorSystem::new();
    let (tx, mut rx) = unbounded_channel();
    let pid = system.root().spawn(worker(tx));

    let (finish_1, done_1) = oneshot::channel();
    let (finish_2, done_2) = oneshot::channel();
    let first = tokio::spawn(system.root().request_future::<String, _>(&pid, Work("one", done_1), WAIT));
    let second = tokio::spawn(system.root().request_future::<String, _>(&pid, Work("two", done_2), WAIT));
    assert_eq!(recv_n(&mut rx, 2, WAIT).await, ["begin one", "begin two"]);

    finish_2.send(2).expect("two is waiting");
    assert_eq!(second.await.expect("task").expect("two answered"), "two finished with 2");
    assert!(!first.is_finished(), "one must still be pending");
    finish_1.send(1).expect("one is waiting");
    assert_eq!(first.await.expect("task").expect("one answered"), "one finished with 1");
    assert_eq!(recv_n(&mut rx, 2, WAIT).await, ["continue two reentered=true", "continue one reentered=true"]);

    let total: u32 = system.root().request_future(&pid, "total", WAIT).await.expect("total");
    assert_eq!(total, 3);
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_continuation_is_dropped_when_the_actor_stops_first() {
    let system = ActorSystem::new();
    let (tx, mut rx) = unbounded_channel();
    let pid = system.root().spawn(worker(tx));
    let (finish, done) = oneshot::channel();
    let request = system.root().request_future::<String, _>(&pid, Work("late", done), Duration::from_millis(500));
    assert_eq!(recv_within(&mut rx, WAIT).await, "begin late");
    system.root().stop_future(&pid).await;

    // The future completes after the stop; nothing may run in the dead actor.
    let _ = finish.send(5);
    let outcome = request.await;
    assert!(outcome.is_err(), "no answer can come from a stopped actor: {outcome:?}");
    assert!(rx.try_recv().is_err(), "the continuation ran after stop");
    system.shutdown().await;
}
