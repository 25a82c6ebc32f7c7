//! Supervision: directives, strategies, restart limits, escalation, and the
//! guardian that supervises root-level actors.

use std::time::{Duration, Instant};

use protoactor_actor::prelude::*;
use protoactor_actor::{
    ActorSystemConfig, AllForOneStrategy, AlwaysRestartStrategy, Directive, ExponentialBackoffStrategy,
    OneForOneStrategy, SupervisorEvent,
};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(5);

/// What a [`Node`] observed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    Started,
    Restarting,
    Stopping,
    Stopped,
    Failed,
    /// A `Terminated` for the actor with this id.
    Terminated(String),
}

#[derive(Debug, Clone)]
struct Event {
    who: &'static str,
    ev: Ev,
    at: Instant,
}

type Log = mpsc::UnboundedSender<Event>;

struct Inc;
struct Get;
struct Fail;
struct FailWith(&'static str);
struct Panic;
struct Kids;

/// A supervision test subject: counts `Inc`, fails on demand, reports its
/// lifecycle, and spawns `kids` (named) whenever it starts.
struct Node {
    name: &'static str,
    log: Log,
    count: u64,
    kids: Vec<(&'static str, Props)>,
    spawned: Vec<Pid>,
}

impl Node {
    fn note(&self, ev: Ev) {
        let _ = self.log.send(Event { who: self.name, ev, at: Instant::now() });
    }
}

impl Actor for Node {
    async fn receive(&mut self, ctx: &mut Context) -> ActorResult {
        if ctx.message_is::<Started>() {
            self.note(Ev::Started);
            for (name, props) in self.kids.clone() {
                let pid = ctx.spawn_named(props, name).map_err(|e| ActorError::msg(e.to_string()))?;
                self.spawned.push(pid);
            }
        } else if ctx.message_is::<Restarting>() {
            self.note(Ev::Restarting);
        } else if ctx.message_is::<Stopping>() {
            self.note(Ev::Stopping);
        } else if ctx.message_is::<Stopped>() {
            self.note(Ev::Stopped);
        } else if let Some(t) = ctx.message::<Terminated>() {
            self.note(Ev::Terminated(t.who.id().to_string()));
        } else if ctx.message_is::<Inc>() {
            self.count += 1;
        } else if ctx.message_is::<Get>() {
            ctx.respond(self.count);
        } else if ctx.message_is::<Kids>() {
            ctx.respond(self.spawned.clone());
        } else if ctx.message_is::<Fail>() {
            self.note(Ev::Failed);
            return Err(ActorError::msg("boom"));
        } else if let Some(FailWith(reason)) = ctx.message::<FailWith>() {
            self.note(Ev::Failed);
            return Err(ActorError::msg(*reason));
        } else if ctx.message_is::<Panic>() {
            self.note(Ev::Failed);
            panic!("kaboom");
        }
        Ok(())
    }
}

fn node(name: &'static str, log: &Log, kids: Vec<(&'static str, Props)>) -> Props {
    let log = log.clone();
    Props::from_producer(move || Node { name, log: log.clone(), count: 0, kids: kids.clone(), spawned: Vec::new() })
}

/// Receives events until one matches `who` and `ev`; returns everything
/// received, the match last.
async fn until(rx: &mut mpsc::UnboundedReceiver<Event>, who: &str, ev: Ev) -> Vec<Event> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(e)) => {
                let done = e.who == who && e.ev == ev;
                seen.push(e);
                if done {
                    return seen;
                }
            }
            Ok(None) => panic!("event log closed while waiting for {who} {ev:?}; saw {seen:?}"),
            Err(_) => panic!("no {who} {ev:?} within {WAIT:?}; saw {seen:?}"),
        }
    }
}

/// Everything already logged, without waiting.
fn pending(rx: &mut mpsc::UnboundedReceiver<Event>) -> Vec<Event> {
    let mut seen = Vec::new();
    while let Ok(e) = rx.try_recv() {
        seen.push(e);
    }
    seen
}

