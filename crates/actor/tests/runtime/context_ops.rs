//! Every `Context` operation, observed from outside the actor: the current
//! message and sender, identity and family, spawning, sending, requesting,
//! responding, forwarding, and stopping other actors.

use crate::common;

use std::collections::HashSet;

use common::{Seen, WAIT, dead_letters, probe_with_sender, recv_until, recv_within, seen, spawn_probe};
use protoactor_actor::{
    Actor, ActorResult, ActorSystem, Context, Error, Forwarded, MessageHeader, Pid, Props, Started, Taken, Terminated,
};
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

/// What an actor observed about its current message.
#[derive(Debug, PartialEq, Eq)]
struct MessageReport {
    typed: Option<String>,
    other_type_is_none: bool,
    take_other_type_is_none: bool,
    taken: Option<String>,
    gone_after_take: bool,
    taken_marker: bool,
}

struct Payload(String);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_and_take_message_read_the_current_message() {
    let system = ActorSystem::new();
    let inspector = system.root().spawn(Props::from_fn(|ctx: &mut Context| {
        if ctx.message_is::<Payload>() {
            let typed = ctx.message::<Payload>().map(|p| p.0.clone());
            let other_type_is_none = ctx.message::<u32>().is_none();
            // Taking the wrong type must leave the message in place.
            let take_other_type_is_none = ctx.take_message::<u32>().is_none();
            let taken = ctx.take_message::<Payload>().map(|p| p.0);
            let gone_after_take = ctx.message::<Payload>().is_none();
            let taken_marker = ctx.message_is::<Taken>();
            // The sender survives the take, so respond still reaches the requester.
            ctx.respond(MessageReport {
                typed,
                other_type_is_none,
                take_other_type_is_none,
                taken,
                gone_after_take,
                taken_marker,
            });
        }
        Ok(())
    }));

