//! Names: one winner when many tasks race for a name, duplicates are errors
//! (not panics), names are free again once their actor stops, and generated
//! names are unique.

use crate::common;

use std::collections::HashSet;
use std::sync::Arc;

use common::{WAIT, recv_within};
use protoactor_actor::{ActorSystem, Context, Error, Pid, Props, Started};
use tokio::sync::Barrier;
use tokio::sync::mpsc::unbounded_channel;

fn idle() -> Props {
    Props::from_fn(|_| Ok(()))
}

/// Answers any `&str` with its own id.
fn id_responder() -> Props {
    Props::from_fn(|ctx: &mut Context| {
        if ctx.message_is::<&'static str>() {
            ctx.respond(ctx.self_pid().id().to_string());
        }
        Ok(())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_spawns_of_one_name_have_exactly_one_winner() {
    let system = ActorSystem::new();
    const TASKS: usize = 64;
    let barrier = Arc::new(Barrier::new(TASKS));
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let root = system.root();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            root.spawn_named(id_responder(), "contested")
        }));
    }
    let mut winners = Vec::new();
    let mut losers = 0;
    for task in tasks {
        match task.await.expect("spawn task must not panic") {
            Ok(pid) => winners.push(pid),
            Err(Error::NameExists(name)) => {
                assert_eq!(name, "contested");
                losers += 1;
            }
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1);
    assert_eq!(losers, TASKS - 1);
    assert_eq!(system.actor_count(), 1, "a losing spawn must not leave an actor behind");
    let id: String = system.root().request_future(&winners[0], "who", WAIT).await.expect("the winner runs");
    assert_eq!(id, "contested");
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_name_is_an_error_from_root_and_from_a_context() {
    let system = ActorSystem::new();
    system.root().spawn_named(idle(), "taken").expect("fresh name");
    let again = system.root().spawn_named(idle(), "taken");
    assert!(matches!(&again, Err(Error::NameExists(n)) if n == "taken"), "{again:?}");

    let (tx, mut rx) = unbounded_channel();
    let parent = system.root().spawn(Props::from_fn(move |ctx: &mut Context| {
        if ctx.message_is::<Started>() {
            let first = ctx.spawn_named(idle(), "kid");
            let second = ctx.spawn_named(idle(), "kid");
            let _ = tx.send((first, second, ctx.children().len()));
        }
        Ok(())
    }));
    let (first, second, children) = recv_within(&mut rx, WAIT).await;
    assert_eq!(first.expect("fresh child name").id(), format!("{}/kid", parent.id()));
    let expected_id = format!("{}/kid", parent.id());
    assert!(matches!(&second, Err(Error::NameExists(n)) if *n == expected_id), "{second:?}");
    assert_eq!(children, 1, "the failed spawn must not be listed as a child");
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_is_free_again_once_its_actor_has_stopped() {
    let system = ActorSystem::new();
    let first = system.root().spawn_named(id_responder(), "reusable").expect("fresh name");
    system.root().stop_future(&first).await;
    let second = system.root().spawn_named(id_responder(), "reusable").expect("the name was released");
    let id: String = system.root().request_future(&second, "who", WAIT).await.expect("the new actor runs");
    assert_eq!(id, "reusable");

    // Same after a poison.
    system.root().poison_future(&second).await;
    system.root().spawn_named(idle(), "reusable").expect("the name was released after poison");
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_child_name_under_different_parents_is_fine() {
    let system = ActorSystem::new();
    let (tx, mut rx) = unbounded_channel();
    let props = Props::from_fn(move |ctx: &mut Context| {
        if ctx.message_is::<Started>() {
            let _ = tx.send(ctx.spawn_named(idle(), "worker"));
        }
        Ok(())
    });
    let a = system.root().spawn(props.clone());
    let b = system.root().spawn(props);
    let mut ids: Vec<String> = Vec::new();
    for _ in 0..2 {
        ids.push(recv_within(&mut rx, WAIT).await.expect("distinct parents, distinct ids").id().to_string());
    }
    ids.sort();
    let mut expected = vec![format!("{}/worker", a.id()), format!("{}/worker", b.id())];
    expected.sort();
    assert_eq!(ids, expected);
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_names_are_unique_under_concurrency() {
    let system = ActorSystem::new();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let root = system.root();
        tasks.push(tokio::spawn(async move {
            (0..250)
                .map(|i| if i % 2 == 0 { root.spawn(idle()) } else { root.spawn_prefix(idle(), "p") })
                .collect::<Vec<Pid>>()
        }));
    }
    let mut ids = HashSet::new();
    for task in tasks {
        for pid in task.await.expect("spawn task") {
            assert!(ids.insert(pid.id().to_string()), "duplicate id {pid}");
        }
    }
    assert_eq!(ids.len(), 2000);
    assert_eq!(system.actor_count(), 2000);
    system.shutdown().await;
    assert_eq!(system.actor_count(), 0);
}
