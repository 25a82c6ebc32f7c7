//! Supervision: what a parent does when a child fails.
//!
//! 1. A one-for-one strategy restarts a failing child (fresh state,
//!    `Restarting` then `Started`), until its restart limit turns a restart
//!    into a stop.
//! 2. A supervisor that escalates: the failure goes one level up and the
//!    grandparent restarts the whole subtree.
//! 3. A decider that resumes on a transient failure (state kept) and restarts
//!    on anything else.
//!
//! `cargo run --example supervision`

#![forbid(unsafe_code)]
use std::time::Duration;

use protoactor_actor::prelude::*;
use protoactor_actor::{Directive, OneForOneStrategy, SupervisorEvent};

const TIMEOUT: Duration = Duration::from_secs(2);

/// Makes the worker count one unit of work.
struct Work;
/// Asks the worker for its count (answered with a `u64`).
struct Count;
/// Makes the worker fail with this reason.
struct Fail(&'static str);
/// Asks a parent for its child's pid (answered with an `Option<Pid>`).
struct GetChild;

/// A worker with state that a restart throws away.
struct Worker {
    count: u64,
}

impl Actor for Worker {
    async fn receive(&mut self, ctx: &mut Context) -> ActorResult {
        let me = ctx.self_pid().id().to_string();
        if ctx.message_is::<Started>() {
            println!("  {me}: Started (count = {})", self.count);
        } else if ctx.message_is::<Restarting>() {
            println!("  {me}: Restarting (this instance had count = {})", self.count);
        } else if ctx.message_is::<Stopped>() {
            println!("  {me}: Stopped");
        } else if ctx.message_is::<Work>() {
            self.count += 1;
        } else if ctx.message_is::<Count>() {
            ctx.respond(self.count);
        } else if let Some(Fail(reason)) = ctx.message::<Fail>() {
            println!("  {me}: failing with \"{reason}\"");
            // A returned error (or a panic) is a failure for the supervisor.
            return Err(ActorError::msg(*reason));
        }
        Ok(())
    }
}

/// Spawns one child when it starts and supervises it with the strategy of
/// its own props.
struct Parent {
    child_props: Props,
    child: Option<Pid>,
}

impl Actor for Parent {
    async fn receive(&mut self, ctx: &mut Context) -> ActorResult {
        let me = ctx.self_pid().id().to_string();
        if ctx.message_is::<Started>() {
            let child = ctx.spawn_prefix(self.child_props.clone(), "child");
            println!("  {me}: Started, spawned {}", child.id());
            self.child = Some(child);
        } else if ctx.message_is::<Restarting>() {
            println!("  {me}: Restarting (its children are stopped first)");
        } else if ctx.message_is::<GetChild>() {
            ctx.respond(self.child.clone());
        }
        Ok(())
    }
}

fn parent(child_props: Props) -> Props {
    Props::from_producer(move || Parent { child_props: child_props.clone(), child: None })
}

fn worker() -> Props {
    Props::from_producer(|| Worker { count: 0 })
}

async fn child_of(root: &RootContext, parent: &Pid) -> Result<Pid, Error> {
    let child: Option<Pid> = root.request_future(parent, GetChild, TIMEOUT).await?;
    Ok(child.expect("every parent here spawns its child when it starts"))
}

async fn count_of(root: &RootContext, worker: &Pid) -> Result<u64, Error> {
    root.request_future(worker, Count, TIMEOUT).await
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Error> {
    let system = ActorSystem::new();
    let root = system.root();

    // Every supervision decision is published on the event stream.
    system
        .event_stream()
        .subscribe::<SupervisorEvent>(|e| {
            println!("  supervisor: {} failed (\"{}\") -> {:?}", e.child.id(), e.reason, e.directive)
        })
        .forget();

    println!("1. one-for-one restart, at most 2 restarts within 10 s");
    let props = parent(worker()).with_supervisor(OneForOneStrategy::new(2, Duration::from_secs(10)));
    let supervisor = root.spawn_named(props, "restarter")?;
    let child = child_of(&root, &supervisor).await?;
    for _ in 0..3 {
        root.send(&child, Work);
    }
    println!("main: count before failing = {}", count_of(&root, &child).await?);
    // The failed child's mailbox is suspended until the supervisor has
    // decided, so this request is answered by the restarted instance.
    root.send(&child, Fail("boom"));
    println!("main: count after a restart = {}", count_of(&root, &child).await?);
    root.send(&child, Fail("boom again"));
    println!("main: count after a second restart = {}", count_of(&root, &child).await?);
    root.send(&child, Fail("third time"));
    match count_of(&root, &child).await {
        Err(e) => println!("main: the restart limit turned the third restart into a stop; a request now fails: {e}"),
        Ok(n) => println!("main: unexpected answer {n}"),
    }

    println!();
    println!("2. escalation: the middle supervisor escalates, the top one restarts the middle");
    let (events, mut decisions) = system.event_stream().subscribe_channel::<SupervisorEvent>();
    let middle_props =
        parent(worker()).with_supervisor(OneForOneStrategy::default().with_decider(|_, _| Directive::Escalate));
    let top = root.spawn_named(parent(middle_props).with_supervisor(OneForOneStrategy::default()), "top")?;
    let middle = child_of(&root, &top).await?;
    let old_worker = child_of(&root, &middle).await?;
    root.send(&old_worker, Fail("disk full"));
    // Wait for the top's decision about the middle supervisor.
    loop {
        let event = tokio::time::timeout(TIMEOUT, decisions.recv())
            .await
            .ok()
            .flatten()
            .expect("the top supervisor decides within the timeout");
        if event.child == middle && event.directive == Directive::Restart {
            break;
        }
    }
    events.unsubscribe();
    let new_worker = child_of(&root, &middle).await?;
    println!("main: the middle's new instance spawned a new worker: {} -> {}", old_worker.id(), new_worker.id());
    println!("main: the new worker's count = {}", count_of(&root, &new_worker).await?);

    println!();
    println!("3. a decider: resume on transient failures, restart otherwise");
    let strategy = OneForOneStrategy::new(10, Duration::from_secs(10)).with_decider(|_, reason| {
        if reason.to_string().contains("transient") { Directive::Resume } else { Directive::Restart }
    });
    let supervisor = root.spawn_named(parent(worker()).with_supervisor(strategy), "decider")?;
    let child = child_of(&root, &supervisor).await?;
    root.send(&child, Work);
    root.send(&child, Work);
    root.send(&child, Fail("transient network glitch"));
    println!("main: count after resume = {} (state kept, no restart)", count_of(&root, &child).await?);
    root.send(&child, Fail("corrupted state"));
    println!("main: count after restart = {} (fresh instance)", count_of(&root, &child).await?);

    println!();
    println!("shutting down");
    system.shutdown().await;
    Ok(())
}
