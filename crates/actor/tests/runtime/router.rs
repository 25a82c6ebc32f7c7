//! Routers: distribution per strategy, runtime routee management, pools and
//! request forwarding.

// `Pid` caches its resolved process in a `OnceLock`, but its `Hash`/`Eq` use
// only the address, id and request id, so it is a sound map key.
#![allow(clippy::mutable_key_type)]

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use protoactor_actor::prelude::*;
use protoactor_actor::router::{self, AddRoutee, BroadcastMessage, GetRoutees, RemoveRoutee, Routees};
use protoactor_actor::{DeadLetterEvent, MessageHeader};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

const WAIT: Duration = Duration::from_secs(5);

/// A routed work item; routees report `(self, n)`.
#[derive(Debug, Clone)]
struct Hit(u32);

/// A message no router is told how to copy or hash.
#[derive(Debug)]
struct Opaque;

/// A keyed request; routees answer with their own pid.
#[derive(Debug, Clone)]
struct Keyed(String);

/// Asks a routee who it is; answered with its pid.
#[derive(Debug)]
struct WhoAreYou;

/// Asks a routee for the value of header `trace`; answered with `Option<String>`.
#[derive(Debug)]
struct TraceHeader;

/// A routee that reports every `Hit` and `Opaque` and answers requests.
fn reporter(tx: UnboundedSender<(Pid, u32)>) -> Props {
    Props::from_fn(move |ctx| {
        if let Some(Hit(n)) = ctx.message::<Hit>() {
            let _ = tx.send((ctx.self_pid().clone(), *n));
        } else if ctx.message_is::<Opaque>() {
            let _ = tx.send((ctx.self_pid().clone(), u32::MAX));
        } else if ctx.message_is::<Keyed>() || ctx.message_is::<WhoAreYou>() {
            ctx.respond(ctx.self_pid().clone());
        } else if ctx.message_is::<TraceHeader>() {
            ctx.respond(ctx.header().and_then(|h| h.get("trace")).map(str::to_string));
        }
        Ok(())
    })
}

/// Receives exactly `n` reports, failing the test on a timeout.
async fn collect(rx: &mut UnboundedReceiver<(Pid, u32)>, n: usize) -> Vec<(Pid, u32)> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        match tokio::time::timeout(WAIT, rx.recv()).await {
            Ok(Some(report)) => out.push(report),
            other => panic!("expected {n} reports, got {} then {other:?}", out.len()),
        }
    }
    out
}

fn count_by_pid(reports: &[(Pid, u32)]) -> HashMap<Pid, usize> {
    let mut counts = HashMap::new();
    for (pid, _) in reports {
        *counts.entry(pid.clone()).or_insert(0) += 1;
    }
    counts
}

async fn routees(root: &RootContext, router: &Pid) -> Vec<Pid> {
    let Routees(pids) = root.request_future(router, GetRoutees, WAIT).await.expect("router answers GetRoutees");
    pids
}

/// Polls `GetRoutees` until it equals `expected` (termination notices reach
/// the router asynchronously).
async fn wait_for_routees(root: &RootContext, router: &Pid, expected: &[Pid]) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let current = routees(root, router).await;
        if current == expected {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "routees stayed {current:?}, expected {expected:?}");
        tokio::task::yield_now().await;
    }
}

