//! Request/response: typed answers and the ways a request can fail.
//!
//! 1. `request_future` with a typed response.
//! 2. Asking for the wrong type: `Error::UnexpectedResponse`.
//! 3. A target that never answers: `Error::Timeout`.
//! 4. A stopped target: `Error::DeadLetter`, at once rather than at the timeout.
//! 5. `reenter_after`: an actor waits for a slow backend without blocking its
//!    mailbox, and answers the original request when the backend replies.
//!
//! `cargo run --example request_response`

#![forbid(unsafe_code)]
use std::time::{Duration, Instant};

use protoactor_actor::prelude::*;

/// A request answered with a [`Pong`].
struct Ping(u32);
/// The answer to a [`Ping`].
#[derive(Debug)]
struct Pong(u32);

struct Ponger;

impl Actor for Ponger {
    async fn receive(&mut self, ctx: &mut Context) -> ActorResult {
        if let Some(Ping(n)) = ctx.message::<Ping>() {
            ctx.respond(Pong(*n));
        }
        Ok(())
    }
}

/// Looks up a key; answered with a `String`.
struct Lookup(&'static str);
/// Asks how many lookups are in flight; answered with a `usize`.
struct InFlight;

/// A slow store: each lookup takes a while.
struct Backend;

impl Actor for Backend {
    async fn receive(&mut self, ctx: &mut Context) -> ActorResult {
        if let Some(Lookup(key)) = ctx.message::<Lookup>() {
            // Stands in for slow I/O; this example is about not waiting on it.
            tokio::time::sleep(Duration::from_millis(300)).await;
            ctx.respond(format!("value-of-{key}"));
        }
        Ok(())
    }
}

/// Forwards lookups to the backend but keeps answering other messages
/// while they are pending.
struct Frontend {
    backend: Pid,
    in_flight: usize,
}

impl Actor for Frontend {
    async fn receive(&mut self, ctx: &mut Context) -> ActorResult {
        if let Some(Lookup(key)) = ctx.message::<Lookup>() {
            self.in_flight += 1;
            let answer = ctx.request_future::<String, _>(&self.backend, Lookup(key), Duration::from_secs(2));
            // The continuation runs inside this actor once the answer is in;
            // meanwhile the mailbox keeps going.
            ctx.reenter_after(answer, |me: &mut Frontend, ctx, result| {
                me.in_flight -= 1;
                match result {
                    Ok(value) => ctx.respond(value),
                    Err(e) => ctx.respond(format!("lookup failed: {e}")),
                }
                Ok(())
            });
        } else if ctx.message_is::<InFlight>() {
            ctx.respond(self.in_flight);
        }
        Ok(())
    }
}

/// Ignores everything.
struct Silent;

impl Actor for Silent {
    async fn receive(&mut self, _ctx: &mut Context) -> ActorResult {
        Ok(())
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Error> {
    let system = ActorSystem::new();
    let root = system.root();

    println!("1. typed response");
    let ponger = root.spawn(Props::from_producer(|| Ponger));
    let pong: Pong = root.request_future(&ponger, Ping(1), Duration::from_secs(1)).await?;
    println!("   got Pong({})", pong.0);

    println!("2. asking for the wrong type");
    match root.request_future::<String, _>(&ponger, Ping(2), Duration::from_secs(1)).await {
        Err(e @ Error::UnexpectedResponse { .. }) => println!("   error: {e}"),
        other => println!("   unexpected: {other:?}"),
    }

    println!("3. a target that never answers");
    let silent = root.spawn(Props::from_producer(|| Silent));
    let started = Instant::now();
    match root.request_future::<Pong, _>(&silent, Ping(3), Duration::from_millis(200)).await {
        Err(e @ Error::Timeout { .. }) => println!("   error after {:?}: {e}", rounded(started.elapsed())),
        other => println!("   unexpected: {other:?}"),
    }

    println!("4. a stopped target");
    root.stop_future(&ponger).await;
    let started = Instant::now();
    match root.request_future::<Pong, _>(&ponger, Ping(4), Duration::from_secs(5)).await {
        Err(e @ Error::DeadLetter { .. }) => {
            println!("   error after {:?} (timeout was 5 s): {e}", rounded(started.elapsed()))
        }
        other => println!("   unexpected: {other:?}"),
    }

    println!("5. reenter_after: the frontend keeps answering while a lookup is pending");
    let backend = root.spawn(Props::from_producer(|| Backend));
    let frontend = root.spawn(Props::from_producer(move || Frontend { backend: backend.clone(), in_flight: 0 }));
    let started = Instant::now();
    let lookup = root.request_future::<String, _>(&frontend, Lookup("answer"), Duration::from_secs(2));
    let in_flight: usize = root.request_future(&frontend, InFlight, Duration::from_secs(1)).await?;
    println!("   after {:?} the frontend answered: {in_flight} lookup(s) in flight", rounded(started.elapsed()));
    let value = lookup.await?;
    println!("   after {:?} the lookup answered: {value}", rounded(started.elapsed()));

    system.shutdown().await;
    Ok(())
}

/// Whole milliseconds, for readable output.
fn rounded(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}
