//! Chaos and load for protoactor-rs clusters: N member processes of this
//! program on 127.0.0.1 plus in-process load workers, faults injected on a
//! schedule, and counts checked against bounds at the end.
//!
//! ```text
//! cargo run --release -p protoactor-chaos -- --members 3 --grains 10000 --faults kill
//! cargo run --release -p protoactor-chaos -- --short      # the CI run, under 2 minutes
//! ```
//!
//! The command line is [`Cli`]; [`run`] drives one run and returns its exit
//! status (nonzero when a count breaks its bound: see [`report`]).
//!
//! ```
//! use clap::Parser;
//! use protoactor_chaos::{Cli, Command};
//!
//! let cli = Cli::parse_from(["protoactor-chaos", "--short", "--faults", "kill,stop"]);
//! assert!(cli.run.short);
//! assert!(cli.command.is_none());
//! let _member: Option<Command> = cli.command;
//! ```

mod backend;
mod chart;
mod load;
mod member;
mod netns;
mod orchestrator;
mod procs;
mod proto;
mod relay;
pub mod report;
mod store;

use std::path::PathBuf;
use std::process::ExitCode;

pub use backend::{LookupKind, PersistKind, ProviderKind};
pub use member::MemberArgs;

/// What went wrong in a run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or process operation failed.
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
    /// A member process failed to start, join or serve.
    #[error("{0}")]
    Member(String),
    /// The tool's own cluster client failed.
    #[error("the load's cluster client: {0}; check that the members started (their errors are above)")]
    Cluster(#[from] protoactor_cluster::Error),
    /// Writing the report failed.
    #[error("cannot write the report: {0}")]
    Report(String),
    /// Network namespaces, links or the relay could not be set up or changed.
    #[error("network set-up: {0}")]
    Net(String),
    /// The run was interrupted (Ctrl-C, SIGTERM); what it made is removed.
    #[error("interrupted by {0}; members stopped and namespaces removed")]
    Interrupted(&'static str),
}

/// The faults a run can inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Fault {
    /// kill -9 a member, then start a replacement on its health port.
    Kill,
    /// SIGSTOP a member past the failure-detection window, then SIGCONT.
    Stop,
    /// Every member in turn leaves gracefully and a replacement joins.
    Rolling,
    /// Restart the run's servers under load: the provider's (etcd,
    /// ZooKeeper), the lookup's (Redis, the MongoDB stand-in) and
    /// PostgreSQL (`--persist postgres`).
    Store,
    /// Cut one member off the network (its veth down; members then run in
    /// their own network namespaces, which needs root) for 10 s (5 s with
    /// --short), then heal.
    Partition,
    /// One-way partition through the member's relay: nothing reaches the
    /// member (its health endpoint included) while what it sends still
    /// flows, for as long as `partition`; then heal.
    Oneway,
}

/// `protoactor-chaos [OPTIONS]` runs; `protoactor-chaos member ...` is a member.
#[derive(Debug, clap::Parser)]
#[command(name = "protoactor-chaos", version, about = "Cluster load with faults; counts checked against bounds")]
pub struct Cli {
    /// The member role (started by the tool itself).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The run's options.
    #[command(flatten)]
    pub run: RunArgs,
}

/// Subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Run as a member process (the tool starts these).
    #[command(hide = true)]
    Member(MemberArgs),
}

/// Options of a run.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Member processes.
    #[arg(long, default_value_t = 3)]
    pub members: usize,
    /// Counter grains.
    #[arg(long, default_value_t = 10_000)]
    pub grains: usize,
    /// Concurrent requests (in-process workers), each sending its next
    /// request when the last is answered (a closed loop).
    #[arg(long, default_value_t = 32)]
    pub workers: usize,
    /// Open loop instead: this many requests a second whatever the answers
    /// (at most 100,000 waiting at once; the surplus is shed and counted),
    /// each timed from when it was due. Shows what the rest of the cluster
    /// serves while one member is silent (`partition`, `stop`), which the
    /// closed loop hides: there every worker soon waits on the silent one.
    #[arg(long, value_name = "REQ_PER_S")]
    pub rate: Option<u64>,
    /// Seconds of each steady phase (baseline, cluster) and after each fault.
    #[arg(long, default_value_t = 10)]
    pub phase_secs: u64,
    /// Faults, in order, comma separated [default: kill; with --short:
    /// kill,stop,rolling].
    #[arg(long, value_enum, value_delimiter = ',')]
    pub faults: Option<Vec<Fault>>,
    /// Skip the baseline phase (plain remote requests to pre-spawned actors).
    #[arg(long)]
    pub no_baseline: bool,
    /// Membership provider.
    #[arg(long, value_enum, default_value = "automanaged")]
    pub provider: ProviderKind,
    /// Identity lookup; `redis` and `mongo` start a throwaway server
    /// (Redis, the MongoDB stand-in or `MONGODB_URI`) unless --lookup-url
    /// names one.
    #[arg(long, value_enum, default_value = "partition")]
    pub lookup: LookupKind,
    /// The lookup's server, e.g. `redis://127.0.0.1:6379/` or
    /// `mongodb://127.0.0.1:27017/` (`--faults store` cannot restart it).
    #[arg(long, value_name = "URL")]
    pub lookup_url: Option<String>,
    /// Persisted counters (the run then also counts acknowledged updates
    /// lost); `postgres` starts a throwaway server unless
    /// `PROTOACTOR_CHAOS_POSTGRES` holds a connection string.
    #[arg(long, value_enum, default_value = "none")]
    pub persist: PersistKind,
    /// CI preset: at most 500 grains, 8 workers, 4 s phases; faults
    /// kill,stop,rolling unless --faults says otherwise.
    #[arg(long)]
    pub short: bool,
    /// Seconds a request may take before it counts as hung.
    #[arg(long, default_value_t = 30)]
    pub hang_secs: u64,
    /// Where the report (JSON, SVG, journals) goes; default a temp directory.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Delay each message by this much on its way to a member (through a
    /// userspace TCP relay on every member link; no root needed).
    #[arg(long, default_value_t = 0)]
    pub link_delay_ms: u64,
    /// Lose this percentage of the chunks on member links (through the
    /// relays): each lost chunk stalls its connection for a TCP
    /// retransmission timeout (200 ms), as a lost segment does.
    #[arg(long, default_value_t = 0.0)]
    pub link_loss: f64,
}

impl RunArgs {
    /// True when members sit behind relays: link conditions or a one-way cut.
    pub(crate) fn relayed(&self) -> bool {
        self.link_delay_ms > 0
            || self.link_loss > 0.0
            || self.faults.as_ref().is_some_and(|f| f.contains(&Fault::Oneway))
    }
}

impl RunArgs {
    /// Applies `--short` and the default faults.
    fn effective(mut self) -> RunArgs {
        if self.short {
            self.grains = self.grains.min(500);
            self.workers = self.workers.min(8);
            self.phase_secs = self.phase_secs.min(4);
            self.faults.get_or_insert_with(|| vec![Fault::Kill, Fault::Stop, Fault::Rolling]);
        }
        self.faults.get_or_insert_with(|| vec![Fault::Kill]);
        self
    }
}

/// Runs what the command line says; the exit status of the process.
pub fn run(cli: Cli) -> ExitCode {
    init_tracing();
    match cli.command {
        Some(Command::Member(args)) => member::run(args),
        None => orchestrator::run(cli.run.effective()),
    }
}

/// Logs to stderr only when `RUST_LOG` is set.
fn init_tracing() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
    }
}