fn spawn_reporters(root: &RootContext, n: usize, tx: &UnboundedSender<(Pid, u32)>) -> Vec<Pid> {
    (0..n).map(|_| root.spawn(reporter(tx.clone()))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_group_is_exactly_even_and_in_order() {
    let system = ActorSystem::new();
    let root = system.root();
    let (tx, mut rx) = unbounded_channel();
    let pids = spawn_reporters(&root, 3, &tx);
    let router = root.spawn(router::round_robin_group(pids.clone()));

    for n in 0..30 {
        root.send(&router, Hit(n));
    }
    let reports = collect(&mut rx, 30).await;
    let counts = count_by_pid(&reports);
    for pid in &pids {
        assert_eq!(counts.get(pid), Some(&10), "counts {counts:?}");
    }
    // Message n goes to routee n mod 3, in the order the routees were given.
    for (pid, n) in &reports {
        assert_eq!(pid, &pids[*n as usize % 3], "message {n}");
    }
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_pool_is_exactly_even_over_its_children() {
    let system = ActorSystem::new();
    let root = system.root();
    let (tx, mut rx) = unbounded_channel();
    let router = root.spawn(router::round_robin_pool(reporter(tx), 4));

    for n in 0..40 {
        root.send(&router, Hit(n));
    }
    let counts = count_by_pid(&collect(&mut rx, 40).await);
    assert_eq!(counts.len(), 4, "counts {counts:?}");
    assert!(counts.values().all(|c| *c == 10), "counts {counts:?}");
    let children: HashSet<Pid> = routees(&root, &router).await.into_iter().collect();
    assert_eq!(counts.keys().cloned().collect::<HashSet<_>>(), children);
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_group_hits_every_routee_and_nothing_else() {
    let system = ActorSystem::new();
    let root = system.root();
    let (tx, mut rx) = unbounded_channel();
    let pids = spawn_reporters(&root, 3, &tx);
    // Reports to the same channel, but must never be chosen.
    let outsider = root.spawn(reporter(tx.clone()));
    let router = root.spawn(router::random_group(pids.clone()));

    for n in 0..300 {
        root.send(&router, Hit(n));
    }
    let counts = count_by_pid(&collect(&mut rx, 300).await);
    assert!(!counts.contains_key(&outsider), "a non-routee was picked: {counts:?}");
    // Missing one of 3 routees in 300 fair picks has probability ~1e-52.
    for pid in &pids {
        assert!(counts.get(pid).is_some_and(|c| *c > 0), "{pid} never picked: {counts:?}");
    }
    assert_eq!(counts.values().sum::<usize>(), 300);
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_pool_hits_every_child() {
    let system = ActorSystem::new();
    let root = system.root();
    let (tx, mut rx) = unbounded_channel();
    let router = root.spawn(router::random_pool(reporter(tx), 3));

    for n in 0..300 {
        root.send(&router, Hit(n));
    }
    let counts = count_by_pid(&collect(&mut rx, 300).await);
    let children: HashSet<Pid> = routees(&root, &router).await.into_iter().collect();
    assert_eq!(children.len(), 3);
    assert_eq!(counts.keys().cloned().collect::<HashSet<_>>(), children, "counts {counts:?}");
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_group_delivers_every_message_to_every_routee() {
    let system = ActorSystem::new();
    let root = system.root();
    let (tx, mut rx) = unbounded_channel();
    let pids = spawn_reporters(&root, 3, &tx);
    let router = root.spawn(router::broadcast_group(pids.clone()).with_clone::<Hit>().props());

    for n in 0..5 {
        root.send(&router, Hit(n));
    }
    let reports = collect(&mut rx, 15).await;
    for pid in &pids {
        let got: Vec<u32> = reports.iter().filter(|(p, _)| p == pid).map(|(_, n)| *n).collect();
        assert_eq!(got, vec![0, 1, 2, 3, 4], "{pid} got {got:?}");
    }
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_pool_delivers_to_all_children() {
    let system = ActorSystem::new();
    let root = system.root();
    let (tx, mut rx) = unbounded_channel();
    let router = root.spawn(router::broadcast_pool(reporter(tx), 4).with_clone::<Hit>().props());

    root.send(&router, Hit(7));
    let reports = collect(&mut rx, 4).await;
    let children: HashSet<Pid> = routees(&root, &router).await.into_iter().collect();
    assert_eq!(children.len(), 4);
    assert_eq!(reports.iter().map(|(p, _)| p.clone()).collect::<HashSet<_>>(), children);
    assert!(reports.iter().all(|(_, n)| *n == 7));
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_of_an_unregistered_type_goes_to_dead_letters() {
    let system = ActorSystem::new();
    let root = system.root();
    let (dl_tx, mut dl_rx) = unbounded_channel();
    system
        .event_stream()
        .subscribe::<DeadLetterEvent>(move |e| {
            let _ = dl_tx.send((e.pid.clone(), e.message.type_name()));
        })
        .forget();
    let (tx, mut rx) = unbounded_channel();
    let pids = spawn_reporters(&root, 2, &tx);
    let router = root.spawn(router::broadcast_group(pids.clone()).with_clone::<Hit>().props());

    root.send(&router, Opaque);
    let (target, type_name) = tokio::time::timeout(WAIT, dl_rx.recv()).await.expect("dead letter").expect("open");
    assert_eq!(target, router);
    assert!(type_name.ends_with("Opaque"), "{type_name}");

    // Each routee sees the router's messages in order: if the marker arrives
    // first, `Opaque` was never delivered.
    root.send(&router, Hit(1));
    let reports = collect(&mut rx, 2).await;
    assert!(reports.iter().all(|(_, n)| *n == 1), "Opaque leaked to a routee: {reports:?}");
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_message_reaches_all_routees_of_any_router() {
    let system = ActorSystem::new();
    let root = system.root();
    let (tx, mut rx) = unbounded_channel();
    let pids = spawn_reporters(&root, 3, &tx);
    let router = root.spawn(router::round_robin_group(pids.clone()));

    root.send(&router, BroadcastMessage::new(Hit(9)));
    let reports = collect(&mut rx, 3).await;
    assert_eq!(reports.iter().map(|(p, _)| p.clone()).collect::<HashSet<_>>(), pids.iter().cloned().collect());
    assert!(reports.iter().all(|(_, n)| *n == 9));

    // The round-robin position is unaffected: the next message goes to the first routee.
    root.send(&router, Hit(0));
    assert_eq!(collect(&mut rx, 1).await[0].0, pids[0]);
    system.shutdown().await;
}

async fn owners(root: &RootContext, router: &Pid, keys: &[String]) -> Vec<Pid> {
    let mut out = Vec::with_capacity(keys.len());
    for key in keys {
        out.push(root.request_future::<Pid, _>(router, Keyed(key.clone()), WAIT).await.expect("keyed reply"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_hash_is_sticky_and_removing_a_routee_moves_only_its_keys() {
    let system = ActorSystem::new();
    let root = system.root();
    let (tx, _rx) = unbounded_channel();
    let pids = spawn_reporters(&root, 5, &tx);
    let router = root.spawn(router::consistent_hash_group(pids.clone()).with_key::<Keyed>(|k| k.0.clone()).props());
    let keys: Vec<String> = (0..1000).map(|i| format!("user-{i}")).collect();

    let before = owners(&root, &router, &keys).await;
    assert_eq!(owners(&root, &router, &keys).await, before, "same key, same routee");
    let per_routee = count_by_pid(&before.iter().map(|p| (p.clone(), 0)).collect::<Vec<_>>());
    assert_eq!(per_routee.len(), 5, "every routee owns keys: {per_routee:?}");

    let victim = pids[2].clone();
    root.send(&router, RemoveRoutee(victim.clone()));
    let after = owners(&root, &router, &keys).await;
    let mut moved = 0;
    for ((key, b), a) in keys.iter().zip(&before).zip(&after) {
        assert_ne!(a, &victim, "{key} still routed to the removed routee");
        if *b == victim {
            moved += 1;
        } else {
            assert_eq!(a, b, "{key} moved although its routee stayed");
        }
    }
    assert_eq!(moved, per_routee[&victim]);

    // Adding it back restores the original mapping (the ring ignores order).
    root.send(&router, AddRoutee(victim));
    assert_eq!(owners(&root, &router, &keys).await, before);
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_hash_without_a_key_extractor_dead_letters() {
    let system = ActorSystem::new();
    let root = system.root();
    let (tx, _rx) = unbounded_channel();
    let router = root.spawn(router::consistent_hash_pool(reporter(tx), 3).with_key::<Keyed>(|k| k.0.clone()).props());

    let err = root.request_future::<Pid, _>(&router, WhoAreYou, WAIT).await.expect_err("no key for WhoAreYou");
    assert!(matches!(err, Error::DeadLetter { ref target } if *target == router), "{err:?}");
    // Keyed messages still route.
    let owner: Pid = root.request_future(&router, Keyed("k".into()), WAIT).await.expect("keyed reply");
    assert!(routees(&root, &router).await.contains(&owner));
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adding_and_removing_routees_changes_the_routing() {
    let system = ActorSystem::new();
    let root = system.root();
    let (tx, mut rx) = unbounded_channel();
    let a = root.spawn(reporter(tx.clone()));
    let b = root.spawn(reporter(tx.clone()));
    let router = root.spawn(router::round_robin_group([a.clone()]));

    for n in 0..2 {
        root.send(&router, Hit(n));
    }
    assert_eq!(count_by_pid(&collect(&mut rx, 2).await), HashMap::from([(a.clone(), 2)]));

    root.send(&router, AddRoutee(b.clone()));
    for n in 0..4 {
        root.send(&router, Hit(n));
    }
    assert_eq!(count_by_pid(&collect(&mut rx, 4).await), HashMap::from([(a.clone(), 2), (b.clone(), 2)]));

    root.send(&router, RemoveRoutee(a.clone()));
    for n in 0..3 {
        root.send(&router, Hit(n));
    }
    assert_eq!(count_by_pid(&collect(&mut rx, 3).await), HashMap::from([(b.clone(), 3)]));

    // Without routees a request fails at once instead of timing out.
    root.send(&router, RemoveRoutee(b));
    let err = root.request_future::<Pid, _>(&router, WhoAreYou, WAIT).await.expect_err("no routees");
    assert!(matches!(err, Error::DeadLetter { .. }), "{err:?}");
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_routees_reflects_changes_and_terminations() {
    let system = ActorSystem::new();
    let root = system.root();
    let (tx, _rx) = unbounded_channel();
    let [a, b, c]: [Pid; 3] = spawn_reporters(&root, 3, &tx).try_into().expect("three pids");
    let router = root.spawn(router::random_group([a.clone(), b.clone()]));

    assert_eq!(routees(&root, &router).await, vec![a.clone(), b.clone()]);
    root.send(&router, AddRoutee(c.clone()));
    assert_eq!(routees(&root, &router).await, vec![a.clone(), b.clone(), c.clone()]);
    root.send(&router, RemoveRoutee(a.clone()));
    assert_eq!(routees(&root, &router).await, vec![b.clone(), c.clone()]);
    root.send(&router, AddRoutee(b.clone()));
    assert_eq!(routees(&root, &router).await, vec![b.clone(), c.clone()], "no duplicates");

    // A removed group routee is not the router's to stop.
    let who: Pid = root.request_future(&a, WhoAreYou, WAIT).await.expect("a still alive");
    assert_eq!(who, a);

    // A routee that stops is dropped.
    root.stop_future(&c).await;
    wait_for_routees(&root, &router, std::slice::from_ref(&b)).await;
    system.shutdown().await;
}

/// Watches pids on request and reports their termination.
fn watcher(tx: UnboundedSender<Pid>) -> Props {
    Props::from_fn(move |ctx| {
        if let Some(pid) = ctx.message::<Pid>() {
            let pid = pid.clone();
            ctx.watch(&pid);
            ctx.respond(());
        } else if let Some(t) = ctx.message::<Terminated>() {
            let _ = tx.send(t.who.clone());
        }
        Ok(())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_spawns_children_and_stopping_the_router_stops_them() {
    let system = ActorSystem::new();
    let root = system.root();
    let (tx, _rx) = unbounded_channel();
    let router = root.spawn(router::round_robin_pool(reporter(tx), 5));

    let children = routees(&root, &router).await;
    assert_eq!(children.len(), 5);
    assert_eq!(children.iter().collect::<HashSet<_>>().len(), 5, "distinct: {children:?}");
    let (dead_tx, mut dead_rx) = unbounded_channel();
    let watcher = root.spawn(watcher(dead_tx));
    for child in &children {
        assert!(child.id().starts_with(&format!("{}/", router.id())), "{child} is not a child of {router}");
        let who: Pid = root.request_future(child, WhoAreYou, WAIT).await.expect("child alive");
        assert_eq!(&who, child);
        root.request_future::<(), _>(&watcher, child.clone(), WAIT).await.expect("watching");
    }

    root.stop_future(&router).await;
    let mut stopped = HashSet::new();
    while stopped.len() < 5 {
        let who = tokio::time::timeout(WAIT, dead_rx.recv()).await.expect("Terminated in time").expect("open");
        stopped.insert(who);
    }
    assert_eq!(stopped, children.into_iter().collect());
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_drops_a_child_that_stops_and_stops_a_removed_child() {
    let system = ActorSystem::new();
    let root = system.root();
    let (tx, _rx) = unbounded_channel();
    let router = root.spawn(router::random_pool(reporter(tx), 3));
    let children = routees(&root, &router).await;
    assert_eq!(children.len(), 3);

    root.stop_future(&children[0]).await;
    wait_for_routees(&root, &router, &children[1..]).await;

    // Removing a child from a pool poisons it: it is owned by the router.
    let (dead_tx, mut dead_rx) = unbounded_channel();
    let watcher = root.spawn(watcher(dead_tx));
    root.request_future::<(), _>(&watcher, children[1].clone(), WAIT).await.expect("watching");
    root.send(&router, RemoveRoutee(children[1].clone()));
    let who = tokio::time::timeout(WAIT, dead_rx.recv()).await.expect("removed child stops").expect("open");
    assert_eq!(who, children[1]);
    assert_eq!(routees(&root, &router).await, vec![children[2].clone()]);
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_through_a_router_is_answered_by_the_routee() {
    let system = ActorSystem::new();
    let root = system.root();
    let (tx, _rx) = unbounded_channel();
    let pids = spawn_reporters(&root, 2, &tx);
    let router = root.spawn(router::round_robin_group(pids.clone()));

    let first: Pid = root.request_future(&router, WhoAreYou, WAIT).await.expect("reply via router");
    let second: Pid = root.request_future(&router, WhoAreYou, WAIT).await.expect("reply via router");
    assert_eq!(vec![first, second], pids, "answered by the routees in turn");

    // Headers travel with the forwarded message.
    let traced = root.clone().with_header(MessageHeader::new().with("trace", "abc"));
    let seen: Option<String> = traced.request_future(&router, TraceHeader, WAIT).await.expect("reply");
    assert_eq!(seen.as_deref(), Some("abc"));

    // The same through a pool, a broadcast router with one routee and a consistent-hash pool.
    let pool = root.spawn(router::round_robin_pool(reporter(tx.clone()), 2));
    let who: Pid = root.request_future(&pool, WhoAreYou, WAIT).await.expect("pool reply");
    assert!(routees(&root, &pool).await.contains(&who));
    let single = root.spawn(router::broadcast_group([pids[1].clone()]).props());
    let who: Pid = root.request_future(&single, WhoAreYou, WAIT).await.expect("broadcast reply");
    assert_eq!(who, pids[1]);
    let hashed = root.spawn(router::consistent_hash_pool(reporter(tx), 3).with_key::<Keyed>(|k| k.0.clone()).props());
    let who: Pid = root.request_future(&hashed, Keyed("x".into()), WAIT).await.expect("hash reply");
    assert!(routees(&root, &hashed).await.contains(&who));
    system.shutdown().await;
}
