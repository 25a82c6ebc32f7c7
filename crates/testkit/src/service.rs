//! Running a server process for the duration of a test.

use std::fs;
use std::io;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A port that was free a moment ago on 127.0.0.1, for a server started as
/// a separate process (see [`free_ports`]; 0 if none was found). Fixtures
/// still retry a start whose port was taken meanwhile.
pub fn free_port() -> u16 {
    free_ports(1).ok().and_then(|p| p.first().copied()).unwrap_or(0)
}

/// `n` different ports free on 127.0.0.1 right now, for servers started as
/// separate processes, which bind them a moment later.
///
/// They come from below the kernel's ephemeral range. A port found by
/// binding port 0 is one the kernel hands out again, to the next bind of
/// port 0 or to the local end of the next outgoing connection, so the
/// process that binds it a moment later can find it taken ("Address already
/// in use": a member of the cluster demo failed so in CI). Below that range
/// only explicit binds compete. Each call starts at a different place, so
/// threads of one process picking at once do not pick alike.
pub fn free_ports(n: usize) -> io::Result<Vec<u16>> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let (low, high) = below_ephemeral_range();
    let span = u32::from(high - low);
    if NEXT.load(Ordering::Relaxed) == 0 {
        let seed =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0)
                ^ std::process::id().wrapping_mul(2_654_435_761);
        let _ = NEXT.compare_exchange(0, seed | 1, Ordering::Relaxed, Ordering::Relaxed);
    }
    let mut held = Vec::with_capacity(n);
    let mut ports = Vec::with_capacity(n);
    for _ in 0..span.min(4 * 1024) {
        if ports.len() == n {
            break;
        }
        // A prime stride walks the whole span before it repeats.
        let k = NEXT.fetch_add(7_919, Ordering::Relaxed);
        let port = low + u16::try_from(k % span).unwrap_or(0);
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
            held.push(listener);
            ports.push(port);
        }
    }
    if ports.len() < n {
        return Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("found {} of {n} free ports on 127.0.0.1 between {low} and {high}", ports.len()),
        ));
    }
    Ok(ports)
}

/// Ports to pick from: the 16,384 below the kernel's ephemeral range
/// (`/proc/sys/net/ipv4/ip_local_port_range`, 32768-60999 by default), and
/// above 10,000, clear of the usual servers' own ports.
fn below_ephemeral_range() -> (u16, u16) {
    let ephemeral_low = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|p| p.parse::<u16>().ok()))
        .unwrap_or(32_768);
    let high = ephemeral_low.max(10_000 + 1_024);
    (high.saturating_sub(16_384).max(10_000), high)
}

/// A fresh directory under the system temp dir, removed by [`ServiceProcess`].
pub fn temp_dir(prefix: &str) -> io::Result<PathBuf> {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("protoactor-{prefix}-{}-{n}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Finds `program` (a path, or a name on `PATH`).
pub fn find_program(program: &str) -> Option<PathBuf> {
    let p = Path::new(program);
    if p.components().count() > 1 {
        return p.is_file().then(|| p.to_path_buf());
    }
    std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join(program)).find(|c| c.is_file()))
}

/// A server process started for a test: killed (and its directory removed)
/// on drop. Its stdout and stderr go to `<dir>/log`, shown by
/// [`log_tail`](Self::log_tail) when something goes wrong.
#[derive(Debug)]
pub struct ServiceProcess {
    name: String,
    child: Option<Child>,
    dir: PathBuf,
}

impl ServiceProcess {
    /// Starts `program args` in a new temp dir. Fails with a message naming
    /// `install` when the program is missing.
    pub fn start(name: &str, program: &str, args: &[&str], install: &str) -> Result<Self, String> {
        let dir = temp_dir(name).map_err(|e| format!("{name}: cannot create a temp dir: {e}"))?;
        Self::start_in(name, dir, program, args, install)
    }

    /// Like [`start`](Self::start), in `dir` (created by the caller with
    /// [`temp_dir`], e.g. to write a config file first).
    pub fn start_in(name: &str, dir: PathBuf, program: &str, args: &[&str], install: &str) -> Result<Self, String> {
        let Some(path) = find_program(program) else {
            let _ = fs::remove_dir_all(&dir);
            return Err(format!("{name}: `{program}` is not installed; install it with: {install}"));
        };
        let log = fs::File::create(dir.join("log")).map_err(|e| format!("{name}: cannot create its log: {e}"))?;
        let err = log.try_clone().map_err(|e| format!("{name}: {e}"))?;
        let child = Command::new(path)
            .args(args)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("{name}: cannot start `{program}`: {e}"))?;
        Ok(ServiceProcess { name: name.to_string(), child: Some(child), dir })
    }

    /// Polls `ready` every 50 ms until it returns true. Fails (with the log
    /// tail) if the process exits or `timeout` passes first.
    pub fn wait_until(&mut self, timeout: Duration, mut ready: impl FnMut() -> bool) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            if ready() {
                return Ok(());
            }
            if let Some(child) = &mut self.child
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(format!("{} exited ({status}) before it was ready:\n{}", self.name, self.log_tail()));
            }
            if Instant::now() >= deadline {
                return Err(format!("{} not ready within {timeout:?}:\n{}", self.name, self.log_tail()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Sends `signal` (e.g. `"STOP"`, `"CONT"`, `"KILL"`) with `kill(1)`.
    pub fn signal(&self, signal: &str) -> Result<(), String> {
        let pid = self.pid().ok_or_else(|| format!("{} is not running", self.name))?;
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .map_err(|e| format!("kill -{signal} {pid}: {e}"))?;
        if status.success() { Ok(()) } else { Err(format!("kill -{signal} {pid}: {status}")) }
    }

    /// Stops the process (SIGTERM, then SIGKILL after 5 s) and waits for it;
    /// the directory stays (for a restart on the same data).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = self.signal_child(&child, "TERM");
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the process at once (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the same kind of process again in the same directory (after
    /// [`stop`](Self::stop) or [`kill`](Self::kill)).
    pub fn restart(&mut self, program: &str, args: &[&str], install: &str) -> Result<(), String> {
        self.stop();
        let dir = std::mem::take(&mut self.dir);
        let mut again = Self::start_in(&self.name, dir, program, args, install)?;
        self.child = again.child.take();
        self.dir = std::mem::take(&mut again.dir);
        Ok(())
    }

    fn signal_child(&self, child: &Child, signal: &str) -> io::Result<()> {
        Command::new("kill").arg(format!("-{signal}")).arg(child.id().to_string()).status().map(|_| ())
    }

    /// The last 40 lines of the process's output.
    pub fn log_tail(&self) -> String {
        let text = fs::read_to_string(self.dir.join("log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        self.kill();
        if !self.dir.as_os_str().is_empty() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_differ_lie_below_the_ephemeral_range_and_can_be_bound() {
        let (low, high) = below_ephemeral_range();
        let ports = free_ports(8).expect("eight free ports");
        let mut unique = ports.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), 8, "{ports:?}");
        assert!(ports.iter().all(|p| (low..high).contains(p)), "{ports:?} not in {low}..{high}");
        let listeners: Vec<_> =
            ports.iter().map(|p| TcpListener::bind(("127.0.0.1", *p)).expect("bind a returned port")).collect();
        assert_eq!(listeners.len(), 8);
        assert_ne!(free_ports(1).expect("one more")[0], 0);
    }
}
