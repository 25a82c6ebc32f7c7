//! Member processes: this program re-executed as `member`, and what the
//! tool does to them (kill -9, SIGSTOP/SIGCONT, graceful leave) and reads
//! from them (peak RSS from /proc).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};

use crate::Error;

/// How long a new member may take to print its `ready` line.
const READY_WITHIN: Duration = Duration::from_secs(60);

/// Ports free right now, all different, below the kernel's ephemeral range
/// (see `protoactor_testkit::service::free_ports`); released for the members to bind.
pub(crate) fn free_ports(n: usize) -> Result<Vec<u16>, Error> {
    protoactor_testkit::service::free_ports(n).map_err(|e| Error::Io("cannot find free ports on 127.0.0.1".into(), e))
}

/// How a member process is started.
#[derive(Clone, Debug)]
pub(crate) struct Launch {
    /// Arguments after `member` shared by every member (peers, backend).
    pub(crate) common: Vec<String>,
    /// Where activation journals go.
    pub(crate) dir: PathBuf,
}

/// A running (or ended) member process. Dropping it kills the process.
#[derive(Debug)]
pub(crate) struct MemberProcess {
    /// `m1`, `m2`, ...: its slot; `m1.2` is the second process in slot 1.
    pub(crate) name: String,
    /// Its remote address.
    pub(crate) address: String,
    pub(crate) pid: u32,
    pub(crate) journal: PathBuf,
    /// Highest VmHWM seen, in KiB.
    pub(crate) peak_rss_kib: u64,
    /// When it was killed or exited (unix µs): its open activations end then.
    pub(crate) ended_at: Option<u64>,
    child: Child,
    stdin: Option<ChildStdin>,
}

impl MemberProcess {
    /// Starts a member (bound to `host`, inside the network namespace
    /// `netns` when given) and waits for its `ready` line.
    pub(crate) async fn start(
        launch: &Launch,
        name: String,
        health_port: u16,
        plain: &str,
        host: &str,
        netns: Option<&std::path::Path>,
    ) -> Result<MemberProcess, Error> {
        let exe = std::env::current_exe().map_err(|e| Error::Io("cannot find this program".into(), e))?;
        let journal = launch.dir.join(format!("{name}.journal"));
        // A journal left by an earlier run in the same --out directory is not ours.
        match std::fs::remove_file(&journal) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::Io(format!("cannot remove the old journal {}", journal.display()), e));
            }
            _ => {}
        }
        let mut command = Command::new(exe);
        command
            .arg("member")
            .args(["--health-port", &health_port.to_string(), "--plain", plain, "--host", host, "--journal"])
            .arg(&journal)
            .args(&launch.common)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        // Open in the tool, entered by the child between fork and exec.
        let netns = netns
            .map(|path| {
                std::fs::File::open(path)
                    .map_err(|e| Error::Io(format!("cannot open the namespace {}", path.display()), e))
            })
            .transpose()?;
        if let Some(file) = &netns {
            use std::os::fd::AsRawFd;
            let fd = file.as_raw_fd();
            // SAFETY: setns(2) is async-signal-safe; `fd` stays open until
            // spawn returns (`netns` lives past it).
            unsafe {
                command.pre_exec(move || {
                    if libc::setns(fd, libc::CLONE_NEWNET) == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
                });
            }
        }
        let mut child = command.spawn().map_err(|e| Error::Io(format!("cannot start member {name}"), e))?;
        drop(netns);
        let pid = child.id().unwrap_or_default();
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().ok_or_else(|| Error::Member(format!("{name}: no stdout")))?;
        let mut lines = BufReader::new(stdout).lines();
        let ready = match tokio::time::timeout(READY_WITHIN, lines.next_line()).await {
            Ok(Ok(Some(line))) => line,
            Ok(_) => return Err(Error::Member(format!("{name} exited before joining the cluster"))),
            Err(_) => return Err(Error::Member(format!("{name} did not join within {READY_WITHIN:?}"))),
        };
        let mut words = ready.split_whitespace();
        let (Some("ready"), Some(_id), Some(address)) = (words.next(), words.next(), words.next()) else {
            return Err(Error::Member(format!("{name} said `{ready}` instead of `ready <id> <address>`")));
        };
        let address = address.to_string();
        let prefix = name.clone();
        // Anything else it prints is shown, so its pipe never fills up.
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                eprintln!("  [{prefix}] {line}");
            }
        });
        Ok(MemberProcess { name, address, pid, journal, peak_rss_kib: 0, ended_at: None, child, stdin })
    }

    /// Reads VmHWM (peak resident set) while the process lives.
    pub(crate) fn sample_rss(&mut self) {
        if self.ended_at.is_some() {
            return;
        }
        if let Some(kib) = peak_rss_kib(self.pid) {
            self.peak_rss_kib = self.peak_rss_kib.max(kib);
        }
    }

    /// SIGKILL, and waits until it is reaped.
    pub(crate) async fn kill(&mut self) -> Result<(), Error> {
        self.sample_rss();
        self.child.start_kill().map_err(|e| Error::Io(format!("cannot kill {}", self.name), e))?;
        self.ended_at = Some(crate::member::unix_micros());
        let _ = self.child.wait().await;
        Ok(())
    }

    /// The exit status if the process has exited by itself (then its open
    /// activations end now).
    pub(crate) fn exited(&mut self) -> Option<std::process::ExitStatus> {
        let status = self.child.try_wait().ok().flatten()?;
        self.ended_at.get_or_insert_with(crate::member::unix_micros);
        Some(status)
    }

    /// SIGSTOP (`stop`) or SIGCONT.
    pub(crate) fn pause(&self, stop: bool) -> Result<(), Error> {
        let signal = if stop { libc::SIGSTOP } else { libc::SIGCONT };
        let pid = libc::pid_t::try_from(self.pid).map_err(|_| Error::Member(format!("bad pid {}", self.pid)))?;
        // SAFETY: kill(2) with a pid this tool started and has not reaped.
        if unsafe { libc::kill(pid, signal) } != 0 {
            return Err(Error::Io(format!("cannot signal {}", self.name), std::io::Error::last_os_error()));
        }
        Ok(())
    }

    /// Closes its stdin (it leaves gracefully) and waits up to `within`;
    /// kills it past that. True if it exited by itself with success.
    pub(crate) async fn leave(&mut self, within: Duration) -> bool {
        self.sample_rss();
        drop(self.stdin.take());
        let clean = match tokio::time::timeout(within, self.child.wait()).await {
            Ok(Ok(status)) => status.success(),
            _ => {
                let _ = self.child.kill().await;
                false
            }
        };
        self.ended_at.get_or_insert_with(crate::member::unix_micros);
        clean
    }
}

/// VmHWM of `pid` in KiB, from /proc/<pid>/status.
pub(crate) fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
