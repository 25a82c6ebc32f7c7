//! Hello world: spawn an actor, send it messages (fire and forget), then ask
//! it a question and await the typed answer.
//!
//! `cargo run --example hello_world`

#![forbid(unsafe_code)]
use std::time::Duration;

use protoactor_actor::prelude::*;

/// Fire and forget: greet someone.
struct Hello {
    who: String,
}

/// A request: who have you greeted so far? Answered with a `Vec<String>`.
struct WhoDidYouGreet;

/// The actor: plain state, one message at a time.
struct Greeter {
    greeted: Vec<String>,
}

impl Actor for Greeter {
    async fn receive(&mut self, ctx: &mut Context) -> ActorResult {
        if ctx.message_is::<Started>() {
            println!("greeter {}: started", ctx.self_pid());
        } else if let Some(Hello { who }) = ctx.message::<Hello>() {
            println!("greeter: hello, {who}!");
            self.greeted.push(who.clone());
        } else if ctx.message_is::<WhoDidYouGreet>() {
            ctx.respond(self.greeted.clone());
        } else if ctx.message_is::<Stopped>() {
            println!("greeter: stopped");
        }
        Ok(())
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Error> {
    let system = ActorSystem::new();
    let root = system.root();

    let greeter = root.spawn(Props::from_producer(|| Greeter { greeted: Vec::new() }));

    // Fire and forget: `send` returns at once.
    root.send(&greeter, Hello { who: "Alice".into() });
    root.send(&greeter, Hello { who: "Bob".into() });

    // Request/response: messages from one sender arrive in order, so the
    // question is handled after both greetings.
    let greeted: Vec<String> = root.request_future(&greeter, WhoDidYouGreet, Duration::from_secs(1)).await?;
    println!("main: the greeter has greeted {greeted:?}");

    // Graceful stop: handles what is queued, then stops; the future waits for it.
    root.poison_future(&greeter).await;
    system.shutdown().await;
    println!("main: done");
    Ok(())
}
