//! Remoting, server side: an actor system that other processes reach by Pid.
//!
//! It serves an actor named `echo`, and the kind `echo` so that other systems
//! can spawn echo actors here. Run it, then `remote_client` in another shell:
//!
//! ```text
//! cargo run --example remote_server                      # 127.0.0.1:8090, until Ctrl-C
//! cargo run --example remote_server -- 127.0.0.1:9000    # another address
//! cargo run --example remote_server -- --for-seconds 60  # stop by itself after 60 s
//! ```
//!
//! The first line it prints is `listening on <address>` (port 0 picks a free
//! port; that line says which).

#![forbid(unsafe_code)]
use std::time::Duration;

use protoactor_actor::prelude::*;
use protoactor_remote::{Remote, RemoteConfig};
use serde::{Deserialize, Serialize};

/// Asks an echo actor to send `text` back. Both sides register it under the
/// same name, `examples.EchoRequest`.
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

/// Answers every `EchoRequest`, and says when it starts and stops so the
/// client's remote spawn and stop show up here too.
struct Echo;

impl Actor for Echo {
    async fn receive(&mut self, ctx: &mut Context) -> ActorResult {
        if ctx.message_is::<Started>() {
            println!("{}: started", ctx.self_pid());
        } else if ctx.message_is::<Stopped>() {
            println!("{}: stopped", ctx.self_pid());
        } else if let Some(EchoRequest { text }) = ctx.message::<EchoRequest>() {
            let by = ctx.self_pid().to_string();
            ctx.respond(EchoResponse { text: text.clone(), by });
        }
        Ok(())
    }
}

/// Serves an `echo` actor and the `echo` spawn kind for `remote_client`
/// (Ctrl-C stops it).
#[derive(Debug, clap::Parser)]
#[command(name = "remote_server")]
struct Args {
    /// The address to listen on (port 0: any free port; the address is printed).
    #[arg(value_name = "HOST:PORT", default_value = "127.0.0.1:8090", value_parser = host_port)]
    listen: (String, u16),
    /// Stop by itself after this many seconds [default: run until Ctrl-C].
    #[arg(long, value_name = "N")]
    for_seconds: Option<u64>,
}

fn host_port(arg: &str) -> Result<(String, u16), String> {
    let (host, port) = arg.rsplit_once(':').ok_or(format!("`{arg}` is not HOST:PORT"))?;
    Ok((host.to_string(), port.parse().map_err(|e| format!("port `{port}`: {e}"))?))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = <Args as clap::Parser>::parse();

    let system = ActorSystem::new();
    let config = RemoteConfig::bind(args.listen.0, args.listen.1)
        .with_json::<EchoRequest>("examples.EchoRequest")
        .with_json::<EchoResponse>("examples.EchoResponse")
        .with_kind("echo", Props::from_producer(|| Echo));
    let remote = Remote::new(&system, config);
    let address = remote.start().await?;
    system.root().spawn_named(Props::from_producer(|| Echo), "echo")?;

    println!("listening on {address}");
    println!("serving the actor `echo` and the kind `echo`; try `cargo run --example remote_client -- {address}`");

    match args.for_seconds {
        Some(n) => {
            println!("stopping after {n} s (or Ctrl-C)");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = tokio::time::sleep(Duration::from_secs(n)) => {}
            }
        }
        None => {
            println!("Ctrl-C to stop");
            tokio::signal::ctrl_c().await?;
        }
    }

    println!("shutting down");
    remote.shutdown(true).await;
    system.shutdown().await;
    Ok(())
}
