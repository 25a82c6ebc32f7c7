//! The member role (`protoactor-chaos member ...`): hosts counter grains and
//! the plain actors of the baseline until its stdin closes, then leaves the
//! cluster gracefully. Every activation and every stop of a grain is one
//! line appended to its activation journal (written at once, so a kill -9
//! loses none): `A <identity> <activation> <unix µs>` and
//! `S <identity> <activation> <unix µs> <count>` (also before a restart in
//! place, whose new instance journals its own `A`). Every 500 ms it also
//! appends `R <unix µs> <requests answered so far>`, so the tool can tell
//! whether a member cut off from the others went on answering.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use protoactor_actor::prelude::*;
use protoactor_cluster::{Cluster, GrainContext, Kind};
use protoactor_persistence::{EventSourced, Journal, Provider, SnapshotPolicy};
use serde::{Deserialize, Serialize};

use crate::backend::{KIND, LookupKind, ProviderKind, cluster_config};
use crate::proto::{CountReply, Increment};

/// The member's command line (the tool starts members; users need not).
#[derive(Debug, clap::Args)]
pub struct MemberArgs {
    /// Port of this member's health endpoint (its place in the peer list).
    #[arg(long)]
    health_port: u16,
    /// Health endpoints of all members, comma separated.
    #[arg(long, value_delimiter = ',', required = true)]
    peers: Vec<String>,
    /// The activation journal to append to.
    #[arg(long)]
    journal: PathBuf,
    /// Plain actors `plain-<i>` to pre-spawn for the baseline, for the
    /// indices i given as `start:step:end` (i = start, start+step, ... < end).
    #[arg(long, default_value = "0:1:0")]
    plain: String,
    /// Membership provider.
    #[arg(long, value_enum, default_value = "automanaged")]
    provider: ProviderKind,
    /// Identity lookup.
    #[arg(long, value_enum, default_value = "partition")]
    lookup: LookupKind,
    /// The provider's server (etcd endpoint, ZooKeeper connect string).
    #[arg(long, default_value = "")]
    endpoint: String,
    /// The lookup's server (Redis URL, MongoDB connection string).
    #[arg(long, default_value = "")]
    lookup_url: String,
    /// Persisted counters: `sqlite:<path>` or `postgres:<connection string>`
    /// (none: counts in memory).
    #[arg(long)]
    store: Option<String>,
    /// The address to bind (remoting and health): 127.0.0.1, or this
    /// member's address in its network namespace.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Remoting port (0: any free one).
    #[arg(long, default_value_t = 0)]
    remote_port: u16,
    /// The host others reach this member's remoting at (its relay), instead
    /// of the bound one.
    #[arg(long)]
    advertise: Option<String>,
}

/// The activation journal of this process.
static JOURNAL: OnceLock<Mutex<File>> = OnceLock::new();

/// Appends one line in a single write (the file is opened to append).
fn journal(line: String) {
    if let Some(file) = JOURNAL.get() {
        let mut file = file.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Err(e) = file.write_all(line.as_bytes()) {
            tracing::warn!(error = %e, "cannot append to the activation journal");
        }
    }
}

/// Grain requests this process answered.
static SERVED: AtomicU64 = AtomicU64::new(0);

/// Journals `R <unix µs> <answered>` every 500 ms.
async fn journal_served() {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
        journal(format!("R {} {}\n", unix_micros(), SERVED.load(Ordering::Relaxed)));
    }
}

/// Microseconds since the Unix epoch: the clock all processes of a run share.
pub(crate) fn unix_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}

/// Request ids a persisted grain remembers, to answer a retried request
/// again without counting it twice.
const REMEMBERED: usize = 64;

/// A persisted counter's state.
#[derive(Default, Serialize, Deserialize)]
pub(crate) struct Count {
    pub(crate) count: u64,
    recent: VecDeque<u64>,
}

/// The one event of a persisted counter.
#[derive(Serialize, Deserialize)]
pub(crate) struct Incremented {
    request: u64,
}

impl EventSourced for Count {
    type Event = Incremented;
    fn apply(&mut self, event: &Incremented) {
        self.count += 1;
        self.recent.push_back(event.request);
        if self.recent.len() > REMEMBERED {
            self.recent.pop_front();
        }
    }
}

/// The journal id of a persisted counter.
pub(crate) fn journal_id(identity: &str) -> String {
    format!("chaos-counter/{identity}")
}

/// A counter grain: journals its activation and stop, counts requests
/// (in memory, or persisted before it answers).
struct Counter {
    identity: String,
    activation: u64,
    count: u64,
    store: Option<Arc<dyn Provider>>,
    persisted: Option<Journal<Count>>,
}

impl Actor for Counter {
    async fn receive(&mut self, ctx: &mut Context) -> ActorResult {
        if ctx.message_is::<Started>() {
            static NEXT: AtomicU64 = AtomicU64::new(1);
            self.identity = ctx.cluster_identity().map(|i| i.identity.clone()).unwrap_or_default();
            self.activation = (u64::from(std::process::id()) << 32) | NEXT.fetch_add(1, Ordering::Relaxed);
            journal(format!("A {} {} {}\n", self.identity, self.activation, unix_micros()));
            if let Some(store) = &self.store {
                let policy = SnapshotPolicy::every(100).and_on_stop();
                self.persisted =
                    Some(Journal::recover_in(ctx, store.clone(), journal_id(&self.identity), policy).await?);
            }
        } else if let Some(Increment { request }) = ctx.message::<Increment>() {
            let request = *request;
            let count = match self.persisted.as_mut() {
                Some(persisted) => {
                    if !persisted.state().recent.contains(&request) {
                        persisted.persist(Incremented { request }).await?;
                    }
                    persisted.state().count
                }
                None => {
                    self.count += 1;
                    self.count
                }
            };
            ctx.respond(CountReply { count, member: ctx.system().address().to_string() });
            SERVED.fetch_add(1, Ordering::Relaxed);
        } else if ctx.message_is::<Restarting>() {
            // A failed grain (its store was unreachable) is restarted in
            // place: this instance ends here and the next journals its own start.
            let count = self.persisted.as_ref().map_or(self.count, |p| p.state().count);
            journal(format!("S {} {} {} {}\n", self.identity, self.activation, unix_micros(), count));
        } else if ctx.message_is::<Stopping>() {
            let count = self.persisted.as_ref().map_or(self.count, |p| p.state().count);
            journal(format!("S {} {} {} {}\n", self.identity, self.activation, unix_micros(), count));
            if let Some(persisted) = self.persisted.as_mut() {
                persisted.on_stopping().await?;
            }
        }
        Ok(())
    }
}

