//! One run: members up, grains activated, the baseline, the steady cluster
//! phase, the faults, then the analysis and the outputs.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use protoactor_actor::prelude::*;
use protoactor_cluster::Cluster;

use crate::backend::{PersistKind, ProviderKind, cluster_config, detection_window};
use crate::load::{Load, Mode, Shared, Targets, activate_all, histogram, lock};
use crate::member::EXIT_BLOCKED;
use crate::netns::Net;
use crate::procs::{Launch, MemberProcess, free_ports};
use crate::relay::{Link, Relay};
use crate::report::{self, FAULT_GRACE, FaultRecord, Latency, MemberRecord, Report, Second, Steady};
use crate::store::{LookupServer, ProviderServer, Store};
use crate::{Error, Fault, RunArgs};

/// One 100 ms tick of the counters.
#[derive(Debug, Clone, Copy)]
struct Tick {
    answered: u64,
    mode: Mode,
}

/// What the sampler collects while the load runs.
#[derive(Debug)]
struct Timeline {
    start: Instant,
    ticks: Vec<Tick>,
    seconds: Vec<Second>,
    last_answered: u64,
    last_second_answered: u64,
    plain: Histogram<u64>,
    cluster_steady: Histogram<u64>,
    cluster_all: Histogram<u64>,
    /// Until the first fault, cluster latencies also go to `cluster_steady`.
    steady: bool,
}

impl Timeline {
    fn new() -> Timeline {
        Timeline {
            start: Instant::now(),
            ticks: Vec::new(),
            seconds: Vec::new(),
            last_answered: 0,
            last_second_answered: 0,
            plain: histogram(),
            cluster_steady: histogram(),
            cluster_all: histogram(),
            steady: true,
        }
    }

    fn tick(&mut self, shared: &Shared) {
        let answered = shared.stats.answered();
        self.ticks.push(Tick { answered: answered - self.last_answered, mode: shared.mode() });
        self.last_answered = answered;
    }

    /// Merges the workers' histograms into the phase's totals and closes one second.
    fn second(&mut self, shared: &Shared, mode: Mode) -> Option<(u64, f64)> {
        let h = shared.take_histogram();
        let answered = shared.stats.answered();
        let rps = answered - self.last_second_answered;
        self.last_second_answered = answered;
        let p99_ms = h.value_at_quantile(0.99) as f64 / 1000.0;
        match mode {
            Mode::Plain => {
                let _ = self.plain.add(&h);
            }
            Mode::Cluster => {
                let _ = self.cluster_all.add(&h);
                if self.steady {
                    let _ = self.cluster_steady.add(&h);
                }
            }
            Mode::Idle => return None,
        }
        let mode = if mode == Mode::Plain { "plain" } else { "cluster" };
        self.seconds.push(Second { t: self.start.elapsed().as_secs_f64(), rps, p99_ms, mode });
        Some((rps, p99_ms))
    }

    fn now_s(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }
}

/// The tool's side of a run.
struct Run {
    args: RunArgs,
    launch: Launch,
    ports: Vec<u16>,
    /// Live members by slot.
    members: Vec<MemberProcess>,
    /// Members that were killed or replaced.
    ended: Vec<MemberProcess>,
    /// The namespaces members run in (`partition`); after the members, so
    /// their processes are killed before it is removed.
    net: Option<Net>,
    /// What the tool and the members bind: 127.0.0.1, or addresses on the bridge.
    host: String,
    /// Members behind relays (`--link-delay-ms`, `--link-loss`, `oneway`).
    relays: Option<Relays>,
    generation: Vec<u32>,
    timeline: Arc<Mutex<Timeline>>,
    shared: Option<Arc<Shared>>,
    store: Option<Store>,
    /// The provider's server (etcd, ZooKeeper) and its endpoint.
    provider_server: Option<ProviderServer>,
    endpoint: String,
    /// The lookup's server (Redis, MongoDB), if this run started it, and its URL.
    lookup_server: Option<LookupServer>,
    lookup_url: String,
    progress: ProgressBar,
    start_unix: u64,
}

/// The `start:step:end` of slot `slot`'s plain actors.
fn plain_spec(slot: usize, members: usize, grains: usize) -> String {
    format!("{slot}:{members}:{grains}")
}

impl Run {
    /// Waits `d`, sampling the members' RSS once a second.
    async fn wait(&mut self, d: Duration) {
        let until = Instant::now() + d;
        while Instant::now() < until {
            for m in &mut self.members {
                m.sample_rss();
            }
            tokio::time::sleep(until.saturating_duration_since(Instant::now()).min(Duration::from_secs(1))).await;
        }
    }

