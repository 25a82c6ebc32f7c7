//! Member processes: this program re-executed in the member role.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};

/// How long a new member may take to print its `ready` line.
const READY_WITHIN: Duration = Duration::from_secs(60);

/// A running member process. Dropping it kills the process (SIGKILL).
pub(crate) struct MemberProcess {
    /// `member-1`, `member-2`, ...
    pub(crate) name: String,
    /// Its cluster member id.
    pub(crate) id: String,
    /// Its remote address (what counter replies name).
    pub(crate) address: String,
    /// The port of its health endpoint (its place in the peer list).
    pub(crate) health_port: u16,
    /// The OS process id.
    pub(crate) pid: u32,
    child: Child,
    /// Closing it asks the member to leave.
    stdin: Option<ChildStdin>,
}

impl MemberProcess {
    /// Starts `name` with its health endpoint on `health_port`, polling
    /// `peers`, and waits for its `ready` line.
    pub(crate) async fn start(name: String, health_port: u16, peers: &[String]) -> Result<MemberProcess, String> {
        let exe = std::env::current_exe().map_err(|e| format!("cannot find this program to start {name}: {e}"))?;
        let mut child = Command::new(exe)
            .args(["member", "--health-port", &health_port.to_string(), "--peers", &peers.join(",")])
            .args(crate::persist::member_args())
            .args(crate::lookup::member_flags())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {name}: {e}"))?;
        let pid = child.id().unwrap_or_default();
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().ok_or_else(|| format!("{name}: no stdout"))?;
        let mut lines = BufReader::new(stdout).lines();
        let ready = match tokio::time::timeout(READY_WITHIN, lines.next_line()).await {
            Ok(Ok(Some(line))) => line,
            Ok(Ok(None)) | Ok(Err(_)) => return Err(format!("{name} exited before joining the cluster")),
            Err(_) => return Err(format!("{name} did not join the cluster within {READY_WITHIN:?}")),
        };
        let mut words = ready.split_whitespace();
        let (Some("ready"), Some(id), Some(address)) = (words.next(), words.next(), words.next()) else {
            return Err(format!("{name} said `{ready}` instead of `ready <id> <address>`"));
        };
        let (id, address) = (id.to_string(), address.to_string());
        // Anything else it prints is shown, so its pipe never fills up.
        let prefix = name.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                println!("  [{prefix}] {line}");
            }
        });
        Ok(MemberProcess { name, id, address, health_port, pid, child, stdin })
    }

    /// Sends SIGKILL: the process dies at once, without leaving the cluster.
    pub(crate) fn signal_kill(&mut self) -> std::io::Result<()> {
        self.child.start_kill()
    }

    /// Waits for a killed process to be gone (reaped).
    pub(crate) async fn reap(&mut self) -> std::io::Result<()> {
        self.child.wait().await.map(|_| ())
    }

    /// Asks the member to leave gracefully: closes its stdin.
    pub(crate) fn ask_to_leave(&mut self) {
        drop(self.stdin.take());
    }

    /// Waits up to `within` for the process to exit, and kills it if it
    /// does not. True if it exited by itself with success.
    pub(crate) async fn wait_exit(&mut self, within: Duration) -> bool {
        match tokio::time::timeout(within, self.child.wait()).await {
            Ok(Ok(status)) => status.success(),
            _ => {
                let _ = self.child.kill().await;
                false
            }
        }
    }
}
