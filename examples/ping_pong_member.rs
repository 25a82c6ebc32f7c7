//! Ping-pong, member side: the cluster introduction's "ponger". A member of
//! the cluster `ping-pong` hosting the grain kind `Ponger`, a typed grain
//! generated from `ping_pong/ponger.proto` (`service Ponger { rpc
//! Ping(PingMessage) returns (PongMessage); }`) by protoactor-codegen in
//! `build.rs`: the grain implements `Ping` (answers `PongMessage { cnt }`),
//! `receive_default` (prints a one-way `PingMessage` sent to it directly)
//! and `terminate` (says why it stopped); it is passivated after 10 s
//! without messages.
//! Membership is the automanaged provider (each member serves a small HTTP
//! health endpoint and polls its peers'; no external server), placement the
//! partition lookup.
//!
//! ```text
//! cargo run --example ping_pong_member     # shell 1: health endpoint 127.0.0.1:6330
//! cargo run --example ping_pong_client     # shell 2: pings grain ponger-1 every second
//! ```
//!
//! Stop the member (Ctrl-C) and start it again: the client reports errors
//! meanwhile, then the grain is activated on the new process and pongs
//! resume. A second member on the same machine needs its own health port,
//! and both list both peers:
//!
//! ```text
//! cargo run --example ping_pong_member -- --health-port 6331 --peers 127.0.0.1:6330,127.0.0.1:6331
//! ```
//!
//! Flags (or environment variables):
//!
//! * `--host H` (`PING_PONG_HOST`): address to bind and advertise, default `127.0.0.1`
//! * `--port P` (`PING_PONG_PORT`): remoting port, default 0 (any free port)
//! * `--health-port P` (`PING_PONG_HEALTH_PORT`): health endpoint port, default 6330
//!   (0: any free port; the `ready` line says which)
//! * `--peers A,B` (`PING_PONG_PEERS`): the members' health addresses, default this member's own
//!
//! The same program is also built as the binary `ping_pong_member`
//! (`cargo run -p protoactor-examples --bin ping_pong_member`), which is what
//! `examples/tests/ping_pong.rs` runs: cargo builds binaries, not examples,
//! before a package's tests, so the test never runs a stale program.
//! Output: `ready: ...` once joined, one line per ping, one when the grain
//! passivates. Logs go to stderr when `RUST_LOG` is set.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use protoactor_actor::prelude::*;
use protoactor_cluster::{Cluster, ClusterConfig, ClusterIdentity};
use protoactor_cluster_provider_automanaged::{AutomanagedConfig, AutomanagedProvider, DEFAULT_PORT};
use protoactor_grain::GrainError;
use protoactor_identity_lookup_partition::PartitionIdentityLookup;

#[path = "ping_pong/common.rs"]
mod common;

use common::ponger::{PingMessage, PongMessage, PongerGrain, PongerKind};

/// How long a grain may go without messages before it is passivated.
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Set once this member starts leaving, so a grain stopped by the leave does
/// not claim it was idle.
static LEAVING: AtomicBool = AtomicBool::new(false);

const USAGE: &str = "usage: ping_pong_member [--host H] [--port P] [--health-port P] [--peers HOST:PORT,...]";

/// The `Ponger` grain: implements the generated [`PongerGrain`] trait (the
/// `Ping` rpc plus the `init`, `receive_default` and `terminate` hooks);
/// [`PongerKind`] hosts it.
#[derive(Default)]
struct Ponger {
    me: String,
    pings: u64,
}

impl PongerGrain for Ponger {
    async fn init(&mut self, identity: &ClusterIdentity, ctx: &mut Context) -> ActorResult {
        self.me = identity.identity.clone();
        println!("{}: activated on {}", self.me, ctx.system().address());
        Ok(())
    }

    async fn ping(&mut self, request: PingMessage, _ctx: &mut Context) -> Result<PongMessage, GrainError> {
        let cnt = request.cnt;
        self.pings += 1;
        println!("{}: ping {cnt} -> pong {cnt}", self.me);
        Ok(PongMessage { cnt })
    }

    /// Messages sent to the grain directly, outside the `Ponger` service:
    /// the plain `PingMessage` path.
    async fn receive_default(&mut self, ctx: &mut Context) -> ActorResult {
        if let Some(ping) = ctx.message::<PingMessage>() {
            let cnt = ping.cnt;
            if ctx.sender().is_some() {
                // A plain request (`cluster.request`) still gets its pong.
                self.pings += 1;
                println!("{}: ping {cnt} -> pong {cnt}", self.me);
                ctx.respond(PongMessage { cnt });
            } else {
                println!("{}: one-way ping {cnt} (sent without a reply address: nothing to answer)", self.me);
            }
        }
        Ok(())
    }

    async fn terminate(&mut self, _ctx: &mut Context) -> ActorResult {
        if LEAVING.load(Ordering::Acquire) {
            println!("{}: stopped because this member is leaving ({} pings answered)", self.me, self.pings);
        } else {
            println!("{}: passivated after {IDLE_TIMEOUT:?} without messages ({} pings answered)", self.me, self.pings);
        }
        Ok(())
    }
}

struct Args {
    host: String,
    port: u16,
    health_port: u16,
    peers: Vec<String>,
}

fn parse_args() -> Result<Args, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    common::check_flags(&args, &["--host", "--port", "--health-port", "--peers"])?;
    let host = common::flag_or_env(&args, "--host", "PING_PONG_HOST").unwrap_or_else(|| "127.0.0.1".into());
    let port = common::number(&args, "--port", "PING_PONG_PORT")?.unwrap_or(0);
    let health_port = common::number(&args, "--health-port", "PING_PONG_HEALTH_PORT")?.unwrap_or(DEFAULT_PORT);
    let peers = match common::flag_or_env(&args, "--peers", "PING_PONG_PEERS") {
        Some(list) => list.split(',').map(str::trim).filter(|p| !p.is_empty()).map(String::from).collect(),
        // A lone member needs no peers; listing its own address is harmless
        // and lets the same list be given to every member.
        None if health_port == 0 => Vec::new(),
        None => vec![format!("{host}:{health_port}")],
    };
    Ok(Args { host, port, health_port, peers })
}

pub(crate) fn main() -> std::process::ExitCode {
    common::program("ping_pong_member", USAGE, parse_args, run)
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    common::init_tracing();
    let provider =
        AutomanagedProvider::new(AutomanagedConfig::new(args.peers.clone()).with_bind(&args.host, args.health_port));
    let ponger = PongerKind::new(Ponger::default).with_idle_timeout(IDLE_TIMEOUT).into_kind();
    let config = ClusterConfig::new(common::CLUSTER, provider.clone(), PartitionIdentityLookup::new())
        .with_remote(common::remote_config(&args.host, args.port))
        .with_kind(ponger);
    let cluster = Cluster::new(&ActorSystem::new(), config)?;
    if let Err(e) = cluster.start_member().await {
        cluster.shutdown(false).await;
        return Err(e.into());
    }
    let health = provider.health_address().map_or_else(|| "?".to_string(), |a| a.to_string());
    let peers = if args.peers.is_empty() { "none".to_string() } else { args.peers.join(",") };
    println!(
        "ready: member {} at {}, health endpoint {health}, peers {peers}, hosting kind {}; Ctrl-C to leave",
        cluster.id(),
        cluster.address(),
        common::KIND
    );

    tokio::signal::ctrl_c().await?;
    println!("leaving the cluster");
    LEAVING.store(true, Ordering::Release);
    cluster.shutdown(true).await;
    println!("bye");
    Ok(())
}
