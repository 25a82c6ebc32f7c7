//! The default role: start the members, drive the load as a client, kill a
//! member, start a replacement, summarize.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use protoactor_actor::ActorSystem;
use protoactor_cluster::Cluster;
use protoactor_cluster_provider_automanaged::AutomanagedProvider;
use tokio::time::{Instant, MissedTickBehavior};

use protoactor_load::{Histogram, Load, Stats, histogram};

use crate::load::Grains;
use crate::output::{Output, ms, secs, thousands};
use crate::processes::MemberProcess;
use crate::{CountReply, Increment, KIND};

/// How long after the kill every grain of the dead member must answer again.
const RECOVERY_LIMIT: Duration = Duration::from_secs(30);
/// How long a replacement may take to appear in the client's topology.
const JOIN_LIMIT: Duration = Duration::from_secs(30);
/// Concurrent requests when activating the new grains after the replacement joined.
const FRESH_CONCURRENCY: usize = 16;
/// A request without any answer for this long counts as failed (hung); the
/// cluster's own retries give up well before.
const HANG_LIMIT: Duration = Duration::from_secs(60);

/// The demo's options (every flag of `cluster_demo --help`). A new option is
/// one field here; `resolve` checks it.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct DemoOptions {
    /// Member processes to start (one of them is killed).
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u64).range(2..))]
    members: u64,
    /// Counter grains the load spreads over [default: 3000; 300 with --short].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    grains: Option<u64>,
    /// Total time of the load, in seconds [default: 30; 12 with --short].
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(3..))]
    duration: Option<u64>,
    /// Concurrent requests [default: 32; 8 with --short].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    workers: Option<u64>,
    /// CI mode: about 4 s per phase, smaller defaults.
    #[arg(long)]
    short: bool,
    /// The identity lookup of every process.
    #[command(flatten)]
    pub(crate) lookup: crate::lookup::LookupOptions,
    /// Event-source the counters in this store, so they survive the kill.
    #[arg(long, value_name = "STORE", value_enum)]
    persist: Option<crate::persist::Kind>,
}

/// [`DemoOptions`] with the defaults filled in.
pub(crate) struct Args {
    members: usize,
    grains: usize,
    duration: Duration,
    workers: usize,
    short: bool,
    persist: Option<crate::persist::Kind>,
}

impl DemoOptions {
    /// The options with `--short`'s or the normal defaults filled in.
    pub(crate) fn resolve(&self) -> Args {
        let (grains, duration, workers) = if self.short { (300, 12, 8) } else { (3000, 30, 32) };
        let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        Args {
            members: size(self.members),
            grains: size(self.grains.unwrap_or(grains)),
            duration: Duration::from_secs(self.duration.unwrap_or(duration)),
            workers: size(self.workers.unwrap_or(workers)),
            short: self.short,
            persist: self.persist,
        }
    }
}

/// Runs the demo; Ctrl-C stops it (and, by dropping them, its members).
pub(crate) async fn run(args: Args) -> ExitCode {
    tokio::select! {
        code = demo(args) => code,
        Ok(()) = tokio::signal::ctrl_c() => {
            println!("\ninterrupted; member processes killed");
            ExitCode::from(130)
        }
    }
}

/// What the run found, for the summary and the exit status.
struct Outcome {
    members_at_start: usize,
    members_at_end: usize,
    victim: String,
    victim_grains: usize,
    left_after: Option<Duration>,
    moved_to: Vec<(String, usize)>,
    restarted: usize,
    recovered_after: Option<Duration>,
    replacement: String,
    joined_after: Option<Duration>,
    fresh: usize,
    fresh_on_replacement: usize,
    left_gracefully: usize,
    member_processes: usize,
}

/// The running demo: output, the client, the load's numbers, the clock.
struct Demo {
    out: Output,
    client: Cluster,
    grains: Arc<Grains>,
    stats: Arc<Stats>,
    /// Every latency of the run, merged once a second from the workers'.
    total: Histogram<u64>,
    /// Requests finished at the previous tick.
    last_done: u64,
    started: Instant,
    ticks: tokio::time::Interval,
    last_tick: Instant,
    phase: &'static str,
    /// Member address -> name, for readable output.
    names: HashMap<String, String>,
}

impl Demo {
    fn name(&self, address: &str) -> String {
        self.names.get(address).cloned().unwrap_or_else(|| address.to_string())
    }

    fn members(&self) -> usize {
        self.client.member_list().topology().members.len()
    }

