//! Ping-pong, client side: the cluster introduction's "pinger". A client of
//! the cluster `ping-pong` (it hosts no grains) whose pinger actor calls
//! `PongerClient::ping` (generated from `ping_pong/ponger.proto`) on the
//! grain `ponger-1` every second with an incrementing `PingMessage { cnt }`,
//! retrying within a 10 s deadline, and prints each `PongMessage`. It first sends one
//! one-way ping (cnt 0) that the grain only prints. Start
//! `ping_pong_member` first (see there), then:
//!
//! ```text
//! cargo run --example ping_pong_client                       # until Ctrl-C
//! cargo run --example ping_pong_client -- --count 5          # stop after 5 pongs
//! ```
//!
//! Kill the member and start it again: failed pings are printed and the
//! pinger goes on; once the new member process is in the topology, the grain
//! is activated there and pongs resume.
//!
//! Flags (or environment variables):
//!
//! * `--peers A,B` (`PING_PONG_PEERS`): the members' health addresses to poll, default `127.0.0.1:6330`
//! * `--host H` (`PING_PONG_HOST`): address for this client's remoting, default `127.0.0.1`
//! * `--count N` (`PING_PONG_COUNT`): exit after N pongs
//!
//! Also built as the binary `ping_pong_client` for `examples/tests/ping_pong.rs`
//! (see `ping_pong_member`). Output: one `pong N` line per pong and one
//! `ping N failed: ...` line per failed ping. Logs go to stderr when
//! `RUST_LOG` is set.

#![forbid(unsafe_code)]
use std::sync::Arc;
use std::time::Duration;

use protoactor_actor::TimerHandle;
use protoactor_actor::prelude::*;
use protoactor_cluster::{CallOptions, Cluster, ClusterConfig, RetryPolicy};
use protoactor_cluster_provider_automanaged::{AutomanagedConfig, AutomanagedProvider, DEFAULT_PORT};
use protoactor_identity_lookup_partition::PartitionIdentityLookup;
use tokio::sync::watch;

#[path = "ping_pong/common.rs"]
mod common;

use common::ponger::{PingMessage, PongerClient};

/// The one grain the client pings.
const GRAIN: &str = "ponger-1";
const PING_EVERY: Duration = Duration::from_secs(1);
/// A ping that gets no pong within this (retries included) is reported as
/// failed, so an outage shows up while it lasts.
const PING_DEADLINE: Duration = Duration::from_secs(10);

/// Each ping retries (lookup failures, timeouts, a dead activation) with
/// backoff until [`PING_DEADLINE`]; one attempt waits at most 3 s.
fn ping_options() -> CallOptions {
    CallOptions::default()
        .with_retry(RetryPolicy::new(30, Duration::from_millis(50)))
        .with_timeout(Duration::from_secs(3))
        .with_deadline(PING_DEADLINE)
}

/// Time to send the next ping.
#[derive(Clone)]
struct Tick;

/// Pings `ponger-1` every second without waiting for the pongs in between:
/// each request runs beside the actor and its outcome comes back through
/// `reenter_after`, so a slow or failing ping never delays the next.
struct Pinger {
    cluster: Cluster,
    cnt: u64,
    pongs: Arc<watch::Sender<u64>>,
    timer: Option<TimerHandle>,
}

impl Actor for Pinger {
    async fn receive(&mut self, ctx: &mut Context) -> ActorResult {
        if ctx.message_is::<Started>() {
            let cluster = self.cluster.clone();
            ctx.reenter_after(
                async move { cluster.send(GRAIN, common::KIND, PingMessage { cnt: 0 }).await },
                |_: &mut Pinger, _, sent| {
                    match sent {
                        Ok(()) => println!("sent one-way ping 0 to {GRAIN}"),
                        Err(e) => println!("one-way ping 0 failed: {e}"),
                    }
                    Ok(())
                },
            );
            let me = ctx.self_pid().clone();
            self.timer = Some(ctx.system().scheduler().send_repeatedly(PING_EVERY, PING_EVERY, &me, Tick));
        } else if ctx.message_is::<Tick>() {
            self.cnt += 1;
            let cnt = self.cnt;
            let ponger = PongerClient::new(&self.cluster, GRAIN);
            let options = ping_options();
            ctx.reenter_after(
                async move { ponger.ping(PingMessage { cnt }, &options).await },
                move |me: &mut Pinger, _, answer| {
                    match answer {
                        Ok(pong) => {
                            println!("pong {}", pong.cnt);
                            me.pongs.send_modify(|n| *n += 1);
                        }
                        Err(e) => println!("ping {cnt} failed: {e}"),
                    }
                    Ok(())
                },
            );
        } else if ctx.message_is::<Stopping>()
            && let Some(timer) = self.timer.take()
        {
            timer.cancel();
        }
        Ok(())
    }
}

/// A client of the ping-pong cluster: pings the grain `ponger-1` every
/// second and prints the pongs (Ctrl-C stops it).
#[derive(Debug, clap::Parser)]
#[command(name = "ping_pong_client")]
struct Args {
    /// Members' health endpoints to poll for the membership, comma-separated
    /// [default: 127.0.0.1:6330, the automanaged provider's default port].
    #[arg(long, env = "PING_PONG_PEERS", value_name = "HOST:PORT,...", value_delimiter = ',')]
    peers: Vec<String>,
    /// The address this client binds for remoting.
    #[arg(long, env = "PING_PONG_HOST", default_value = "127.0.0.1")]
    host: String,
    /// Stop after this many pongs [default: run until Ctrl-C].
    #[arg(long, env = "PING_PONG_COUNT", value_name = "N")]
    count: Option<u64>,
}

impl Args {
    /// `--peers`, or the local member on the default health port.
    fn peers(&self) -> Vec<String> {
        let listed: Vec<String> =
            self.peers.iter().map(|p| p.trim()).filter(|p| !p.is_empty()).map(String::from).collect();
        if listed.is_empty() { vec![format!("127.0.0.1:{DEFAULT_PORT}")] } else { listed }
    }
}

pub(crate) fn main() -> std::process::ExitCode {
    common::program("ping_pong_client", run)
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    common::init_tracing();
    // A client polls the members' health endpoints and serves none.
    let provider = AutomanagedProvider::new(AutomanagedConfig::new(args.peers()));
    let config = ClusterConfig::new(common::CLUSTER, provider, PartitionIdentityLookup::new())
        .with_remote(common::remote_config(&args.host, 0));
    let system = ActorSystem::new();
    let cluster = Cluster::new(&system, config)?;
    if let Err(e) = cluster.start_client().await {
        cluster.shutdown(false).await;
        return Err(e.into());
    }
    println!("client started; polling {} for members; Ctrl-C to stop", args.peers().join(","));

    let pongs = Arc::new(watch::channel(0u64).0);
    let mut pong_count = pongs.subscribe();
    let pinger = {
        let (cluster, pongs) = (cluster.clone(), pongs.clone());
        Props::from_producer(move || Pinger { cluster: cluster.clone(), cnt: 0, pongs: pongs.clone(), timer: None })
    };
    let pinger = system.root().spawn_named(pinger, "pinger")?;

    let enough = async {
        match args.count {
            Some(n) => {
                let _ = pong_count.wait_for(|got| *got >= n).await;
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = enough => println!("got {} pongs; stopping", args.count.unwrap_or_default()),
        interrupted = tokio::signal::ctrl_c() => {
            interrupted?;
            println!("stopping");
        }
    }
    // Pings still under way then end quietly: their outcomes find no pinger.
    system.root().stop_future(&pinger).await;
    cluster.shutdown(true).await;
    println!("bye");
    Ok(())
}
