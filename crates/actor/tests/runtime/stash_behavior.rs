//! Stash/unstash ordering and the behavior stack (become, become_stacked,
//! unbecome_stacked).

use crate::common;

use common::{WAIT, recv_until, recv_within};
use protoactor_actor::{Actor, ActorError, ActorResult, ActorSystem, Context, Props};
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use tokio::sync::oneshot;

/// Holds the actor inside `receive` until the sender of the oneshot fires.
struct Hold(oneshot::Receiver<()>);

/// Not ready: stashes every text message until "ready", then handles them
/// (and everything after) in its ready behavior.
struct Gatekeeper {
    tx: UnboundedSender<String>,
}

impl Gatekeeper {
    fn ready(&mut self, ctx: &mut Context) -> ActorResult {
        if let Some(text) = ctx.message::<&'static str>() {
            let _ = self.tx.send(format!("handled {text}"));
            if *text == "question" {
                ctx.respond("answer");
            }
        }
        Ok(())
    }
}

impl Actor for Gatekeeper {
    async fn receive(&mut self, ctx: &mut Context) -> ActorResult {
        if let Some(Hold(gate)) = ctx.take_message::<Hold>() {
            let _ = self.tx.send("holding".into());
            let _ = gate.await;
        } else if ctx.message::<&'static str>() == Some(&"ready") {
            let _ = self.tx.send("ready".into());
            ctx.become_behavior(Gatekeeper::ready);
            ctx.unstash_all();
        } else if let Some(text) = ctx.message::<&'static str>() {
            let _ = self.tx.send(format!("stashed {text}"));
            ctx.stash();
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unstash_all_replays_in_order_before_later_messages() {
    let system = ActorSystem::new();
    let (tx, mut rx) = unbounded_channel();
    let pid = system.root().spawn(Props::from_producer(move || Gatekeeper { tx: tx.clone() }));
    let (open, gate) = oneshot::channel();
    system.root().send(&pid, Hold(gate));
    assert_eq!(recv_within(&mut rx, WAIT).await, "holding");

    // All queued while the actor is held, so "d" and "e" are already waiting
    // when "ready" unstashes.
    for m in ["a", "b", "c", "ready", "d", "e"] {
        system.root().send(&pid, m);
    }
    open.send(()).expect("actor is holding");

    let got = recv_until(&mut rx, WAIT, |e| e == "handled e").await;
    assert_eq!(
        got,
        [
            "stashed a",
            "stashed b",
            "stashed c",
            "ready",
            "handled a",
            "handled b",
            "handled c",
            "handled d",
            "handled e"
        ]
    );
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stashed_request_keeps_its_sender() {
    let system = ActorSystem::new();
    let (tx, mut rx) = unbounded_channel();
    let pid = system.root().spawn(Props::from_producer(move || Gatekeeper { tx: tx.clone() }));
    let pending = system.root().request_future::<&'static str, _>(&pid, "question", WAIT);
    assert_eq!(recv_within(&mut rx, WAIT).await, "stashed question");
    system.root().send(&pid, "ready");
    assert_eq!(pending.await.expect("answered after unstash"), "answer");
    system.shutdown().await;
}

/// Answers "which" with the name of the behavior handling it; "push1",
/// "push2", "replace" and "pop" edit the stack; "boom" fails.
struct Moody {
    pushes: u32,
}

impl Moody {
    fn common(&mut self, ctx: &mut Context, name: &'static str) -> ActorResult {
        match ctx.message::<&'static str>() {
            Some(&"which") => ctx.respond(name),
            Some(&"pushes") => ctx.respond(self.pushes),
            Some(&"push1") => {
                self.pushes += 1;
                ctx.become_stacked(Moody::first);
            }
            Some(&"push2") => {
                self.pushes += 1;
                ctx.become_stacked(Moody::second);
            }
            Some(&"replace") => ctx.become_behavior(Moody::replaced),
            Some(&"pop") => ctx.unbecome_stacked(),
            Some(&"boom") => return Err(ActorError::msg("boom")),
            _ => {}
        }
        Ok(())
    }

    fn first(&mut self, ctx: &mut Context) -> ActorResult {
        self.common(ctx, "first")
    }

    fn second(&mut self, ctx: &mut Context) -> ActorResult {
        self.common(ctx, "second")
    }

    fn replaced(&mut self, ctx: &mut Context) -> ActorResult {
        self.common(ctx, "replaced")
    }
}

impl Actor for Moody {
    async fn receive(&mut self, ctx: &mut Context) -> ActorResult {
        self.common(ctx, "base")
    }
}

async fn which(system: &ActorSystem, pid: &protoactor_actor::Pid) -> &'static str {
    system.root().request_future(pid, "which", WAIT).await.expect("moody answers")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn become_stacked_and_unbecome_stacked_walk_the_stack() {
    let system = ActorSystem::new();
    let pid = system.root().spawn(Props::from_producer(|| Moody { pushes: 0 }));
    let root = system.root();
    assert_eq!(which(&system, &pid).await, "base");
    root.send(&pid, "push1");
    assert_eq!(which(&system, &pid).await, "first");
    root.send(&pid, "push2");
    assert_eq!(which(&system, &pid).await, "second");
    root.send(&pid, "pop");
    assert_eq!(which(&system, &pid).await, "first");
    root.send(&pid, "pop");
    assert_eq!(which(&system, &pid).await, "base");
    // Popping an empty stack keeps the actor's own receive.
    root.send(&pid, "pop");
    assert_eq!(which(&system, &pid).await, "base");
    // Behaviors run on the same actor state.
    let pushes: u32 = root.request_future(&pid, "pushes", WAIT).await.expect("moody answers");
    assert_eq!(pushes, 2);
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn become_behavior_replaces_the_whole_stack() {
    let system = ActorSystem::new();
    let pid = system.root().spawn(Props::from_producer(|| Moody { pushes: 0 }));
    let root = system.root();
    root.send(&pid, "push1");
    root.send(&pid, "push2");
    root.send(&pid, "replace");
    assert_eq!(which(&system, &pid).await, "replaced");
    // Had "replace" merely pushed, this pop would reveal "second".
    root.send(&pid, "pop");
    assert_eq!(which(&system, &pid).await, "base");
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_resets_the_behavior_stack() {
    let system = ActorSystem::new();
    let pid = system.root().spawn(Props::from_producer(|| Moody { pushes: 0 }));
    let root = system.root();
    root.send(&pid, "push1");
    assert_eq!(which(&system, &pid).await, "first");
    // Fails inside the "first" behavior; the default guardian restarts it.
    root.send(&pid, "boom");
    assert_eq!(which(&system, &pid).await, "base");
    let pushes: u32 = root.request_future(&pid, "pushes", WAIT).await.expect("moody answers");
    assert_eq!(pushes, 0, "a restart makes a fresh instance");
    system.shutdown().await;
}