    async fn start_member(&mut self, slot: usize) -> Result<MemberProcess, Error> {
        self.generation[slot] += 1;
        let name = format!("m{}.{}", slot + 1, self.generation[slot]);
        self.say(format!("starting member {name}"));
        let (host, netns) = match &self.net {
            Some(net) => (net.member_ip(slot), net.netns_path(slot)),
            None => (self.host.clone(), None),
        };
        let mut launch = self.launch.clone();
        if let Some(relays) = &mut self.relays {
            let port = relays.remote(slot).await?;
            launch.common.extend(["--remote-port".into(), port.to_string(), "--advertise".into(), relay_host(slot)]);
        }
        MemberProcess::start(
            &launch,
            name,
            self.ports[slot],
            &plain_spec(slot, self.args.members, self.args.grains),
            &host,
            netns.as_deref(),
        )
        .await
    }

    fn set_mode(&self, mode: Mode) {
        if let Some(shared) = &self.shared {
            let previous = shared.mode();
            lock(&self.timeline).second(shared, previous);
            shared.set_mode(mode);
        }
    }

    /// A line above the progress bar, or on stderr when there is none.
    fn say(&self, line: String) {
        if self.progress.is_hidden() {
            eprintln!("{line}");
        } else {
            self.progress.println(line);
        }
    }

    async fn fault(&mut self, fault: Fault, index: usize) -> Result<FaultRecord, Error> {
        let slot = index % self.args.members;
        let at_s = lock(&self.timeline).now_s();
        lock(&self.timeline).steady = false;
        let member = match fault {
            Fault::Kill => {
                let name = self.members[slot].name.clone();
                self.say(format!("[{at_s:6.1}s] kill -9 {name}"));
                self.members[slot].kill().await?;
                // The cluster runs on the survivors for a while before the replacement joins.
                self.wait(detection_window(self.args.provider) * 2).await;
                let replacement = self.start_member(slot).await?;
                let old = std::mem::replace(&mut self.members[slot], replacement);
                self.ended.push(old);
                name
            }
            Fault::Stop => {
                let name = self.members[slot].name.clone();
                // Well past detection: the others must have declared it dead.
                let pause = detection_window(self.args.provider) * 2 + Duration::from_secs(2);
                self.say(format!("[{at_s:6.1}s] SIGSTOP {name} for {pause:?}"));
                self.members[slot].pause(true)?;
                self.wait(pause).await;
                self.members[slot].pause(false)?;
                self.say(format!("[{:6.1}s] SIGCONT {name}", lock(&self.timeline).now_s()));
                name
            }
            Fault::Rolling => {
                self.say(format!("[{at_s:6.1}s] rolling restart of {} members", self.members.len()));
                for slot in 0..self.members.len() {
                    let clean = self.members[slot].leave(Duration::from_secs(20)).await;
                    if !clean {
                        self.say(format!("{} did not leave cleanly", self.members[slot].name));
                    }
                    let replacement = self.start_member(slot).await?;
                    let old = std::mem::replace(&mut self.members[slot], replacement);
                    self.ended.push(old);
                }
                "all".to_string()
            }
            Fault::Store => {
                let mut restarted = Vec::new();
                if self.provider_server.is_some() {
                    self.say(format!("[{at_s:6.1}s] restarting the {:?} server", self.args.provider));
                    ProviderServer::restart(&mut self.provider_server).await?;
                    restarted.push(format!("{:?}", self.args.provider).to_lowercase());
                }
                if self.lookup_server.as_ref().is_some_and(LookupServer::restartable) {
                    self.say(format!("[{at_s:6.1}s] restarting the {:?} server", self.args.lookup));
                    LookupServer::restart(&mut self.lookup_server).await?;
                    restarted.push(format!("{:?}", self.args.lookup).to_lowercase());
                }
                if self.store.as_ref().is_some_and(Store::restartable) {
                    self.say(format!("[{at_s:6.1}s] restarting the PostgreSQL server"));
                }
                if let Some(store) = self.store.as_mut().filter(|s| s.restartable()) {
                    store.restart().await?;
                    restarted.push("postgres".into());
                }
                restarted.join("+")
            }
            Fault::Partition => {
                let name = self.members[slot].name.clone();
                let cut_for = partition_length(self.args.short);
                let net = self
                    .net
                    .as_ref()
                    .ok_or_else(|| Error::Net("the partition fault needs the run's namespaces".into()))?;
                self.say(format!("[{at_s:6.1}s] partition: {name} cut off (its veth down) for {cut_for:?}"));
                net.cut(slot, true)?;
                self.wait(cut_for).await;
                if let Some(net) = &self.net {
                    net.cut(slot, false)?;
                }
                self.say(format!("[{:6.1}s] healed: {name}'s veth up", lock(&self.timeline).now_s()));
                name
            }
            Fault::Oneway => {
                let name = self.members[slot].name.clone();
                let cut_for = partition_length(self.args.short);
                let link = self
                    .relays
                    .as_ref()
                    .and_then(|r| r.links.get(slot).cloned())
                    .ok_or_else(|| Error::Net("the oneway fault needs the run's relays".into()))?;
                self.say(format!("[{at_s:6.1}s] one-way partition: nothing reaches {name} for {cut_for:?}"));
                link.set_cut(true, true);
                self.wait(cut_for).await;
                link.set_cut(true, false);
                self.say(format!("[{:6.1}s] healed: {name} hears again", lock(&self.timeline).now_s()));
                name
            }
        };
        let end_s = lock(&self.timeline).now_s();
        Ok(FaultRecord {
            kind: fault,
            member,
            at_s,
            end_s,
            recovered_after_s: None,
            lowest_throughput_ratio: 1.0,
            failed_in_window: 0,
            converged_after_s: None,
            stuck_members: 0,
            stepped_down: Vec::new(),
            exited: Vec::new(),
            cut_off_answered: None,
            majority_answered: None,
            majority_silent_seconds: None,
        })
    }