    /// Waits for the next second and prints the progress line.
    async fn tick(&mut self) {
        self.ticks.tick().await;
        let now = Instant::now();
        let elapsed = now.duration_since(self.last_tick).max(Duration::from_millis(1));
        self.last_tick = now;
        let window = self.merge();
        let done = self.stats.answered() + failed(&self.stats);
        let failed = failed(&self.stats);
        let back = Some(self.grains.back()).filter(|_| self.grains.pending() > 0);
        #[allow(clippy::cast_precision_loss)]
        let rate = (done - self.last_done) as f64 / elapsed.as_secs_f64();
        self.last_done = done;
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let rate = thousands(rate.round() as u64);
        let p99 = if window.is_empty() { "-".to_string() } else { ms(window.value_at_quantile(0.99)) };
        let mut line = format!(
            "[{:>4.0}s] {:<12} {rate:>8} req/s   p99 {p99:>9}   failed {failed}   members {}",
            self.started.elapsed().as_secs_f64(),
            self.phase,
            self.members()
        );
        if let Some((back, of)) = back {
            line.push_str(&format!("   grains back {back}/{of}"));
        }
        self.out.progress(&line);
    }

    /// Takes the workers' latencies since the last call into the run's total.
    fn merge(&mut self) -> Histogram<u64> {
        let window = self.stats.take_histogram();
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.total.add(&window);
        window
    }

    /// Grains per member, by name, largest first.
    fn distribution(&self, counts: HashMap<String, usize>) -> Vec<(String, usize)> {
        let mut list: Vec<(String, usize)> = counts.into_iter().map(|(a, n)| (self.name(&a), n)).collect();
        list.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        list
    }
}

fn listing(list: &[(String, usize)]) -> String {
    list.iter().map(|(name, n)| format!("{name} {}", thousands(*n as u64))).collect::<Vec<_>>().join(", ")
}