fn position(events: &[Event], who: &str, ev: &Ev) -> usize {
    events.iter().position(|e| e.who == who && e.ev == *ev).unwrap_or_else(|| panic!("{who} {ev:?} not in {events:?}"))
}

fn count(events: &[Event], who: &str, ev: &Ev) -> usize {
    events.iter().filter(|e| e.who == who && e.ev == *ev).count()
}

async fn kids(root: &RootContext, parent: &Pid) -> Vec<Pid> {
    root.request_future::<Vec<Pid>, _>(parent, Kids, WAIT).await.expect("parent lists its children")
}

async fn get(root: &RootContext, pid: &Pid) -> u64 {
    root.request_future::<u64, _>(pid, Get, WAIT).await.expect("counter answers Get")
}

/// Collects `n` supervisor events as (child id, directive, reason).
async fn supervisor_events(
    rx: &mut mpsc::UnboundedReceiver<SupervisorEvent>,
    n: usize,
) -> Vec<(String, Directive, String)> {
    let mut out = Vec::new();
    for _ in 0..n {
        let e = tokio::time::timeout(WAIT, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} of {n} supervisor events arrived: {out:?}", out.len()))
            .expect("event stream channel open");
        out.push((e.child.id().to_string(), e.directive, e.reason.to_string()));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_for_one_default_restarts_only_the_failed_child_with_fresh_state() {
    let system = ActorSystem::new();
    let root = system.root();
    let (_sub, mut sup) = system.event_stream().subscribe_channel::<SupervisorEvent>();
    let (log, mut rx) = mpsc::unbounded_channel();
    let parent = root
        .spawn_named(
            node(
                "parent",
                &log,
                vec![("child", node("child", &log, vec![])), ("sibling", node("sibling", &log, vec![]))],
            ),
            "p",
        )
        .expect("spawn parent");
    let pids = kids(&root, &parent).await;
    let (child, sibling) = (&pids[0], &pids[1]);

    for _ in 0..3 {
        root.send(child, Inc);
        root.send(sibling, Inc);
    }
    assert_eq!(get(&root, child).await, 3);
    assert_eq!(get(&root, sibling).await, 3);
    let before = pending(&mut rx);
    assert_eq!(count(&before, "child", &Ev::Started), 1);

    root.send(child, Fail);
    let events = until(&mut rx, "child", Ev::Started).await;
    let failed = position(&events, "child", &Ev::Failed);
    let restarting = position(&events, "child", &Ev::Restarting);
    assert!(failed < restarting, "Restarting comes after the failure: {events:?}");
    assert_eq!(events.last().map(|e| &e.ev), Some(&Ev::Started));

    assert_eq!(get(&root, child).await, 0, "the producer made a fresh instance");
    assert_eq!(get(&root, sibling).await, 3, "one-for-one leaves siblings alone");
    let rest = pending(&mut rx);
    assert_eq!(count(&rest, "sibling", &Ev::Restarting), 0, "{rest:?}");
    assert!(!rest.iter().any(|e| matches!(e.ev, Ev::Terminated(_))), "nobody stopped: {rest:?}");
    assert_eq!(
        supervisor_events(&mut sup, 1).await,
        vec![("p/child".to_string(), Directive::Restart, "boom".to_string())]
    );
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_keeps_state_and_processing_continues() {
    let system = ActorSystem::new();
    let root = system.root();
    let (_sub, mut sup) = system.event_stream().subscribe_channel::<SupervisorEvent>();
    let (log, mut rx) = mpsc::unbounded_channel();
    let strategy = OneForOneStrategy::default().with_decider(|_, _| Directive::Resume);
    let parent =
        root.spawn(node("parent", &log, vec![("child", node("child", &log, vec![]))]).with_supervisor(strategy));
    let child = kids(&root, &parent).await.remove(0);

    for _ in 0..3 {
        root.send(&child, Inc);
    }
    root.send(&child, Fail);
    root.send(&child, Inc);
    assert_eq!(get(&root, &child).await, 4, "state survived the failure and later messages were handled");
    let events = pending(&mut rx);
    assert_eq!(count(&events, "child", &Ev::Failed), 1, "{events:?}");
    assert_eq!(count(&events, "child", &Ev::Restarting), 0, "{events:?}");
    assert_eq!(count(&events, "child", &Ev::Started), 1, "{events:?}");
    assert_eq!(supervisor_events(&mut sup, 1).await[0].1, Directive::Resume);
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_directive_stops_the_child_and_the_parent_gets_terminated() {
    let system = ActorSystem::new();
    let root = system.root();
    let (log, mut rx) = mpsc::unbounded_channel();
    let strategy = OneForOneStrategy::default().with_decider(|_, _| Directive::Stop);
    let parent = root
        .spawn_named(node("parent", &log, vec![("child", node("child", &log, vec![]))]).with_supervisor(strategy), "p")
        .expect("spawn parent");
    let child = kids(&root, &parent).await.remove(0);

    root.send(&child, Fail);
    let events = until(&mut rx, "parent", Ev::Terminated("p/child".into())).await;
    let stopping = position(&events, "child", &Ev::Stopping);
    let stopped = position(&events, "child", &Ev::Stopped);
    assert!(stopping < stopped, "{events:?}");
    assert_eq!(count(&events, "child", &Ev::Restarting), 0, "{events:?}");
    let after = root.request_future::<u64, _>(&child, Get, WAIT).await;
    assert!(matches!(after, Err(Error::DeadLetter { .. })), "stopped child is gone: {after:?}");
    assert_eq!(kids(&root, &parent).await.len(), 1, "parent itself is alive and answering");
    system.shutdown().await;
}

/// grandparent (strategy under test) -> child (escalates) -> grandchild (fails).
fn three_levels(log: &Log, grandparent_strategy: OneForOneStrategy) -> Props {
    let grandchild = node("grandchild", log, vec![]);
    let child = node("child", log, vec![("gc", grandchild)])
        .with_supervisor(OneForOneStrategy::default().with_decider(|_, _| Directive::Escalate));
    node("grandparent", log, vec![("c", child)]).with_supervisor(grandparent_strategy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escalation_through_two_levels_restarts_the_child_which_stops_the_grandchild() {
    let system = ActorSystem::new();
    let root = system.root();
    let (_sub, mut sup) = system.event_stream().subscribe_channel::<SupervisorEvent>();
    let (log, mut rx) = mpsc::unbounded_channel();
    let g = root.spawn_named(three_levels(&log, OneForOneStrategy::default()), "g").expect("spawn");
    let c = kids(&root, &g).await.remove(0);
    let gc = kids(&root, &c).await.remove(0);
    assert_eq!(gc.id(), "g/c/gc");
    root.send(&gc, Inc);
    assert_eq!(get(&root, &gc).await, 1);
    pending(&mut rx);

    root.send(&gc, Fail);
    // The restarted child spawns a fresh grandchild from its Started.
    let mut events = until(&mut rx, "child", Ev::Started).await;
    events.extend(until(&mut rx, "grandchild", Ev::Started).await);
    let restarting = position(&events, "child", &Ev::Restarting);
    let gc_stopping = position(&events, "grandchild", &Ev::Stopping);
    let gc_stopped = position(&events, "grandchild", &Ev::Stopped);
    let c_started = position(&events, "child", &Ev::Started);
    let gc_started = position(&events, "grandchild", &Ev::Started);
    assert!(restarting < gc_stopping && gc_stopping < gc_stopped, "{events:?}");
    assert!(
        gc_stopped < c_started && c_started < gc_started,
        "the child restarts once its children are gone: {events:?}"
    );
    assert_eq!(
        count(&events, "grandchild", &Ev::Restarting),
        0,
        "the grandchild is stopped, not restarted: {events:?}"
    );
    assert_eq!(count(&events, "grandparent", &Ev::Restarting), 0, "{events:?}");

    let directives = supervisor_events(&mut sup, 2).await;
    assert_eq!(
        directives.iter().map(|(who, d, _)| (who.as_str(), *d)).collect::<Vec<_>>(),
        vec![("g/c/gc", Directive::Escalate), ("g/c", Directive::Restart)]
    );
    assert_eq!(directives[1].2, "boom", "the grandchild's reason travels up");
    let new_gc = kids(&root, &c).await.remove(0);
    assert_eq!(get(&root, &new_gc).await, 0, "a new grandchild instance");
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escalation_through_two_levels_stops_the_child_and_the_grandchild() {
    let system = ActorSystem::new();
    let root = system.root();
    let (_sub, mut sup) = system.event_stream().subscribe_channel::<SupervisorEvent>();
    let (log, mut rx) = mpsc::unbounded_channel();
    let strategy = OneForOneStrategy::default().with_decider(|_, _| Directive::Stop);
    let g = root.spawn_named(three_levels(&log, strategy), "g").expect("spawn");
    let c = kids(&root, &g).await.remove(0);
    let gc = kids(&root, &c).await.remove(0);
    pending(&mut rx);

    root.send(&gc, Fail);
    let events = until(&mut rx, "grandparent", Ev::Terminated("g/c".into())).await;
    let c_stopping = position(&events, "child", &Ev::Stopping);
    let gc_stopped = position(&events, "grandchild", &Ev::Stopped);
    let c_stopped = position(&events, "child", &Ev::Stopped);
    assert!(c_stopping < gc_stopped && gc_stopped < c_stopped, "children stop before their parent: {events:?}");
    assert_eq!(count(&events, "child", &Ev::Restarting) + count(&events, "grandchild", &Ev::Restarting), 0);
    let directives = supervisor_events(&mut sup, 2).await;
    assert_eq!(
        directives.iter().map(|(who, d, _)| (who.as_str(), *d)).collect::<Vec<_>>(),
        vec![("g/c/gc", Directive::Escalate), ("g/c", Directive::Stop)]
    );
    assert!(matches!(root.request_future::<u64, _>(&gc, Get, WAIT).await, Err(Error::DeadLetter { .. })));
    assert!(kids(&root, &g).await.len() == 1, "the grandparent is unaffected");
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_limit_stops_the_child_on_the_fourth_failure_within_the_window() {
    let system = ActorSystem::new();
    let root = system.root();
    let (_sub, mut sup) = system.event_stream().subscribe_channel::<SupervisorEvent>();
    let (log, mut rx) = mpsc::unbounded_channel();
    let strategy = OneForOneStrategy::new(3, Duration::from_secs(60));
    let parent = root
        .spawn_named(node("parent", &log, vec![("child", node("child", &log, vec![]))]).with_supervisor(strategy), "p")
        .expect("spawn");
    let child = kids(&root, &parent).await.remove(0);

    for _ in 0..4 {
        root.send(&child, Fail);
    }
    let events = until(&mut rx, "parent", Ev::Terminated("p/child".into())).await;
    assert_eq!(count(&events, "child", &Ev::Failed), 4, "{events:?}");
    assert_eq!(count(&events, "child", &Ev::Restarting), 3, "{events:?}");
    assert_eq!(count(&events, "child", &Ev::Started), 4, "initial start plus three restarts: {events:?}");
    assert_eq!(count(&events, "child", &Ev::Stopped), 1, "{events:?}");
    let directives: Vec<Directive> = supervisor_events(&mut sup, 4).await.into_iter().map(|(_, d, _)| d).collect();
    assert_eq!(directives, vec![Directive::Restart, Directive::Restart, Directive::Restart, Directive::Stop]);
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_for_one_restarts_every_sibling() {
    let system = ActorSystem::new();
    let root = system.root();
    let (_sub, mut sup) = system.event_stream().subscribe_channel::<SupervisorEvent>();
    let (log, mut rx) = mpsc::unbounded_channel();
    let kids_props =
        vec![("a", node("a", &log, vec![])), ("b", node("b", &log, vec![])), ("c", node("c", &log, vec![]))];
    let parent = root
        .spawn_named(
            node("parent", &log, kids_props).with_supervisor(AllForOneStrategy::new(10, Duration::from_secs(10))),
            "p",
        )
        .expect("spawn");
    let pids = kids(&root, &parent).await;
    for pid in &pids {
        root.send(pid, Inc);
        assert_eq!(get(&root, pid).await, 1);
    }
    pending(&mut rx);

    root.send(&pids[0], Fail);
    let mut events = Vec::new();
    for who in ["a", "b", "c"] {
        if count(&events, who, &Ev::Started) == 0 {
            events.extend(until(&mut rx, who, Ev::Started).await);
        }
    }
    for who in ["a", "b", "c"] {
        assert!(position(&events, who, &Ev::Restarting) < position(&events, who, &Ev::Started), "{who}: {events:?}");
    }
    for pid in &pids {
        assert_eq!(get(&root, pid).await, 0, "{pid} was restarted with fresh state");
    }
    let directives = supervisor_events(&mut sup, 1).await;
    assert_eq!(directives[0].0, "p/a");
    assert_eq!(directives[0].1, Directive::Restart);
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exponential_backoff_delays_each_restart_longer() {
    let system = ActorSystem::new();
    let root = system.root();
    let (log, mut rx) = mpsc::unbounded_channel();
    let initial = Duration::from_millis(100);
    let strategy = ExponentialBackoffStrategy::new(Duration::from_secs(60), initial).with_jitter(Duration::ZERO);
    let parent =
        root.spawn(node("parent", &log, vec![("child", node("child", &log, vec![]))]).with_supervisor(strategy));
    let child = kids(&root, &parent).await.remove(0);
    // Once it answers, its first Started is logged and out of the way.
    assert_eq!(get(&root, &child).await, 0);
    pending(&mut rx);

    let mut delays = Vec::new();
    for _ in 0..2 {
        root.send(&child, Fail);
        let events = until(&mut rx, "child", Ev::Started).await;
        let failed = &events[position(&events, "child", &Ev::Failed)];
        let started = events.last().expect("non-empty");
        delays.push(started.at.duration_since(failed.at));
    }
    assert!(delays[0] >= initial, "first restart waits the initial backoff: {delays:?}");
    assert!(delays[1] >= initial * 2, "second restart waits twice as long: {delays:?}");
    assert!(delays[1] > delays[0], "{delays:?}");
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_restart_ignores_restart_limits() {
    let system = ActorSystem::new();
    let root = system.root();
    let (_sub, mut sup) = system.event_stream().subscribe_channel::<SupervisorEvent>();
    let (log, mut rx) = mpsc::unbounded_channel();
    let parent = root.spawn(
        node("parent", &log, vec![("child", node("child", &log, vec![]))]).with_supervisor(AlwaysRestartStrategy),
    );
    let child = kids(&root, &parent).await.remove(0);

    // Well past the default limit of 10 restarts in 10 s.
    let failures = 25;
    for _ in 0..failures {
        root.send(&child, Fail);
    }
    root.send(&child, Inc);
    assert_eq!(get(&root, &child).await, 1, "still alive after {failures} failures");
    let events = pending(&mut rx);
    assert_eq!(count(&events, "child", &Ev::Restarting), failures, "{events:?}");
    assert_eq!(count(&events, "child", &Ev::Stopped), 0);
    let directives = supervisor_events(&mut sup, failures).await;
    assert!(directives.iter().all(|(_, d, _)| *d == Directive::Restart), "{directives:?}");
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panic_in_receive_is_a_failure_like_an_error() {
    let system = ActorSystem::new();
    let root = system.root();
    let (_sub, mut sup) = system.event_stream().subscribe_channel::<SupervisorEvent>();
    let (log, mut rx) = mpsc::unbounded_channel();
    let parent = root.spawn(node("parent", &log, vec![("child", node("child", &log, vec![]))]));
    let child = kids(&root, &parent).await.remove(0);
    root.send(&child, Inc);
    root.send(&child, Inc);

    assert_eq!(get(&root, &child).await, 2);
    pending(&mut rx);

    root.send(&child, Panic);
    let mut events = until(&mut rx, "child", Ev::Restarting).await;
    events.extend(until(&mut rx, "child", Ev::Started).await);
    assert!(position(&events, "child", &Ev::Failed) < position(&events, "child", &Ev::Restarting), "{events:?}");
    assert_eq!(get(&root, &child).await, 0, "restarted after the panic");
    let e = tokio::time::timeout(WAIT, sup.recv()).await.expect("supervisor event").expect("open");
    assert_eq!(e.child, child);
    assert_eq!(e.directive, Directive::Restart);
    assert!(e.reason.is_panic(), "reason marks a panic: {}", e.reason);
    assert!(e.reason.to_string().contains("kaboom"), "{}", e.reason);
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervisor_event_carries_child_reason_and_chosen_directive() {
    let system = ActorSystem::new();
    let root = system.root();
    let (_sub, mut sup) = system.event_stream().subscribe_channel::<SupervisorEvent>();
    let (log, _rx) = mpsc::unbounded_channel();
    let decider = |_: &Pid, reason: &ActorError| match reason.to_string().as_str() {
        "please resume" => Directive::Resume,
        "please restart" => Directive::Restart,
        _ => Directive::Stop,
    };
    let strategy = OneForOneStrategy::default().with_decider(decider);
    let parent = root
        .spawn_named(node("parent", &log, vec![("child", node("child", &log, vec![]))]).with_supervisor(strategy), "p")
        .expect("spawn");
    let child = kids(&root, &parent).await.remove(0);

    root.send(&child, FailWith("please resume"));
    root.send(&child, FailWith("please restart"));
    root.send(&child, FailWith("please stop"));
    let got = supervisor_events(&mut sup, 3).await;
    let expected = [
        (Directive::Resume, "please resume"),
        (Directive::Restart, "please restart"),
        (Directive::Stop, "please stop"),
    ]
    .map(|(d, r)| ("p/child".to_string(), d, r.to_string()));
    assert_eq!(got, expected.to_vec());
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_actors_are_supervised_by_the_default_guardian() {
    let system = ActorSystem::new();
    let root = system.root();
    let (log, mut rx) = mpsc::unbounded_channel();
    let pid = root.spawn(node("top", &log, vec![]));
    root.send(&pid, Inc);
    root.send(&pid, Fail);
    assert_eq!(get(&root, &pid).await, 0, "the default guardian restarts");
    assert_eq!(count(&pending(&mut rx), "top", &Ev::Restarting), 1);
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guardian_strategy_from_config_resumes_root_actors() {
    let config = ActorSystemConfig::default()
        .with_guardian_strategy(OneForOneStrategy::default().with_decider(|_, _| Directive::Resume));
    let system = ActorSystem::with_config(config);
    let root = system.root();
    let (_sub, mut sup) = system.event_stream().subscribe_channel::<SupervisorEvent>();
    let (log, mut rx) = mpsc::unbounded_channel();
    let pid = root.spawn(node("top", &log, vec![]));
    root.send(&pid, Inc);
    root.send(&pid, Fail);
    root.send(&pid, Inc);
    assert_eq!(get(&root, &pid).await, 2, "resumed, state kept");
    assert_eq!(count(&pending(&mut rx), "top", &Ev::Restarting), 0);
    let e = supervisor_events(&mut sup, 1).await.remove(0);
    assert_eq!((e.0.as_str(), e.1), (pid.id(), Directive::Resume));
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guardian_strategy_from_config_stops_root_actors() {
    let config = ActorSystemConfig::default()
        .with_guardian_strategy(OneForOneStrategy::default().with_decider(|_, _| Directive::Stop));
    let system = ActorSystem::with_config(config);
    let root = system.root();
    let (log, mut rx) = mpsc::unbounded_channel();
    let pid = root.spawn(node("top", &log, vec![]));
    root.send(&pid, Fail);
    let events = until(&mut rx, "top", Ev::Stopped).await;
    assert_eq!(count(&events, "top", &Ev::Restarting), 0, "{events:?}");
    assert!(matches!(root.request_future::<u64, _>(&pid, Get, WAIT).await, Err(Error::DeadLetter { .. })));
    system.shutdown().await;
}