    /// After a fault: restarts members whose process exited (a member that
    /// learns the others blocked it exits, see `member::EXIT_BLOCKED`) and
    /// waits (up to [`SETTLE_WITHIN`]) until the client's topology holds
    /// every live member. Fills the record's convergence, stuck, stepped-down
    /// and exited figures.
    async fn settle(&mut self, client: &Cluster, record: &mut FaultRecord) -> Result<(), Error> {
        let deadline = Instant::now() + SETTLE_WITHIN;
        loop {
            for slot in 0..self.members.len() {
                let Some(status) = self.members[slot].exited() else { continue };
                let name = self.members[slot].name.clone();
                if status.code() == Some(i32::from(EXIT_BLOCKED)) {
                    self.say(format!("{name} learned that the others blocked it and exited; starting a new member"));
                    record.stepped_down.push(name);
                } else {
                    self.say(format!("{name} exited unasked ({status}); starting a new member"));
                    record.exited.push(format!("{name} ({status})"));
                }
                let replacement = self.start_member(slot).await?;
                let old = std::mem::replace(&mut self.members[slot], replacement);
                self.ended.push(old);
            }
            let missing: Vec<String> = self
                .members
                .iter()
                .filter(|m| !client.member_list().contains_address(&m.address))
                .map(|m| m.name.clone())
                .collect();
            if missing.is_empty() {
                record.converged_after_s = Some(lock(&self.timeline).now_s() - record.end_s);
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.say(format!("live members missing from the topology after the fault: {}", missing.join(", ")));
                record.stuck_members = missing.len() as u64;
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The loopback address slot `slot`'s relays listen on (127/8 is all
/// loopback on Linux: no root needed).
fn relay_host(slot: usize) -> String {
    format!("127.0.1.{}", slot + 1)
}

/// One relay per member link: health endpoint (fixed per slot) and
/// remoting (new per member process), under the slot's [`Link`].
struct Relays {
    links: Vec<Arc<Link>>,
    health: Vec<Relay>,
    remote: Vec<Option<Relay>>,
}

impl Relays {
    /// Relays for the health endpoints `127.0.0.1:<port>` of `ports`, under
    /// links with `delay` and `loss` (a fraction).
    async fn start(ports: &[u16], delay: Duration, loss: f64) -> Result<Relays, Error> {
        let mut relays = Relays { links: Vec::new(), health: Vec::new(), remote: Vec::new() };
        for (slot, port) in ports.iter().enumerate() {
            let link = Arc::new(Link::default());
            link.set_delay(delay);
            link.set_loss(loss);
            let listen = relay_address(slot, *port)?;
            let target = std::net::SocketAddr::from(([127, 0, 0, 1], *port));
            let relay = Relay::start(listen, target, link.clone()).await?;
            tracing::debug!(slot, relay = %relay.local(), %target, "health endpoint relay");
            relays.health.push(relay);
            relays.links.push(link);
            relays.remote.push(None);
        }
        Ok(relays)
    }

    /// A fresh remoting port for slot `slot`'s next process, its relay
    /// already listening (so the member is reachable the moment it joins).
    async fn remote(&mut self, slot: usize) -> Result<u16, Error> {
        let port = free_ports(1)?.first().copied().ok_or_else(|| Error::Net("no free port".into()))?;
        let target = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let link = self.links.get(slot).cloned().ok_or_else(|| Error::Net(format!("no link for slot {slot}")))?;
        let relay = Relay::start(relay_address(slot, port)?, target, link).await?;
        if let Some(old) = self.remote.get_mut(slot) {
            *old = Some(relay);
        }
        Ok(port)
    }
}

fn relay_address(slot: usize, port: u16) -> Result<std::net::SocketAddr, Error> {
    format!("{}:{port}", relay_host(slot)).parse().map_err(|e| Error::Net(format!("relay address: {e}")))
}

/// How long after a fault's end every live member must be in the topology.
const SETTLE_WITHIN: Duration = Duration::from_secs(10);

/// How long `partition` cuts a member off.
fn partition_length(short: bool) -> Duration {
    Duration::from_secs(if short { 5 } else { 10 })
}

/// Runs the tool; the exit status says whether every bound held.
pub(crate) fn run(args: RunArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("protoactor-chaos: cannot start a tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(drive(args)) {
        Ok((report, dir)) => {
            println!("{}", report.summary());
            let json = dir.join("report.json");
            let svg = dir.join("chart.svg");
            for (what, result) in [("JSON", report.write_json(&json)), ("SVG", report.write_svg(&svg))] {
                if let Err(e) = result {
                    eprintln!("protoactor-chaos: {what}: {e}");
                    return ExitCode::FAILURE;
                }
            }
            println!("report: {}\nchart:  {}", json.display(), svg.display());
            if report.passed() {
                ExitCode::SUCCESS
            } else {
                eprintln!("protoactor-chaos: a count broke its bound (FAIL lines above)");
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("protoactor-chaos: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn drive(args: RunArgs) -> Result<(Report, PathBuf), Error> {
    let dir = args
        .out
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("protoactor-chaos-{}", std::process::id())));
    std::fs::create_dir_all(&dir).map_err(|e| Error::Io(format!("cannot create {}", dir.display()), e))?;
    let planned = faults_planned(&args);
    let net = if planned.contains(&Fault::Partition) {
        if args.provider != ProviderKind::Automanaged || args.persist == PersistKind::Postgres {
            return Err(Error::Net(
                "--faults partition runs the members in network namespaces that reach only each other and the tool: \
                 use it with --provider automanaged and without --persist postgres (their servers listen on the tool's loopback)"
                    .into(),
            ));
        }
        Some(Net::create(args.members)?)
    } else {
        None
    };
    let ports = free_ports(args.members)?;
    let relays = if args.relayed() {
        if net.is_some() {
            return Err(Error::Net(
                "relays (--link-delay-ms, --link-loss, oneway) run on loopback: leave partition out of --faults".into(),
            ));
        }
        let delay = Duration::from_millis(args.link_delay_ms);
        Some(Relays::start(&ports, delay, args.link_loss / 100.0).await?)
    } else {
        None
    };
    let (host, peers): (String, Vec<String>) = match &net {
        Some(net) => {
            (net.host_ip(), ports.iter().enumerate().map(|(i, p)| format!("{}:{p}", net.member_ip(i))).collect())
        }
        None if relays.is_some() => {
            ("127.0.0.1".into(), ports.iter().enumerate().map(|(i, p)| format!("{}:{p}", relay_host(i))).collect())
        }
        None => ("127.0.0.1".into(), ports.iter().map(|p| format!("127.0.0.1:{p}")).collect()),
    };
    let mut common = vec![
        "--peers".to_string(),
        peers.join(","),
        "--provider".into(),
        format!("{:?}", args.provider).to_lowercase(),
        "--lookup".into(),
        format!("{:?}", args.lookup).to_lowercase(),
    ];
    let own_postgres = args.persist == PersistKind::Postgres && std::env::var_os("PROTOACTOR_CHAOS_POSTGRES").is_none();
    let own_lookup = args.lookup.has_store() && args.lookup_url.is_none();
    if planned.contains(&Fault::Store)
        && args.provider == crate::ProviderKind::Automanaged
        && !own_postgres
        && !own_lookup
    {
        return Err(Error::Member(
            "--faults store restarts the run's servers: use it with --provider etcd|zookeeper, --lookup redis|mongo (without --lookup-url) or --persist postgres (without PROTOACTOR_CHAOS_POSTGRES)".into(),
        ));
    }
    let (lookup_server, lookup_url) = match (&args.lookup_url, args.lookup) {
        (Some(_), crate::LookupKind::Partition) => {
            return Err(Error::Member("--lookup-url needs --lookup redis or --lookup mongo".into()));
        }
        (Some(url), _) => (None, url.clone()),
        (None, kind) => match LookupServer::start(kind).await? {
            Some((server, url)) => (Some(server), url),
            None => (None, String::new()),
        },
    };
    if !lookup_url.is_empty() {
        common.extend(["--lookup-url".to_string(), lookup_url.clone()]);
    }
    let (provider_server, endpoint) = match ProviderServer::start(args.provider).await? {
        Some((server, endpoint)) => (Some(server), endpoint),
        None => (None, String::new()),
    };
    if !endpoint.is_empty() {
        common.extend(["--endpoint".to_string(), endpoint.clone()]);
    }
    let store = Store::prepare(args.persist, &dir).await?;
    if let Some(store) = &store {
        common.extend(["--store".to_string(), store.spec.clone()]);
    }
    let progress = if std::io::stderr().is_terminal() { ProgressBar::new(0) } else { ProgressBar::hidden() };
    let mut run = Run {
        launch: Launch { common, dir: dir.clone() },
        members: Vec::new(),
        ended: Vec::new(),
        net,
        host,
        relays,
        generation: vec![0; args.members],
        ports,
        timeline: Arc::new(Mutex::new(Timeline::new())),
        shared: None,
        store,
        provider_server,
        endpoint,
        lookup_server,
        lookup_url,
        progress,
        start_unix: 0,
        args,
    };
    let result = tokio::select! {
        result = drive_members(&mut run, &peers) => result,
        signal = interrupted() => Err(Error::Interrupted(signal)),
    };
    // Whatever happened, every member leaves (so its stop lines are written).
    for m in &mut run.members {
        let _ = m.leave(Duration::from_secs(20)).await;
    }
    run.progress.finish_and_clear();
    if let Some(net) = &mut run.net {
        net.remove();
    }
    let (client, shared, faults) = result?;
    client.shutdown(true).await;
    let lost = match &run.store {
        Some(store) => Some(lost_updates(&store.spec, &shared, &client_ids(run.args.grains)).await?),
        None => None,
    };
    let report = analyse(&run, &shared, faults, lost)?;
    Ok((report, dir))
}

/// Ctrl-C or SIGTERM: the run stops, its members leave and what it made is removed.
async fn interrupted() -> &'static str {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "Ctrl-C",
        () = term => "SIGTERM",
    }
}

fn faults_planned(args: &RunArgs) -> Vec<Fault> {
    args.faults.clone().unwrap_or_default()
}

fn client_ids(grains: usize) -> Vec<String> {
    (0..grains).map(|i| format!("g{i}")).collect()
}

async fn drive_members(run: &mut Run, peers: &[String]) -> Result<(Cluster, Arc<Shared>, Vec<FaultRecord>), Error> {
    let args = run.args.clone();
    run.say(format!("output: {}", run.launch.dir.display()));
    for slot in 0..args.members {
        let m = run.start_member(slot).await?;
        run.members.push(m);
    }
    let config = cluster_config(args.provider, args.lookup, peers, None, &run.endpoint, &run.lookup_url, &run.host)?;
    let client = Cluster::new(&ActorSystem::new(), config)?;
    client.start_client().await?;
    let targets = Arc::new(Targets {
        ids: client_ids(args.grains),
        plain: (0..args.grains)
            .map(|i| Pid::new(run.members[i % args.members].address.clone(), format!("plain-{i}")))
            .collect(),
    });
    let load = Load::start(&client, targets.clone(), args.workers, args.rate, Duration::from_secs(args.hang_secs));
    let shared = load.shared.clone();
    run.shared = Some(shared.clone());
    let started = Instant::now();
    let failed = activate_all(&client, targets, shared.clone(), args.workers).await;
    run.say(format!("{} grains activated in {:.1?} ({failed} failed)", args.grains, started.elapsed()));

    // The sampler: a tick every 100 ms, a second (histograms merged) every 10.
    *lock(&run.timeline) = Timeline::new();
    run.start_unix = crate::member::unix_micros();
    let planned = args.phase_secs * (2 + faults_planned(&args).len() as u64);
    run.progress.set_length(planned);
    run.progress.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len}s {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let sampler = {
        let (timeline, shared, progress) = (run.timeline.clone(), shared.clone(), run.progress.clone());
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(Duration::from_millis(100));
            let mut n = 0u64;
            loop {
                interval.tick().await;
                let mut t = lock(&timeline);
                t.tick(&shared);
                n += 1;
                if n.is_multiple_of(10)
                    && let Some((rps, p99)) = t.second(&shared, shared.mode())
                {
                    let line = format!(
                        "{rps} req/s, p99 {p99:.2} ms, {} failed, {} hung",
                        shared.stats.failed(),
                        shared.stats.hung()
                    );
                    if progress.is_hidden() {
                        // Not a terminal (CI logs): a line every 5 s.
                        if n.is_multiple_of(50) {
                            eprintln!("[{:6.1}s] {line}", t.now_s());
                        }
                    } else {
                        progress.set_position(n / 10);
                        progress.set_message(line);
                    }
                }
            }
        })
    };

    let phase = Duration::from_secs(args.phase_secs);
    if !args.no_baseline {
        run.say("phase: baseline, plain remote requests to pre-spawned actors".into());
        run.set_mode(Mode::Plain);
        run.wait(phase).await;
    }
    run.say("phase: cluster requests to grains".into());
    run.set_mode(Mode::Cluster);
    run.wait(phase).await;
    let mut faults = Vec::new();
    for (i, fault) in faults_planned(&args).iter().enumerate() {
        let mut record = run.fault(*fault, i).await?;
        run.settle(&client, &mut record).await?;
        faults.push(record);
        run.wait(phase).await;
    }
    run.set_mode(Mode::Idle);
    sampler.abort();
    load.stop().await;
    Ok((client, shared, faults))
}

/// Acknowledged increments missing from the store, over all grains.
async fn lost_updates(spec: &str, shared: &Shared, ids: &[String]) -> Result<u64, Error> {
    use protoactor_persistence::{Journal, SnapshotPolicy};
    let store = crate::store::provider(spec).await?;
    let mut lost = 0;
    for (i, id) in ids.iter().enumerate() {
        let journal = Journal::<crate::member::Count>::recover(
            store.clone(),
            crate::member::journal_id(id),
            SnapshotPolicy::none(),
        )
        .await
        .map_err(|e| Error::Report(format!("cannot recover {id}: {e}")))?;
        let acked = shared.counters.acknowledged[i].load(Ordering::Relaxed);
        lost += acked.saturating_sub(journal.state().count);
    }
    Ok(lost)
}

/// Turns what was collected into the report (bounds checked).
fn analyse(run: &Run, shared: &Shared, mut faults: Vec<FaultRecord>, lost: Option<u64>) -> Result<Report, Error> {
    let timeline = lock(&run.timeline);
    let c = &shared.stats;
    let grace = FAULT_GRACE.as_secs_f64();
    // Fault windows in ms since the failure records' epoch and in unix µs.
    let offset_ms = timeline.start.saturating_duration_since(shared.stats.epoch()).as_millis() as f64;
    let failures = shared.stats.failures();
    let in_window = |&(start, end): &(u64, u64), f: &FaultRecord| {
        let (from, to) = (offset_ms + f.at_s * 1000.0, offset_ms + (f.end_s + grace) * 1000.0);
        (start as f64) <= to && (end as f64) >= from
    };
    let failed_outside_faults = failures.iter().filter(|r| !faults.iter().any(|f| in_window(r, f))).count() as u64;
    let detection = detection_window(run.args.provider).as_secs_f64();
    for f in &mut faults {
        f.failed_in_window = failures.iter().filter(|r| in_window(r, f)).count() as u64;
        recovery(&timeline.ticks, f, grace);
        if f.kind == Fault::Partition {
            partition_figures(run, &timeline.ticks, f, detection);
        }
    }
    let windows: Vec<(u64, u64)> = faults
        .iter()
        .map(|f| {
            let us = |s: f64| run.start_unix + (s * 1e6) as u64;
            (us(f.at_s), us(f.end_s + grace))
        })
        .collect();
    let mut spans = Vec::new();
    let mut members = Vec::new();
    let run_end = crate::member::unix_micros();
    for m in run.ended.iter().chain(&run.members) {
        let text = std::fs::read_to_string(&m.journal).unwrap_or_default();
        let mine = report::read_journal(&text, m.ended_at.unwrap_or(run_end));
        members.push(MemberRecord {
            name: m.name.clone(),
            pid: m.pid,
            peak_rss_mib: m.peak_rss_kib as f64 / 1024.0,
            activations: mine.len() as u64,
        });
        spans.extend(mine);
    }
    members.sort_by(|a, b| a.name.cmp(&b.name));
    let phase = run.args.phase_secs as f64;
    let plain = (!run.args.no_baseline)
        .then(|| Steady { rps: timeline.plain.len() as f64 / phase, latency: Latency::of(&timeline.plain) });
    let cluster =
        Steady { rps: timeline.cluster_steady.len() as f64 / phase, latency: Latency::of(&timeline.cluster_steady) };
    let a = &run.args;
    let mut report = Report {
        config: serde_json::json!({
            "members": a.members, "grains": a.grains, "workers": a.workers, "rate": a.rate, "phase_secs": a.phase_secs,
            "provider": a.provider, "lookup": a.lookup, "persist": a.persist, "faults": a.faults,
            "link_delay_ms": a.link_delay_ms, "link_loss_percent": a.link_loss,
            "network": if run.net.is_some() { "netns" } else if run.relays.is_some() { "loopback+relays" } else { "loopback" },
        }),
        lookup_has_store: a.lookup.has_store(),
        sent: c.sent(),
        answered: c.answered(),
        failed: c.failed(),
        hung: c.hung(),
        shed: c.shed(),
        rate: a.rate,
        failed_outside_faults,
        errors: c.errors(),
        latency: Latency::of(&timeline.cluster_all),
        cluster_to_plain: plain.as_ref().filter(|p| p.rps > 0.0).map(|p| cluster.rps / p.rps),
        plain,
        cluster,
        faults,
        activations: report::activations(&spans, &windows),
        lost_updates: lost,
        members,
        series: timeline.seconds.clone(),
        bounds: Vec::new(),
    };
    report.check();
    Ok(report)
}

/// A partition's two sides: what the cut-off member answered from 1 s after
/// the cut until the heal (its `R` journal lines; nothing can reach it, so
/// anything is a leak), and what the rest answered from the detection window
/// after the cut until the heal (the 100 ms ticks).
fn partition_figures(run: &Run, ticks: &[Tick], f: &mut FaultRecord, detection: f64) {
    let us = |s: f64| run.start_unix + (s.max(0.0) * 1e6) as u64;
    let journal = run.ended.iter().chain(&run.members).find(|m| m.name == f.member).map(|m| m.journal.clone());
    let text = journal.and_then(|j| std::fs::read_to_string(j).ok()).unwrap_or_default();
    f.cut_off_answered = Some(served_between(&text, us(f.at_s + 1.0), us(f.end_s)));
    let from = ((f.at_s + detection) * 10.0).ceil() as usize;
    let to = ((f.end_s * 10.0) as usize).min(ticks.len());
    f.majority_answered = Some(ticks.get(from..to).map_or(0, |t| t.iter().map(|t| t.answered).sum()));
    f.majority_silent_seconds = Some(silent_seconds(ticks, f.at_s + 1.0, f.end_s));
}

/// Whole seconds from `from_s` to `to_s` (in the run's 100 ms ticks) in
/// which nothing was answered.
fn silent_seconds(ticks: &[Tick], from_s: f64, to_s: f64) -> u64 {
    let from = (from_s * 10.0).ceil() as usize;
    let to = ((to_s * 10.0) as usize).min(ticks.len());
    ticks.get(from..to).map_or(0, |t| t.chunks_exact(10).filter(|s| s.iter().all(|t| t.answered == 0)).count() as u64)
}

/// Requests a member answered between unix µs `from` and `to`, from its
/// `R <unix µs> <answered so far>` lines (the first line at or after
/// `from`, the last at or before `to`).
fn served_between(journal: &str, from: u64, to: u64) -> u64 {
    let samples: Vec<(u64, u64)> = journal
        .lines()
        .filter_map(|l| match l.split(' ').collect::<Vec<_>>().as_slice() {
            ["R", t, n] => Some((t.parse().ok()?, n.parse().ok()?)),
            _ => None,
        })
        .collect();
    let first = samples.iter().find(|(t, _)| *t >= from);
    let last = samples.iter().rev().find(|(t, _)| *t <= to);
    match (first, last) {
        (Some((t1, n1)), Some((t2, n2))) if t2 >= t1 => n2.saturating_sub(*n1),
        _ => 0,
    }
}

/// Fills a fault's recovery figures from the 100 ms ticks: the reference is
/// the cluster throughput of the 2 s before it, compared over 500 ms windows.
fn recovery(ticks: &[Tick], f: &mut FaultRecord, grace: f64) {
    let at = (f.at_s * 10.0) as usize;
    let until = (((f.end_s + grace) * 10.0) as usize).min(ticks.len());
    let before: Vec<u64> = ticks[at.saturating_sub(20)..at.min(ticks.len())]
        .iter()
        .filter(|t| t.mode == Mode::Cluster)
        .map(|t| t.answered)
        .collect();
    if before.is_empty() || until < at + 5 {
        return;
    }
    let reference = before.iter().sum::<u64>() as f64 / before.len() as f64 * 5.0;
    if reference <= 0.0 {
        return;
    }
    let mut lowest = f64::MAX;
    let mut dipped_at = None;
    for i in at..=until - 5 {
        let ratio = ticks[i..i + 5].iter().map(|t| t.answered).sum::<u64>() as f64 / reference;
        lowest = lowest.min(ratio);
        if ratio < 0.8 {
            dipped_at.get_or_insert(i);
        } else if dipped_at.is_some() {
            f.recovered_after_s = Some((i + 5 - at) as f64 / 10.0);
            break;
        }
    }
    if dipped_at.is_none() {
        f.recovered_after_s = Some(0.0);
    }
    f.lowest_throughput_ratio = lowest.min(1.0);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(at_s: f64, end_s: f64) -> FaultRecord {
        FaultRecord {
            kind: Fault::Kill,
            member: "m1.1".into(),
            at_s,
            end_s,
            recovered_after_s: None,
            lowest_throughput_ratio: 1.0,
            failed_in_window: 0,
            converged_after_s: None,
            stuck_members: 0,
            stepped_down: Vec::new(),
            exited: Vec::new(),
            cut_off_answered: None,
            majority_answered: None,
            majority_silent_seconds: None,
        }
    }

    fn ticks(answered: &[u64]) -> Vec<Tick> {
        answered.iter().map(|&answered| Tick { answered, mode: Mode::Cluster }).collect()
    }

    #[test]
    fn recovery_is_the_end_of_the_first_window_back_at_80_percent_after_the_dip() {
        // 2 s at 10 per tick, the fault at 2 s, 1 s at 0, then back at 10.
        let mut answered = vec![10; 20];
        answered.extend([0; 10]);
        answered.extend([10; 30]);
        let mut f = record(2.0, 2.5);
        recovery(&ticks(&answered), &mut f, 2.0);
        assert_eq!(f.lowest_throughput_ratio, 0.0);
        // The first 500 ms window at >= 80 % starts 1.1 s after the fault
        // (4 of its 5 ticks back at 10): it ends 1.5 s after.
        assert_eq!(f.recovered_after_s, Some(1.4));
    }

    #[test]
    fn silent_seconds_are_whole_seconds_without_an_answer_between_the_bounds() {
        // 1 s answering, 2 s silent, 0.5 s answering, 1 s silent, 1 s answering.
        let mut answered = vec![10; 10];
        answered.extend([0; 20]);
        answered.extend([10; 5]);
        answered.extend([0; 10]);
        answered.extend([10; 10]);
        let t = ticks(&answered);
        // From 1 s: seconds [1,2) and [2,3) silent, [3,4) not, [4,5) not (its first half answered).
        assert_eq!(silent_seconds(&t, 1.0, 5.5), 2);
        assert_eq!(silent_seconds(&t, 3.5, 4.5), 1, "[3.5, 4.5) is silent");
        assert_eq!(silent_seconds(&t, 0.0, 1.0), 0);
        assert_eq!(silent_seconds(&t, 50.0, 60.0), 0, "past the run: nothing to count");
    }

    #[test]
    fn a_fault_without_a_dip_recovers_at_once() {
        let mut f = record(2.0, 2.5);
        recovery(&ticks(&[10; 60]), &mut f, 2.0);
        assert_eq!(f.recovered_after_s, Some(0.0));
        assert_eq!(f.lowest_throughput_ratio, 1.0);
    }

    #[test]
    fn a_member_answered_what_its_counter_grew_by_between_the_samples_in_the_span() {
        let journal = "R 100 5\nA g1 7 150\nR 200 9\nR 300 9\nR 400 20\n";
        assert_eq!(served_between(journal, 150, 350), 0, "9 at 200, still 9 at 300");
        assert_eq!(served_between(journal, 100, 400), 15);
        assert_eq!(served_between(journal, 500, 600), 0, "no samples in the span");
    }

    #[test]
    fn plain_actors_are_spread_over_the_slots_like_the_load_addresses_them() {
        assert_eq!(plain_spec(1, 3, 10), "1:3:10");
    }
}
