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

#![forbid(unsafe_code)]
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

/// A member of the ping-pong cluster hosting the `Ponger` grain (Ctrl-C
/// leaves the cluster).
#[derive(Debug, clap::Parser)]
#[command(name = "ping_pong_member")]
struct Args {
    /// The address this member binds and announces.
    #[arg(long, env = "PING_PONG_HOST", default_value = "127.0.0.1")]
    host: String,
    /// The remoting port (0: any free port).
    #[arg(long, env = "PING_PONG_PORT", default_value_t = 0)]
    port: u16,
    /// The health endpoint port the automanaged provider polls (0: any free port).
    #[arg(long, env = "PING_PONG_HEALTH_PORT", default_value_t = DEFAULT_PORT)]
    health_port: u16,
    /// Every member's health endpoint, comma-separated `host:port`
    /// [default: this member's own, or none with --health-port 0].
    #[arg(long, env = "PING_PONG_PEERS", value_name = "HOST:PORT,...", value_delimiter = ',')]
    peers: Vec<String>,
}

impl Args {
    /// `--peers`, or the default: a lone member needs no peers, and listing
    /// its own address is harmless (the same list can go to every member).
    fn peers(&self) -> Vec<String> {
        let listed: Vec<String> =
            self.peers.iter().map(|p| p.trim()).filter(|p| !p.is_empty()).map(String::from).collect();
        match (listed.is_empty(), self.health_port) {
            (false, _) => listed,
            (true, 0) => Vec::new(),
            (true, port) => vec![format!("{}:{port}", self.host)],
        }
    }
}

pub(crate) fn main() -> std::process::ExitCode {
    common::program("ping_pong_member", run)
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    common::init_tracing();
    let provider =
        AutomanagedProvider::new(AutomanagedConfig::new(args.peers()).with_bind(&args.host, args.health_port));
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
    let peers = args.peers();
    let peers = if peers.is_empty() { "none".to_string() } else { peers.join(",") };
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
