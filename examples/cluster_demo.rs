//! The cluster demo: one command, no external server.
//!
//! ```text
//! cargo run --release --example cluster_demo
//! ```
//!
//! It starts three member processes on 127.0.0.1 (this same program, run
//! again as `cluster_demo member ...`), each hosting the grain kind
//! `counter`, with the automanaged membership provider (members poll each
//! other's HTTP health endpoint) and the partition identity lookup. This
//! process joins as a client and drives requests to a few thousand counter
//! grains from concurrent workers, printing a progress line every second:
//! requests per second, p99 latency of that second, failed requests so far,
//! members in the topology.
//!
//! Then it kills one member with SIGKILL, names the grains that lived there,
//! keeps the load running and reports how long until each of them answered
//! again, and where: a counter that starts again at 1 was re-activated on a
//! surviving member. A request fails only when it still has no answer after
//! the cluster's retries; the target is 0. Then a replacement member starts
//! (a new process on the dead member's health address), joins, and takes
//! its share of new grains. A summary table ends the run.
//!
//! `cargo run --example cluster_demo -- --help` lists the flags and their
//! defaults (`--members`, `--grains`, `--duration`, `--workers`, `--short`
//! for CI: about 4 s per phase; `--persist sqlite|postgres`: counts survive
//! the kill, see `cluster_demo/persist.rs`, and the run also fails if a
//! grain's recovered count differs from its acknowledged increments;
//! `--lookup redis|mongo --lookup-url URL`: the identity lookup, default
//! partition, see `cluster_demo/lookup.rs`). The exit status is nonzero if a request failed, a
//! grain of the killed member never answered again or the replacement did
//! not join. Member processes stop with this one (Ctrl-C included), and a
//! member whose stdin closes leaves by itself, so none outlives the demo.
//! `RUST_LOG=info` turns on logs (stderr).
//!
//! The code: `cluster_demo/member.rs` (the member role),
//! `cluster_demo/processes.rs` (starting and stopping member processes),
//! `cluster_demo/load.rs` (what the answers tell: where each grain lives,
//! how the killed member's grains came back; the workers and their latency
//! histograms are the chaos tool's, `crates/load`),
//! `cluster_demo/orchestrator.rs` (the phases and the summary) and
//! `cluster_demo/output.rs` (the progress line).

#![forbid(unsafe_code)]
use std::process::ExitCode;
use std::time::Duration;

use protoactor_cluster::ClusterConfig;
use protoactor_cluster_provider_automanaged::AutomanagedConfig;
use protoactor_identity_lookup_partition::PartitionIdentityLookup;
use protoactor_remote::RemoteConfig;

#[path = "cluster_demo/load.rs"]
mod load;
#[path = "cluster_demo/lookup.rs"]
mod lookup;
#[path = "cluster_demo/member.rs"]
mod member;
#[path = "cluster_demo/orchestrator.rs"]
mod orchestrator;
#[path = "cluster_demo/output.rs"]
mod output;
#[path = "cluster_demo/persist.rs"]
mod persist;
#[path = "cluster_demo/processes.rs"]
mod processes;

/// The cluster every process of the demo joins.
const CLUSTER: &str = "cluster-demo";
/// The grain kind the members host.
const KIND: &str = "counter";

/// Asks a counter grain to count one more request.
#[derive(Clone, PartialEq, ::prost::Message)]
struct Increment {
    /// Unique per request (a retry repeats it), so a persisted counter
    /// (`--persist`) counts a retried request once.
    #[prost(uint64, tag = "1")]
    request: u64,
}

impl Increment {
    /// A request with a new id.
    fn next() -> Self {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Increment { request: (u64::from(std::process::id()) << 32) | n }
    }
}

impl ::prost::Name for Increment {
    const NAME: &'static str = "Increment";
    const PACKAGE: &'static str = "cluster_demo";
    fn full_name() -> String {
        "cluster_demo.Increment".into()
    }
}

/// A counter grain's answer: requests it counted since it was activated,
/// and the remote address of the member it lives on.
#[derive(Clone, PartialEq, ::prost::Message)]
struct CountReply {
    /// 1 for the first request after an activation.
    #[prost(uint64, tag = "1")]
    count: u64,
    /// The hosting member's address.
    #[prost(string, tag = "2")]
    member: String,
}

impl ::prost::Name for CountReply {
    const NAME: &'static str = "CountReply";
    const PACKAGE: &'static str = "cluster_demo";
    fn full_name() -> String {
        "cluster_demo.CountReply".into()
    }
}

/// The membership settings of members and client alike: a poll every
/// 500 ms, so a dead member leaves after 4 missed polls (about 2 s); 1 s
/// per poll, so a member busy with the load is not taken for dead.
fn automanaged(peers: &[String]) -> AutomanagedConfig {
    AutomanagedConfig::new(peers.to_vec())
        .with_poll_interval(Duration::from_millis(500))
        .with_timeout(Duration::from_secs(1))
        .with_missed_polls(4)
}

/// The cluster configuration shared by members and the client.
fn cluster_config(provider: protoactor_cluster_provider_automanaged::AutomanagedProvider, port: u16) -> ClusterConfig {
    let remote = RemoteConfig::bind("127.0.0.1", port).with_protobuf::<Increment>().with_protobuf::<CountReply>();
    // `--lookup`: checked in main, so building it again cannot fail here.
    let lookup = lookup::build().unwrap_or_else(|_| std::sync::Arc::new(PartitionIdentityLookup::new()));
    ClusterConfig::new(CLUSTER, provider, lookup).with_remote(remote)
}

/// Logs to stderr only when `RUST_LOG` is set: the demo's output is its own lines.
fn init_tracing() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
    }
}

/// Three member processes, a client under load, one member killed and
/// replaced; exits nonzero if a request failed, a grain of the killed member
/// never answered again or the replacement did not join.
#[derive(Debug, clap::Parser)]
#[command(name = "cluster_demo", args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    role: Option<Role>,
    #[command(flatten)]
    demo: orchestrator::DemoOptions,
}

#[derive(Debug, clap::Subcommand)]
enum Role {
    /// One member process (started by the demo itself).
    #[command(hide = true)]
    Member(member::Args),
}

fn main() -> ExitCode {
    let cli = <Cli as clap::Parser>::parse();
    let lookup_options = match &cli.role {
        Some(Role::Member(args)) => &args.lookup,
        None => &cli.demo.lookup,
    };
    if let Err(e) = lookup::choose(lookup_options).and_then(|()| lookup::build().map(drop)) {
        eprintln!("cluster_demo: {e}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cluster_demo: cannot start a tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    init_tracing();
    match cli.role {
        Some(Role::Member(args)) => runtime.block_on(member::run(args)),
        None => runtime.block_on(orchestrator::run(cli.demo.resolve())),
    }
}
