//! Remoting, client side: talks to `remote_server` in another process as if
//! its actors were local.
//!
//! 1. Request/response with the server's `echo` actor, by a `Pid` made from
//!    the server's address and the actor's name.
//! 2. Remote spawn: an actor of kind `echo` started on the server, and the
//!    error for a kind the server does not have.
//! 3. Remote watch: a local actor watches the spawned one and is told when
//!    it stops.
//!
//! ```text
//! cargo run --example remote_server                    # in one shell
//! cargo run --example remote_client                    # in another (default 127.0.0.1:8090)
//! cargo run --example remote_client -- 127.0.0.1:9000  # a server elsewhere
//! ```

#![forbid(unsafe_code)]
use std::time::{Duration, Instant};

use protoactor_actor::prelude::*;
use protoactor_remote::{Remote, RemoteConfig};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// Asks an echo actor to send `text` back. Registered under the same name as
/// on the server, `examples.EchoRequest`.
#[derive(Debug, Serialize, Deserialize)]
struct EchoRequest {
    text: String,
}

/// The answer to an [`EchoRequest`]: the text, and which actor echoed it.
#[derive(Debug, Serialize, Deserialize)]
struct EchoResponse {
    text: String,
    by: String,
}

/// Asks the watcher whether it is watching yet (it starts on `Started`).
struct AreYouWatching;

/// A local actor that watches `target` and reports its `Terminated`.
fn watcher(target: Pid, report: mpsc::UnboundedSender<Terminated>) -> Props {
    Props::from_fn(move |ctx| {
        if ctx.message_is::<Started>() {
            ctx.watch(&target);
        } else if ctx.message_is::<AreYouWatching>() {
            ctx.respond(true);
        } else if let Some(terminated) = ctx.message::<Terminated>() {
            let _ = report.send(terminated.clone());
        }
        Ok(())
    })
}

const TIMEOUT: Duration = Duration::from_secs(5);

/// Talks to `remote_server`: requests, remote spawn, remote watch.
#[derive(Debug, clap::Parser)]
#[command(name = "remote_client")]
struct Args {
    /// The address `remote_server` printed.
    #[arg(value_name = "HOST:PORT", default_value = "127.0.0.1:8090")]
    server: String,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = <Args as clap::Parser>::parse().server;

    // The client listens too: answers come back on the server's own stream to us.
    let system = ActorSystem::new();
    let config = RemoteConfig::bind("127.0.0.1", 0)
        .with_json::<EchoRequest>("examples.EchoRequest")
        .with_json::<EchoResponse>("examples.EchoResponse");
    let remote = Remote::new(&system, config);
    let address = remote.start().await?;
    println!("client at {address}, server at {server}");
    let root = system.root();

    println!("1. request/response with {server}/echo");
    let echo = Pid::new(server.as_str(), "echo");
    let hello = EchoRequest { text: "hello".into() };
    let reply: EchoResponse = match root.request_future(&echo, hello, TIMEOUT).await {
        Ok(reply) => reply,
        Err(e) => {
            eprintln!("{e}\nis the server running? start it with `cargo run --example remote_server -- {server}`");
            return Err(e.into());
        }
    };
    println!("   {:?} echoed by {}", reply.text, reply.by);
    let rounds = 1_000;
    let started = Instant::now();
    for i in 0..rounds {
        let _: EchoResponse = root.request_future(&echo, EchoRequest { text: i.to_string() }, TIMEOUT).await?;
    }
    println!("   {rounds} sequential round trips: {:?} each on average", started.elapsed() / rounds);

    println!("2. remote spawn of kind `echo` on {server}");
    let spawned = remote.spawn(&server, "echo", TIMEOUT).await?;
    let reply: EchoResponse = root.request_future(&spawned, EchoRequest { text: "spawned".into() }, TIMEOUT).await?;
    println!("   spawned {spawned}; it echoed {:?}", reply.text);
    match remote.spawn(&server, "no-such-kind", TIMEOUT).await {
        Err(e) => println!("   an unknown kind fails: {e}"),
        Ok(pid) => return Err(format!("spawned {pid} of a kind the server does not have").into()),
    }

    println!("3. remote watch of {spawned}");
    let (report, mut terminated) = mpsc::unbounded_channel();
    let watching = root.spawn(watcher(spawned.clone(), report));
    let _: bool = root.request_future(&watching, AreYouWatching, TIMEOUT).await?;
    root.stop(&spawned);
    match tokio::time::timeout(TIMEOUT, terminated.recv()).await {
        Ok(Some(Terminated { who, why })) => println!("   the watcher was told: {who} terminated ({why:?})"),
        _ => return Err(format!("the watcher got no Terminated within {TIMEOUT:?}").into()),
    }

    remote.shutdown(true).await;
    system.shutdown().await;
    Ok(())
}
