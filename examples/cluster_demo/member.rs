//! The member role (`cluster_demo member ...`): hosts counter grains until
//! its stdin closes or it gets Ctrl-C, then leaves the cluster gracefully.
//! Its one line on stdout, `ready <member id> <address>`, tells the
//! orchestrator it joined.

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::Duration;

use protoactor_actor::prelude::*;
use protoactor_cluster::{Cluster, Kind};
use protoactor_cluster_provider_automanaged::AutomanagedProvider;

use crate::{CountReply, Increment, KIND};

/// The member's command line: `member --health-port P --peers A,B,C [--remote-port P]`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Args {
    /// This member's health endpoint port (the automanaged provider's).
    #[arg(long, value_name = "PORT")]
    health_port: u16,
    /// This member's remoting port (0: any free port).
    #[arg(long, value_name = "PORT", default_value_t = 0)]
    remote_port: u16,
    /// Every member's health endpoint, `host:port`, comma-separated.
    #[arg(long, value_name = "ADDRS", value_delimiter = ',', required = true)]
    peers: Vec<String>,
    /// The identity lookup (the demo passes its own).
    #[command(flatten)]
    pub(crate) lookup: crate::lookup::LookupOptions,
    /// Persisted counters in this store (see `persist.rs`).
    #[arg(long, value_name = "SPEC")]
    store: Option<String>,
}

/// A virtual actor counting the requests it got since it was activated.
struct Counter {
    count: u64,
}

impl Actor for Counter {
    async fn receive(&mut self, ctx: &mut Context) -> ActorResult {
        if ctx.message_is::<Increment>() {
            self.count += 1;
            ctx.respond(CountReply { count: self.count, member: ctx.system().address().to_string() });
        }
        Ok(())
    }
}

pub(crate) async fn run(args: Args) -> ExitCode {
    let provider = AutomanagedProvider::new(crate::automanaged(&args.peers).with_bind("127.0.0.1", args.health_port));
    let props = match &args.store {
        Some(spec) => match crate::persist::provider(spec).await {
            Ok(store) => crate::persist::PersistentCounter::props(store),
            Err(e) => {
                eprintln!("cluster_demo member: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => Props::from_producer(|| Counter { count: 0 }),
    };
    let config = crate::cluster_config(provider, args.remote_port).with_kind(Kind::new(KIND, props));
    let cluster = match Cluster::new(&ActorSystem::new(), config) {
        Ok(cluster) => cluster,
        Err(e) => {
            eprintln!("cluster_demo member: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = cluster.start_member().await {
        eprintln!("cluster_demo member: {e}");
        cluster.shutdown(false).await;
        return ExitCode::FAILURE;
    }
    let mut out = std::io::stdout();
    // The orchestrator may be gone already: a failed write is not an error here.
    let _ = writeln!(out, "ready {} {}", cluster.id(), cluster.address()).and_then(|()| out.flush());

    // Stdin closing is the orchestrator saying goodbye (or dying).
    let (closed_tx, closed_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            if line.is_err() {
                break;
            }
        }
        let _ = closed_tx.send(());
    });
    tokio::select! {
        _ = closed_rx => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    if tokio::time::timeout(Duration::from_secs(15), cluster.shutdown(true)).await.is_err() {
        eprintln!("cluster_demo member: the graceful leave took longer than 15 s");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
