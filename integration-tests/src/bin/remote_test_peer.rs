//! `remote-test-peer`: a remoting system in its own OS process, for tests
//! that kill and restart a peer.
//!
//! `remote-test-peer [PORT]` (default 0: any free port) serves an actor named
//! `echo` that answers each `Ping` with a `Pong` after the ping's delay,
//! prints `READY <address>` and runs until it is killed or its stdin closes
//! (so a test that dies leaves no orphan behind). `PEER_MAX_PENDING`,
//! `PEER_HANDSHAKE_TIMEOUT_MS` and `PEER_STALL_TIMEOUT_MS` set the port's guards.

use std::io::Read;
use std::process::ExitCode;
use std::time::Duration;

use protoactor_actor::prelude::*;
use protoactor_remote::{Remote, RemoteConfig};

use protoactor_integration_tests::peer_protocol::{self, Ping, Pong, READY};

struct Echo;

impl Actor for Echo {
    async fn receive(&mut self, ctx: &mut Context) -> ActorResult {
        let Some(&Ping { n, delay_ms }) = ctx.message::<Ping>() else { return Ok(()) };
        if delay_ms == 0 {
            ctx.respond(Pong(n));
        } else {
            // Slow answers overlap: the mailbox keeps going while each one waits.
            let delay = tokio::time::sleep(Duration::from_millis(delay_ms));
            ctx.reenter_after(delay, move |_: &mut Echo, ctx, ()| {
                ctx.respond(Pong(n));
                Ok(())
            });
        }
        Ok(())
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let port = match std::env::args().nth(1).map(|a| a.parse::<u16>()) {
        None => 0,
        Some(Ok(port)) => port,
        Some(Err(e)) => {
            eprintln!("usage: remote-test-peer [PORT]: {e}");
            return ExitCode::FAILURE;
        }
    };
    let system = ActorSystem::new();
    // Knobs for the bad-input tests (a binary from before they existed ignores them).
    let mut config = peer_protocol::register(RemoteConfig::bind("127.0.0.1", port));
    if let Some(max) = std::env::var("PEER_MAX_PENDING").ok().and_then(|v| v.parse().ok()) {
        config = config.with_max_pending_connections(max);
    }
    if let Some(ms) = std::env::var("PEER_HANDSHAKE_TIMEOUT_MS").ok().and_then(|v| v.parse().ok()) {
        config = config.with_handshake_timeout(Duration::from_millis(ms));
    }
    if let Some(ms) = std::env::var("PEER_STALL_TIMEOUT_MS").ok().and_then(|v| v.parse().ok()) {
        config = config.with_stall_timeout(Duration::from_millis(ms));
    }
    let remote = Remote::new(&system, config);
    let address = match remote.start().await {
        Ok(address) => address,
        Err(e) => {
            eprintln!("remote-test-peer: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = system.root().spawn_named(Props::from_producer(|| Echo), "echo") {
        eprintln!("remote-test-peer: {e}");
        return ExitCode::FAILURE;
    }
    println!("{READY}{address}");

    let (closed, stdin_closed) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin();
        let mut buf = [0u8; 256];
        while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
        let _ = closed.send(());
    });
    let _ = stdin_closed.await;
    remote.shutdown(false).await;
    system.shutdown().await;
    ExitCode::SUCCESS
}
