//! The ping-pong pair as processes (the `ping_pong_member` and
//! `ping_pong_client` binaries, the same programs as the examples): the
//! client gets pongs from member A; A is killed with SIGKILL and a new member
//! process B starts on the same ports; the client's pongs resume, answered by
//! B, and the client stops by itself after its `--count`. Then the grain,
//! idle, passivates on B, and B leaves cleanly on SIGINT (Ctrl-C).
//!
//! Every wait reads the children's stdout lines with a deadline.
#![cfg(unix)]

use std::collections::BTreeSet;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Pongs the client waits for before it exits.
const COUNT: usize = 10;
/// Bound on each step; generous for a loaded 2-core CI machine.
const STEP: Duration = Duration::from_secs(60);

/// A child process and its stdout, line by line (stderr lines are echoed
/// to the test's output with the process name, for failure reports).
struct Proc {
    name: &'static str,
    child: Child,
    lines: mpsc::UnboundedReceiver<String>,
    seen: Vec<String>,
}

impl Proc {
    fn spawn(name: &'static str, program: &str, args: &[String]) -> Proc {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: cannot start {program}: {e}"));
        let (tx, lines) = mpsc::unbounded_channel();
        let stdout = child.stdout.take().expect("stdout is piped");
        tokio::spawn(async move {
            let mut out = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = out.next_line().await {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = child.stderr.take().expect("stderr is piped");
        tokio::spawn(async move {
            let mut err = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = err.next_line().await {
                eprintln!("[{name} stderr] {line}");
            }
        });
        Proc { name, child, lines, seen: Vec::new() }
    }

    /// The next stdout line, or `None` at end of output or past `deadline`.
    async fn next_line(&mut self, deadline: Instant) -> Option<String> {
        let line = tokio::time::timeout_at(deadline, self.lines.recv()).await.ok().flatten()?;
        println!("[{}] {line}", self.name);
        self.seen.push(line.clone());
        Some(line)
    }

    /// Reads lines until one satisfies `pred`; panics with the output so far
    /// if none does within `within`.
    async fn expect_line(&mut self, within: Duration, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + within;
        while let Some(line) = self.next_line(deadline).await {
            if pred(&line) {
                return line;
            }
        }
        panic!("{}: no line {what} within {within:?}; its output:\n{}", self.name, self.seen.join("\n"));
    }

    async fn exit_status(&mut self, within: Duration) -> ExitStatus {
        match tokio::time::timeout(within, self.child.wait()).await {
            Ok(status) => status.expect("the exit status is readable"),
            Err(_) => panic!("{} did not exit within {within:?}; its output:\n{}", self.name, self.seen.join("\n")),
        }
    }
}

/// A port free right now (bound, then released for the child to bind).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("a local address").port()
}

/// `N` from a member's `ponger-1: ping N -> pong N` line.
fn pinged(line: &str) -> Option<u64> {
    line.strip_prefix("ponger-1: ping ")?.split_whitespace().next()?.parse().ok()
}

/// `N` from the client's `pong N` line.
fn ponged(line: &str) -> Option<u64> {
    line.strip_prefix("pong ")?.trim().parse().ok()
}

fn member(args: &[String]) -> Proc {
    Proc::spawn("member", env!("CARGO_BIN_EXE_ping_pong_member"), args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pongs_resume_after_the_member_process_is_killed_and_restarted() {
    let (port, health) = (free_port(), free_port());
    let peer = format!("127.0.0.1:{health}");
    let member_args: Vec<String> =
        ["--port", &port.to_string(), "--health-port", &health.to_string(), "--peers", &peer]
            .map(String::from)
            .to_vec();

    let mut a = member(&member_args);
    a.name = "member A";
    a.expect_line(STEP, "`ready`", |l| l.starts_with("ready: ")).await;

    let client_args = ["--peers", &peer, "--count", &COUNT.to_string()].map(String::from).to_vec();
    let mut client = Proc::spawn("client", env!("CARGO_BIN_EXE_ping_pong_client"), &client_args);
    let mut pongs: Vec<u64> = Vec::new();
    while pongs.len() < 3 {
        let line = client.expect_line(STEP, "`pong N`", |l| ponged(l).is_some()).await;
        pongs.extend(ponged(&line));
    }
    // Both kinds of message reached the grain on A: the one-way ping and the requests.
    a.expect_line(STEP, "with the one-way ping", |l| l.starts_with("ponger-1: one-way ping 0")).await;
    let mut answered_by_a = BTreeSet::new();
    while !pongs.iter().all(|n| answered_by_a.contains(n)) {
        let line = a.expect_line(STEP, "answering the pongs the client got", |l| pinged(l).is_some()).await;
        answered_by_a.extend(pinged(&line));
    }

    a.child.kill().await.expect("SIGKILL member A and reap it");
    // Everything A printed before it died (its pipe then closes): A may have
    // answered a ping or two more than the client showed so far.
    let drained = Instant::now() + STEP;
    while let Some(line) = a.next_line(drained).await {
        answered_by_a.extend(pinged(&line));
    }
    // A second process on the same health and remoting ports, with a new member id.
    let mut b = member(&member_args);
    b.name = "member B";
    b.expect_line(STEP, "`ready`", |l| l.starts_with("ready: ")).await;

    // The client goes on by itself until COUNT pongs; the pongs after the
    // kill can only come from B.
    let deadline = Instant::now() + 3 * STEP;
    let mut answered_by_b = BTreeSet::new();
    let mut client_done = false;
    let mut b_done = false;
    while !client_done {
        tokio::select! {
            line = client.next_line(deadline), if !client_done => match line {
                Some(line) => pongs.extend(ponged(&line)),
                None => client_done = true,
            },
            line = b.next_line(deadline), if !b_done => match line {
                Some(line) => answered_by_b.extend(pinged(&line)),
                None => b_done = true,
            },
        }
        assert!(Instant::now() < deadline, "the client did not finish; its output:\n{}", client.seen.join("\n"));
    }
    let status = client.exit_status(STEP).await;
    assert!(status.success(), "the client exits cleanly after {COUNT} pongs ({status}):\n{}", client.seen.join("\n"));
    assert!(pongs.len() >= COUNT, "the client printed {COUNT} pongs: {pongs:?}");
    assert!(client.seen.iter().any(|l| l.starts_with("got ")), "the client says why it stopped");

    // B's lines may still be in its pipe: read until it printed every pong of B's.
    let after_kill: Vec<u64> = pongs.iter().copied().filter(|n| !answered_by_a.contains(n)).collect();
    assert!(after_kill.len() >= 3, "pongs resumed after the kill: all pongs {pongs:?}, A answered {answered_by_a:?}");
    while !after_kill.iter().all(|n| answered_by_b.contains(n)) {
        let line =
            b.expect_line(STEP, "answering the pongs the client got after the kill", |l| pinged(l).is_some()).await;
        answered_by_b.extend(pinged(&line));
    }
    assert!(
        b.seen.iter().any(|l| l.starts_with("ponger-1: activated on")),
        "ponger-1 was activated again on B:\n{}",
        b.seen.join("\n")
    );

    // No more pings: the grain passivates after its 10 s idle timeout.
    b.expect_line(Duration::from_secs(30), "about passivation", |l| l.starts_with("ponger-1: passivated after")).await;

    // SIGINT is Ctrl-C: B leaves the cluster and exits cleanly.
    let pid = i32::try_from(b.child.id().expect("B is running")).expect("a pid fits in i32");
    // SAFETY: kill(2) with a pid we spawned and still own (not reaped yet).
    let sent = unsafe { libc::kill(pid, libc::SIGINT) };
    assert_eq!(sent, 0, "SIGINT reaches member B");
    b.expect_line(STEP, "`bye`", |l| l == "bye").await;
    let status = b.exit_status(STEP).await;
    assert!(status.success(), "member B exits cleanly on Ctrl-C ({status})");
}