    let report: MessageReport =
        system.root().request_future(&inspector, Payload("hi".into()), WAIT).await.expect("inspector answers");
    assert_eq!(
        report,
        MessageReport {
            typed: Some("hi".into()),
            other_type_is_none: true,
            take_other_type_is_none: true,
            taken: Some("hi".into()),
            gone_after_take: true,
            taken_marker: true,
        }
    );
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sender_is_absent_for_send_and_present_for_requests() {
    let system = ActorSystem::new();
    let root = system.root();
    let (tx, mut rx) = unbounded_channel();
    let target = root.spawn(probe_with_sender(tx));
    let (reply_to, _reply_rx) = spawn_probe(&system);

    root.send(&target, "plain");
    root.request(&target, "with sender", &reply_to);
    // Nobody answers; the pending future only has to exist while the probe reports.
    let _pending = root.request_future::<(), _>(&target, "as future", WAIT);

    let got = recv_until(&mut rx, WAIT, |(s, _)| *s == Seen::msg("as future")).await;
    let got: Vec<_> = got.into_iter().filter(|(s, _)| *s != Seen::Started).collect();
    assert_eq!(got[0], (Seen::msg("plain"), None));
    assert_eq!(got[1], (Seen::msg("with sender"), Some(reply_to.clone())));
    let future_sender = got[2].1.as_ref().expect("a request future carries its own pid as sender");
    assert!(future_sender.id().starts_with("future"), "unexpected future pid {future_sender}");
    assert_ne!(future_sender, &reply_to);
    system.shutdown().await;
}

/// Reports `(self_pid, parent)` as seen from inside an actor.
fn identity_reporter(tx: UnboundedSender<(Pid, Option<Pid>)>) -> Props {
    Props::from_fn(move |ctx: &mut Context| {
        if ctx.message_is::<Started>() {
            let _ = tx.send((ctx.self_pid().clone(), ctx.parent().cloned()));
        }
        Ok(())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_pid_and_parent_identify_the_actor_and_its_spawner() {
    let system = ActorSystem::new();
    let (tx, mut rx) = unbounded_channel();

    let top = system.root().spawn(identity_reporter(tx.clone()));
    let (me, parent) = recv_within(&mut rx, WAIT).await;
    assert_eq!(me, top);
    assert_eq!(parent, None, "actors spawned from the root context have no parent");

    let child_props = identity_reporter(tx.clone());
    let parent_pid = system.root().spawn(Props::from_fn(move |ctx: &mut Context| {
        if ctx.message_is::<Started>() {
            ctx.spawn_named(child_props.clone(), "kid").expect("fresh name");
        }
        Ok(())
    }));
    let (child, childs_parent) = recv_within(&mut rx, WAIT).await;
    assert_eq!(childs_parent, Some(parent_pid.clone()));
    assert_eq!(child.id(), format!("{}/kid", parent_pid.id()));
    system.shutdown().await;
}

/// Answers every `&str` request with its own pid id, proving a pid reaches it.
fn id_responder() -> Props {
    Props::from_fn(|ctx: &mut Context| {
        if ctx.message_is::<&'static str>() {
            ctx.respond(ctx.self_pid().id().to_string());
        }
        Ok(())
    })
}

struct SpawnThree;

#[derive(Debug)]
struct Spawned {
    generated: Pid,
    named: Pid,
    prefixed: Pid,
    children: Vec<Pid>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_variants_give_child_ids_under_the_parent() {
    let system = ActorSystem::new();
    let parent = system.root().spawn(Props::from_fn(|ctx: &mut Context| {
        if ctx.message_is::<SpawnThree>() {
            let generated = ctx.spawn(id_responder());
            let named = ctx.spawn_named(id_responder(), "kid").expect("fresh name");
            let prefixed = ctx.spawn_prefix(id_responder(), "worker");
            let children = ctx.children();
            ctx.respond(Spawned { generated, named, prefixed, children });
        }
        Ok(())
    }));
    let spawned: Spawned = system.root().request_future(&parent, SpawnThree, WAIT).await.expect("parent answers");
    let p = parent.id();

    assert_eq!(spawned.named.id(), format!("{p}/kid"));
    let generated_suffix = spawned.generated.id().strip_prefix(&format!("{p}/$")).expect("generated id under parent");
    assert!(!generated_suffix.is_empty());
    let prefixed_suffix =
        spawned.prefixed.id().strip_prefix(&format!("{p}/worker$")).expect("prefixed id under parent");
    assert!(!prefixed_suffix.is_empty());

    let expected: HashSet<String> =
        [&spawned.generated, &spawned.named, &spawned.prefixed].into_iter().map(|p| p.id().to_string()).collect();
    let children: HashSet<String> = spawned.children.iter().map(|p| p.id().to_string()).collect();
    assert_eq!(children, expected);

    // Each pid leads to the actor that carries that id.
    for pid in [&spawned.generated, &spawned.named, &spawned.prefixed] {
        let id: String = system.root().request_future(pid, "who", WAIT).await.expect("child answers");
        assert_eq!(id, pid.id());
    }
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_spawn_variants_use_the_name_as_id() {
    let system = ActorSystem::new();
    let root = system.root();
    let named = root.spawn_named(id_responder(), "top").expect("fresh name");
    assert_eq!(named.id(), "top");
    let prefixed = root.spawn_prefix(id_responder(), "pre");
    assert!(prefixed.id().starts_with("pre$") && prefixed.id().len() > 4, "{prefixed}");
    let generated = root.spawn(id_responder());
    assert!(generated.id().starts_with('$'), "{generated}");
    for pid in [&named, &prefixed, &generated] {
        let id: String = root.request_future(pid, "who", WAIT).await.expect("actor answers");
        assert_eq!(id, pid.id());
    }
    system.shutdown().await;
}

struct StopChild(usize);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_list_drops_a_child_once_it_has_stopped() {
    let system = ActorSystem::new();
    let (tx, mut rx) = unbounded_channel::<(Option<Terminated>, Vec<Pid>)>();
    let parent = system.root().spawn(Props::from_fn(move |ctx: &mut Context| {
        if ctx.message_is::<Started>() {
            for i in 0..3 {
                ctx.spawn_named(id_responder(), &format!("c{i}")).expect("fresh name");
            }
            let _ = tx.send((None, ctx.children()));
        } else if let Some(StopChild(i)) = ctx.message::<StopChild>() {
            let target = Pid::new(ctx.self_pid().address(), format!("{}/c{i}", ctx.self_pid().id()));
            ctx.stop(&target);
        } else if let Some(t) = ctx.message::<Terminated>() {
            let _ = tx.send((Some(t.clone()), ctx.children()));
        }
        Ok(())
    }));

    let (_, initial) = recv_within(&mut rx, WAIT).await;
    assert_eq!(initial.len(), 3);
    let c1 = initial.iter().find(|p| p.id().ends_with("/c1")).expect("child c1").clone();

    system.root().send(&parent, StopChild(1));
    let (terminated, after) = recv_within(&mut rx, WAIT).await;
    assert_eq!(terminated.expect("a Terminated for the child").who, c1);
    let after: HashSet<String> = after.iter().map(|p| p.id().to_string()).collect();
    let expected: HashSet<String> = initial.iter().filter(|p| **p != c1).map(|p| p.id().to_string()).collect();
    assert_eq!(after, expected);
    system.shutdown().await;
}

struct SendTo(Pid);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_from_an_actor_carries_no_sender() {
    let system = ActorSystem::new();
    let (tx, mut rx) = unbounded_channel();
    let target = system.root().spawn(probe_with_sender(tx));
    let sender = system.root().spawn(Props::from_fn(|ctx: &mut Context| {
        if let Some(SendTo(target)) = ctx.message::<SendTo>() {
            ctx.send(target, "hello");
        }
        Ok(())
    }));
    system.root().send(&sender, SendTo(target));
    let got = recv_until(&mut rx, WAIT, |(s, _)| *s == Seen::msg("hello")).await;
    assert_eq!(got.last(), Some(&(Seen::msg("hello"), None)));
    system.shutdown().await;
}

struct AskPing(Pid);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_sets_self_as_sender_and_the_response_arrives_as_a_message() {
    let system = ActorSystem::new();
    let (responder_tx, mut responder_rx) = unbounded_channel::<Option<Pid>>();
    let responder = system.root().spawn(Props::from_fn(move |ctx: &mut Context| {
        if ctx.message::<&'static str>() == Some(&"ping") {
            let _ = responder_tx.send(ctx.sender().cloned());
            ctx.respond("pong");
        }
        Ok(())
    }));
    let (asker_tx, mut asker_rx) = unbounded_channel();
    let asker = system.root().spawn(Props::from_fn(move |ctx: &mut Context| {
        if let Some(AskPing(target)) = ctx.message::<AskPing>() {
            ctx.request(target, "ping");
        } else {
            let _ = asker_tx.send((seen(ctx), ctx.sender().cloned()));
        }
        Ok(())
    }));

    system.root().send(&asker, AskPing(responder.clone()));
    let seen_sender = recv_within(&mut responder_rx, WAIT).await;
    assert_eq!(seen_sender, Some(asker.clone()), "request must carry the requesting actor as sender");
    let got = recv_until(&mut asker_rx, WAIT, |(s, _)| *s == Seen::msg("pong")).await;
    assert_eq!(got.last(), Some(&(Seen::msg("pong"), Some(responder))), "respond sets the responder as sender");
    system.shutdown().await;
}

/// Asks `target` from inside `receive` and answers its own requester with the result.
struct Relay {
    target: Pid,
}

impl Actor for Relay {
    async fn receive(&mut self, ctx: &mut Context) -> ActorResult {
        if ctx.message::<&'static str>() == Some(&"go") {
            let answer = ctx.request_future::<&'static str, _>(&self.target, "ping", WAIT).await;
            ctx.respond(format!("relayed {answer:?}"));
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_future_inside_an_actor_returns_the_typed_response() {
    let system = ActorSystem::new();
    let responder = system.root().spawn(Props::from_fn(|ctx: &mut Context| {
        if ctx.message::<&'static str>() == Some(&"ping") {
            ctx.respond("pong");
        }
        Ok(())
    }));
    let relay = system.root().spawn(Props::from_producer(move || Relay { target: responder.clone() }));
    let answer: String = system.root().request_future(&relay, "go", WAIT).await.expect("relay answers");
    assert_eq!(answer, "relayed Ok(\"pong\")");
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn respond_without_a_sender_goes_to_dead_letters() {
    let system = ActorSystem::new();
    let (_subscription, mut dead) = dead_letters(&system);
    let responder = system.root().spawn(Props::from_fn(|ctx: &mut Context| {
        if ctx.message_is::<&'static str>() {
            ctx.respond("unanswerable");
        }
        Ok(())
    }));
    system.root().send(&responder, "no sender here");
    let letter = recv_within(&mut dead, WAIT).await;
    assert_eq!(letter.message, "unanswerable");
    assert_eq!(letter.pid, responder);
    assert_eq!(letter.sender, Some(responder.clone()));
    system.shutdown().await;
}

/// What the forwarding actor saw after forwarding.
#[derive(Debug)]
struct AfterForward {
    sender_before: Option<Pid>,
    sender_after: Option<Pid>,
    forwarded_marker: bool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_preserves_sender_and_headers_so_the_final_target_answers_the_requester() {
    let system = ActorSystem::new();
    let (final_tx, mut final_rx) = unbounded_channel::<Option<Pid>>();
    let last = system.root().spawn(Props::from_fn(move |ctx: &mut Context| {
        if let Some(q) = ctx.message::<&'static str>() {
            let _ = final_tx.send(ctx.sender().cloned());
            let trace = ctx.header().and_then(|h| h.get("trace")).unwrap_or("-").to_string();
            ctx.respond(format!("final answers {q} trace={trace}"));
        }
        Ok(())
    }));
    let (mid_tx, mut mid_rx) = unbounded_channel::<AfterForward>();
    let middle = system.root().spawn(Props::from_fn(move |ctx: &mut Context| {
        if ctx.message_is::<&'static str>() {
            let sender_before = ctx.sender().cloned();
            ctx.forward(&last);
            let _ = mid_tx.send(AfterForward {
                sender_before,
                sender_after: ctx.sender().cloned(),
                forwarded_marker: ctx.message_is::<Forwarded>(),
            });
        }
        Ok(())
    }));

    let root = system.root().with_header(MessageHeader::new().with("trace", "t-42"));
    let answer: String = root.request_future(&middle, "q", WAIT).await.expect("the final target answers");
    assert_eq!(answer, "final answers q trace=t-42");

    let after = recv_within(&mut mid_rx, WAIT).await;
    let requester = after.sender_before.clone().expect("the request had a sender");
    assert_eq!(after.sender_after, Some(requester.clone()), "sender stays readable after forward");
    assert!(after.forwarded_marker, "the forwarded message has left the context");
    assert_eq!(recv_within(&mut final_rx, WAIT).await, Some(requester), "final target sees the original sender");
    system.shutdown().await;
}

/// How the controller should end the target.
#[derive(Debug, Clone, Copy)]
enum How {
    Stop,
    Poison,
    StopFuture,
    PoisonFuture,
}

struct End(Pid, How);

/// Ends other actors with the context's stop operations and answers "done".
struct Controller;

impl Actor for Controller {
    async fn receive(&mut self, ctx: &mut Context) -> ActorResult {
        if let Some(End(target, how)) = ctx.message::<End>() {
            let (target, how) = (target.clone(), *how);
            match how {
                How::Stop => ctx.stop(&target),
                How::Poison => ctx.poison(&target),
                How::StopFuture => ctx.stop_future(&target).await,
                How::PoisonFuture => ctx.poison_future(&target).await,
            }
            ctx.respond("done");
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_and_poison_from_a_context_end_the_target() {
    let system = ActorSystem::new();
    let controller = system.root().spawn(Props::from_producer(|| Controller));
    for how in [How::Stop, How::Poison, How::StopFuture, How::PoisonFuture] {
        let (target, mut rx) = spawn_probe(&system);
        // Queued before the stop request, so a poison must let them through.
        system.root().send(&target, "q1");
        system.root().send(&target, "q2");
        let done: &str = system.root().request_future(&controller, End(target.clone(), how), WAIT).await.expect("done");
        assert_eq!(done, "done");

        let mut events = Vec::new();
        match how {
            How::StopFuture | How::PoisonFuture => {
                // The future resolved only after the target stopped: Stopped is already reported.
                while let Ok(e) = rx.try_recv() {
                    events.push(e);
                }
                assert_eq!(events.last(), Some(&Seen::Stopped), "{how:?}: {events:?}");
            }
            How::Stop | How::Poison => events = recv_until(&mut rx, WAIT, |e| *e == Seen::Stopped).await,
        }
        assert_eq!(events.iter().filter(|e| **e == Seen::Stopped).count(), 1, "{how:?}: {events:?}");
        if matches!(how, How::Poison | How::PoisonFuture) {
            assert_eq!(
                events,
                vec![Seen::Started, Seen::msg("q1"), Seen::msg("q2"), Seen::Stopping, Seen::Stopped],
                "{how:?}"
            );
        }
        let err = system.root().request_future::<(), _>(&target, "anyone?", WAIT).await;
        assert!(matches!(err, Err(Error::DeadLetter { .. })), "{how:?}: {err:?}");
    }
    system.shutdown().await;
}
