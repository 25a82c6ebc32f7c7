//! Lanes: an idle lane takes over part of a busy lane's backlog.

use std::collections::HashSet;
use std::thread::ThreadId;
use std::time::Duration;

use protoactor_actor::prelude::*;
use tokio::sync::mpsc;

use crate::common::{WAIT, recv_n};

struct Work;
struct Ping;

/// One actor wakes eight others, which all queue on its lane; the idle lane
/// is started and steals part of them, so they run on more than one thread.
/// (Driven from a task: sends from outside the runtime's tasks would make the
/// lanes linger, and a lingering lane is not started again.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_lane_steals_from_a_backlog() {
    let system = ActorSystem::new();
    let (report, mut reports) = mpsc::unbounded_channel::<ThreadId>();
    let driver = tokio::spawn({
        let system = system.clone();
        async move {
            let workers: Vec<Pid> = (0..8)
                .map(|_| {
                    let report = report.clone();
                    system.root().spawn(Props::from_fn(move |ctx: &mut Context| {
                        if ctx.message_is::<Work>() {
                            // Long enough for the other lane to start and steal.
                            std::thread::sleep(Duration::from_millis(20));
                            let _ = report.send(std::thread::current().id());
                        } else if ctx.message_is::<Ping>() {
                            ctx.respond(());
                        }
                        Ok(())
                    }))
                })
                .collect();
            // Started and parked: the boss's sends wake them onto the boss's lane.
            for worker in &workers {
                system.root().request_future::<(), _>(worker, Ping, WAIT).await.expect("worker answers");
            }
            let boss = system.root().spawn(Props::from_fn(move |ctx: &mut Context| {
                if ctx.message_is::<Work>() {
                    for worker in &workers {
                        ctx.send(worker, Work);
                    }
                }
                Ok(())
            }));
            system.root().send(&boss, Work);
        }
    });
    driver.await.expect("driver");
    let threads: HashSet<ThreadId> = recv_n(&mut reports, 8, WAIT).await.into_iter().collect();
    assert!(threads.len() >= 2, "all eight ran on one thread: nothing was stolen");
    system.shutdown().await;
}