/// A plain actor for the baseline: the same work without the cluster.
struct Plain {
    count: u64,
}

impl Actor for Plain {
    async fn receive(&mut self, ctx: &mut Context) -> ActorResult {
        if ctx.message_is::<Increment>() {
            self.count += 1;
            ctx.respond(CountReply { count: self.count, member: ctx.system().address().to_string() });
        }
        Ok(())
    }
}

/// Parses `start:step:end`.
fn plain_range(spec: &str) -> Result<std::iter::StepBy<std::ops::Range<usize>>, String> {
    let parts: Vec<usize> = spec
        .split(':')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("--plain {spec}: {e} (expected start:step:end)"))?;
    match parts.as_slice() {
        [start, step, end] if *step > 0 => Ok((*start..*end).step_by(*step)),
        _ => Err(format!("--plain {spec}: expected start:step:end with step > 0")),
    }
}

/// Runs the member role until its stdin closes (or Ctrl-C).
pub(crate) fn run(args: MemberArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("chaos member: cannot start a tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args)) {
        Ok(Ended::Left) => ExitCode::SUCCESS,
        Ok(Ended::Blocked) => {
            eprintln!(
                "chaos member: the cluster declared this member dead and blocked it; exiting so a new member (new id) can take its place"
            );
            ExitCode::from(EXIT_BLOCKED)
        }
        Err(e) => {
            eprintln!("chaos member: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The exit status of a member whose cluster shut it down because the
/// others blocked it (it was declared dead, then came back).
pub(crate) const EXIT_BLOCKED: u8 = 3;

/// Why a member's process ends.
enum Ended {
    /// Asked to leave (stdin closed, Ctrl-C): it left gracefully.
    Left,
    /// The cluster learned that the others blocked this member and shut it
    /// down. A blocked id never comes back, so staying alive would leave a
    /// process that serves nobody: it exits and the tool starts a new member.
    Blocked,
}

/// Returns once the member's actor system is shutting down by itself.
async fn shut_down_by_cluster(system: &ActorSystem) {
    // The cluster stops its system when it learns it is blocked; no event
    // says so to the host, so poll (cheap, and only this task waits).
    while !system.is_shutting_down() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn serve(args: MemberArgs) -> Result<Ended, crate::Error> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&args.journal)
        .map_err(|e| crate::Error::Io(format!("cannot open the journal {}", args.journal.display()), e))?;
    let _ = JOURNAL.set(Mutex::new(file));
    let store = match &args.store {
        Some(spec) => Some(crate::store::provider(spec).await?),
        None => None,
    };
    let plain = plain_range(&args.plain).map_err(crate::Error::Member)?;
    let props = Props::from_producer(move || Counter {
        identity: String::new(),
        activation: 0,
        count: 0,
        store: store.clone(),
        persisted: None,
    });
    let config = cluster_config(
        args.provider,
        args.lookup,
        &args.peers,
        Some(args.health_port),
        &args.endpoint,
        &args.lookup_url,
        &args.host,
    )?
    .with_kind(Kind::new(KIND, props));
    let config = match &args.advertise {
        // Behind a relay: bound here, reached through the relay's address.
        Some(advertised) => config.with_remote(
            protoactor_remote::RemoteConfig::bind(&args.host, args.remote_port)
                .with_advertised_host(advertised)
                .with_protobuf::<Increment>()
                .with_protobuf::<CountReply>(),
        ),
        None => config,
    };
    let system = ActorSystem::new();
    let cluster = Cluster::new(&system, config).map_err(|e| crate::Error::Member(e.to_string()))?;
    if let Err(e) = cluster.start_member().await {
        cluster.shutdown(false).await;
        return Err(crate::Error::Member(e.to_string()));
    }
    for i in plain {
        let _ = system.root().spawn_named(Props::from_producer(|| Plain { count: 0 }), &format!("plain-{i}"));
    }
    tokio::spawn(journal_served());
    let mut out = std::io::stdout();
    // The tool may be gone already: a failed write is not an error here.
    let _ = writeln!(out, "ready {} {}", cluster.id(), cluster.address()).and_then(|()| out.flush());

    // Stdin closing is the tool asking this member to leave (or dying).
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
        () = shut_down_by_cluster(&system) => {
            // Let the shutdown finish (stop lines of its grains journaled).
            let _ = tokio::time::timeout(Duration::from_secs(15), cluster.shutdown(false)).await;
            return Ok(Ended::Blocked);
        }
    }
    tracing::info!(member = cluster.id(), "leaving the cluster");
    if tokio::time::timeout(Duration::from_secs(15), cluster.shutdown(true)).await.is_err() {
        return Err(crate::Error::Member("the graceful leave took longer than 15 s".into()));
    }
    Ok(Ended::Left)
}