async fn demo(args: Args) -> ExitCode {
    match drive(&args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cluster_demo: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn drive(args: &Args) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let mut out = Output::new();
    let load_time = args.duration;
    let warm_time = load_time.mul_f64(0.3);
    let kill_time = load_time.mul_f64(0.4);
    let replace_time = load_time.saturating_sub(warm_time + kill_time);
    out.event(&format!(
        "cluster_demo: {} member processes and this client on 127.0.0.1; {} counter grains, {} workers, {} s of load{}",
        args.members,
        thousands(args.grains as u64),
        args.workers,
        load_time.as_secs(),
        if args.short { " (short mode)" } else { "" }
    ));

    let store = match args.persist {
        Some(kind) => {
            let store = crate::persist::Store::prepare(kind).await?;
            out.event(&format!("persistence: counters are event-sourced in {}", store.description));
            Some(store)
        }
        None => None,
    };

    // Members are separate processes: their health ports are chosen here,
    // since every member and the client poll the same list of them (below
    // the kernel's ephemeral range, where no outgoing connection takes one
    // before the member binds it).
    let started = Instant::now();
    let health_ports = protoactor_testkit::service::free_ports(args.members)?;
    let peers: Vec<String> = health_ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let starting: Vec<_> = health_ports
        .iter()
        .enumerate()
        .map(|(i, port)| {
            let (port, peers) = (*port, peers.clone());
            tokio::spawn(async move { MemberProcess::start(format!("member-{}", i + 1), port, &peers).await })
        })
        .collect();
    let mut members = Vec::new();
    for start in starting {
        members.push(start.await??);
    }
    for m in &members {
        out.event(&format!(
            "  {:<9} pid {:<7} remote {:<16} health 127.0.0.1:{:<6} id {}",
            m.name, m.pid, m.address, m.health_port, m.id
        ));
    }

    let provider = AutomanagedProvider::new(crate::automanaged(&peers));
    let client = Cluster::new(&ActorSystem::new(), crate::cluster_config(provider, 0))?;
    client.start_client().await?;
    let n = args.members;
    if !client.member_list().wait_for(JOIN_LIMIT, |t| t.members.len() >= n).await {
        return Err(format!("the client did not see {n} members within {JOIN_LIMIT:?}").into());
    }
    let members_at_start = client.member_list().topology().members.len();
    out.event(&format!(
        "topology: {members_at_start} members, as this client sees them, {:.2} s after the first process started",
        started.elapsed().as_secs_f64()
    ));

    let ids: Vec<String> = (0..args.grains).map(|i| format!("counter-{i:04}")).collect();
    let grains = Arc::new(Grains::new(client.clone(), ids));
    let load = Load::start(grains.clone(), args.workers, HANG_LIMIT);
    let stats = load.stats().clone();
    let mut ticks = tokio::time::interval_at(Instant::now() + Duration::from_secs(1), Duration::from_secs(1));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut demo = Demo {
        out,
        client: client.clone(),
        grains: grains.clone(),
        stats: stats.clone(),
        total: histogram(),
        last_done: 0,
        started: Instant::now(),
        ticks,
        last_tick: Instant::now(),
        phase: "warm-up",
        names: members.iter().map(|m| (m.address.clone(), m.name.clone())).collect(),
    };

    // ---- warm-up: every grain is activated by its first request.
    demo.out.event(&format!(
        "\n== warm-up: {} workers send Increment to counter-0000..counter-{:04} in turn; a grain is activated by its first request",
        args.workers,
        args.grains - 1
    ));
    let mut all_active = false;
    let phase_end = Instant::now() + warm_time;
    while Instant::now() < phase_end || !all_active {
        demo.tick().await;
        let all_active_at = grains.all_active_at();
        if let (false, Some(at)) = (all_active, all_active_at) {
            all_active = true;
            demo.out.event(&format!(
                "  all {} grains active, {} after the load started",
                thousands(args.grains as u64),
                secs(at.saturating_duration_since(demo.started.into_std()))
            ));
        }
        if demo.started.elapsed() > warm_time + RECOVERY_LIMIT {
            break;
        }
    }
    let placed = demo.distribution(grains.per_member());
    demo.out.event(&format!("  grains per member: {}", listing(&placed)));

    // ---- kill the member hosting the most grains.
    let victim_name = placed.first().map(|(name, _)| name.clone()).unwrap_or_default();
    let victim_index = members.iter().position(|m| m.name == victim_name).unwrap_or(0);
    let mut victim = members.remove(victim_index);
    victim.signal_kill()?;
    let killed_at = Instant::now();
    let (victim_grains, sample) = grains.start_recovery(&victim.address, killed_at.into_std());
    victim.reap().await?;
    demo.phase = "after kill";
    demo.out.event(&format!(
        "\n== kill: SIGKILL {} (pid {}, {}), which hosts {} of {} grains ({}, ...)",
        victim.name,
        victim.pid,
        victim.address,
        thousands(victim_grains as u64),
        thousands(args.grains as u64),
        sample.join(", ")
    ));
    demo.out.event(
        "  the load goes on; requests to its grains are retried until the cluster re-activates them elsewhere \
         (each worker waits on the first such request it sends, hence the dip)",
    );
    // Noticed the moment the client's topology drops it, not at the next tick.
    let mut leaving = {
        let (list, id) = (client.member_list().clone(), victim.id.clone());
        tokio::spawn(async move {
            list.wait_for(RECOVERY_LIMIT, |t| t.member(&id).is_none()).await.then(|| killed_at.elapsed())
        })
    };
    let mut left_after = None;
    let mut left_known = false;
    let mut recovered_after = None;
    let phase_end = Instant::now() + kill_time;
    while Instant::now() < phase_end || recovered_after.is_none() {
        tokio::select! {
            _ = demo.tick() => {}
            left = &mut leaving, if !left_known => {
                left_known = true;
                left_after = left.ok().flatten();
                if let Some(after) = left_after {
                    demo.out.event(&format!(
                        "  {} left the topology {} after the kill (its health endpoint missed 4 polls)",
                        victim.name,
                        secs(after)
                    ));
                }
            }
        }
        if recovered_after.is_none() {
            let done = grains.recovered_after();
            if let Some(after) = done {
                recovered_after = Some(after);
                let (moved, restarted) = moved_summary(&demo);
                demo.out.event(&format!(
                    "  all {} grains of {} answer again, the last {} after the kill: now on {}; {} started counting again at 1 (new activations)",
                    thousands(victim_grains as u64),
                    victim.name,
                    secs(after),
                    listing(&moved),
                    thousands(restarted as u64)
                ));
            }
        }
        if killed_at.elapsed() > RECOVERY_LIMIT.max(kill_time) {
            break;
        }
    }
    if recovered_after.is_none() {
        let pending = grains.pending();
        demo.out.event(&format!(
            "  NOT RECOVERED: {pending} grains of {} did not answer again within {}",
            victim.name,
            secs(RECOVERY_LIMIT)
        ));
    }
    let (moved_to, restarted) = moved_summary(&demo);

    // ---- a replacement on the dead member's health address.
    let replacement_name = format!("member-{}", args.members + 1);
    demo.phase = "replacement";
    demo.out.event(&format!(
        "\n== replacement: starting {replacement_name} on {}'s health address 127.0.0.1:{} (a new process with a new member id)",
        victim.name, victim.health_port
    ));
    let replacement_started = Instant::now();
    let mut starting = {
        let (name, port, peers) = (replacement_name.clone(), victim.health_port, peers.clone());
        tokio::spawn(async move { MemberProcess::start(name, port, &peers).await })
    };
    let replacement = loop {
        tokio::select! {
            _ = demo.tick() => {}
            started = &mut starting => break started??,
        }
    };
    demo.names.insert(replacement.address.clone(), replacement.name.clone());
    let mut joining = {
        let (list, id) = (client.member_list().clone(), replacement.id.clone());
        tokio::spawn(async move {
            list.wait_for(JOIN_LIMIT, |t| t.member(&id).is_some()).await.then(|| replacement_started.elapsed())
        })
    };
    let joined_after = loop {
        tokio::select! {
            _ = demo.tick() => {}
            joined = &mut joining => break joined.ok().flatten(),
        }
    };
    match joined_after {
        Some(after) => demo.out.event(&format!(
            "  {} joined: pid {}, remote {}, id {}; the client's topology has {} members again, {} after it started",
            replacement.name,
            replacement.pid,
            replacement.address,
            replacement.id,
            demo.members(),
            secs(after)
        )),
        None => demo.out.event(&format!("  {} did NOT join within {}", replacement.name, secs(JOIN_LIMIT))),
    }
    members.push(replacement);

    // Grains stay where they are; new ones are placed over every member,
    // the replacement included.
    let fresh = (args.grains / 10).max(30);
    let mut activating = tokio::spawn(activate_fresh(client.clone(), stats.clone(), fresh));
    let (fresh_placed, fresh_acknowledged) = loop {
        tokio::select! {
            _ = demo.tick() => {}
            placed = &mut activating => break placed?,
        }
    };
    let fresh_on_replacement = fresh_placed.get(&members[members.len() - 1].address).copied().unwrap_or(0);
    let fresh_list = demo.distribution(fresh_placed);
    demo.out.event(&format!("  {fresh} new grains (fresh-0000, ...) were activated on: {}", listing(&fresh_list)));
    let phase_end = replacement_started + replace_time;
    while Instant::now() < phase_end {
        demo.tick().await;
    }

    // ---- stop and summarize.
    load.stop().await;
    demo.out.finish_progress();
    let members_at_end = demo.members();
    let load_elapsed = demo.started.elapsed();
    if tokio::time::timeout(Duration::from_secs(15), client.shutdown(true)).await.is_err() {
        eprintln!("cluster_demo: the client's shutdown took longer than 15 s");
    }
    for m in &mut members {
        m.ask_to_leave();
    }
    let mut left_gracefully = 0;
    for m in &mut members {
        if m.wait_exit(Duration::from_secs(20)).await {
            left_gracefully += 1;
        }
    }

    let outcome = Outcome {
        members_at_start,
        members_at_end,
        victim: victim.name.clone(),
        victim_grains,
        left_after,
        moved_to,
        restarted,
        recovered_after,
        replacement: replacement_name,
        joined_after,
        fresh,
        fresh_on_replacement,
        left_gracefully,
        member_processes: members.len(),
    };
    // With persistence, every journal is read back once the members left.
    let persisted = match &store {
        Some(store) => {
            let mut acknowledged = grains.acknowledged();
            acknowledged.extend(fresh_acknowledged);
            Some(store.verify(&acknowledged).await)
        }
        None => None,
    };
    demo.merge();
    let pass = summary(&mut demo.out, &stats, &demo.total, &outcome, args.grains, load_elapsed, persisted);
    Ok(if pass { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Where the killed member's grains answer from now, and how many started over.
fn moved_summary(demo: &Demo) -> (Vec<(String, usize)>, usize) {
    let moved = demo.grains.moved();
    let mut counts: HashMap<String, usize> = HashMap::new();
    for m in &moved {
        *counts.entry(m.to.clone()).or_default() += 1;
    }
    let restarted = moved.iter().filter(|m| m.restarted).count();
    (demo.distribution(counts), restarted)
}

/// Activates `n` new grains, [`FRESH_CONCURRENCY`] at a time; returns how
/// many landed on each member address, and the acknowledged increments.
async fn activate_fresh(
    client: Cluster,
    stats: Arc<Stats>,
    n: usize,
) -> (HashMap<String, usize>, HashMap<String, u64>) {
    let mut placed = HashMap::new();
    let mut acknowledged = HashMap::new();
    let mut running = tokio::task::JoinSet::new();
    let mut next = 0;
    loop {
        while running.len() < FRESH_CONCURRENCY && next < n {
            let (client, stats, identity) = (client.clone(), stats.clone(), format!("fresh-{next:04}"));
            next += 1;
            running.spawn(async move {
                let started = std::time::Instant::now();
                let result = client.request::<CountReply, _>(&identity, KIND, Increment::next()).await;
                let member = result.as_ref().ok().map(|r| r.member.clone());
                stats.record(started, result.map(drop).map_err(|e| format!("{identity}: {e}")));
                member.map(|m| (identity, m))
            });
        }
        match running.join_next().await {
            Some(Ok(Some((identity, member)))) => {
                *placed.entry(member).or_default() += 1;
                acknowledged.insert(identity, 1);
            }
            Some(_) => {}
            None => return (placed, acknowledged),
        }
    }
}

/// Prints the summary table; true if the run passed.
fn summary(
    out: &mut Output,
    stats: &Stats,
    latencies: &Histogram<u64>,
    o: &Outcome,
    grains: usize,
    load_time: Duration,
    persisted: Option<(String, bool)>,
) -> bool {
    let at = |q: f64| if latencies.is_empty() { "-".to_string() } else { ms(latencies.value_at_quantile(q)) };
    let failed = failed(stats);
    let requests = stats.answered() + failed;
    #[allow(clippy::cast_precision_loss)]
    let rate = requests as f64 / load_time.as_secs_f64().max(0.001);
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let rate = rate.round() as u64;
    let recovered = o.recovered_after.is_some();
    let joined = o.joined_after.is_some();
    let persisted_ok = persisted.as_ref().is_none_or(|(_, ok)| *ok);
    let pass = failed == 0 && recovered && joined && persisted_ok;
    let or_never = |d: Option<Duration>| d.map_or_else(|| "never".to_string(), secs);
    let mut rows: Vec<(&str, String)> = vec![
        ("requests", format!("{} ({}/s over {})", thousands(requests), thousands(rate), secs(load_time))),
        ("failed requests", format!("{} (no answer after the cluster's retries)", thousands(failed))),
        ("latency p50 / p99 / max", format!("{} / {} / {}", at(0.5), at(0.99), at(1.0))),
        ("members at start / end", format!("{} / {}", o.members_at_start, o.members_at_end)),
        ("grains", format!("{} (+{} new after the replacement joined)", thousands(grains as u64), o.fresh)),
        ("member killed", format!("{}, hosting {} grains", o.victim, thousands(o.victim_grains as u64))),
        ("it left the topology after", or_never(o.left_after)),
        (
            "grains moved",
            format!("{} ({})", thousands(o.moved_to.iter().map(|(_, n)| *n as u64).sum()), listing(&o.moved_to)),
        ),
        ("counts restarted at 1", thousands(o.restarted as u64)),
        (
            "time to recover",
            format!("{} (until every grain of {} answered again)", or_never(o.recovered_after), o.victim),
        ),
        (
            "replacement",
            format!(
                "{} joined after {}, got {} of {} new grains",
                o.replacement,
                or_never(o.joined_after),
                o.fresh_on_replacement,
                o.fresh
            ),
        ),
        ("graceful leaves at the end", format!("{} of {}", o.left_gracefully, o.member_processes)),
    ];
    if let Some((row, _)) = &persisted {
        rows.push(("persisted counts", row.clone()));
    }
    out.event("\n== summary");
    for (label, value) in rows {
        out.event(&format!("  {label:<28} {value}"));
    }
    for e in &stats.errors() {
        out.event(&format!("  error: {e}"));
    }
    let verdict = if pass {
        "PASS: 0 failed requests, every grain of the killed member answered again, the replacement joined".to_string()
    } else {
        let mut why = Vec::new();
        if failed > 0 {
            why.push(format!("{failed} failed requests"));
        }
        if !recovered {
            why.push("grains of the killed member did not all answer again".into());
        }
        if !joined {
            why.push("the replacement did not join".into());
        }
        if !persisted_ok {
            why.push("a recovered count differs from its acknowledged increments".into());
        }
        format!("FAIL: {}", why.join("; "))
    };
    out.event(&format!("  {:<28} {verdict}", "result"));
    pass
}

/// Requests that got no answer: an error after the cluster's retries, or
/// none at all within [`HANG_LIMIT`].
fn failed(stats: &Stats) -> u64 {
    stats.failed() + stats.hung()
}
