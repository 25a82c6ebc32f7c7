//! Members in their own OS processes (the `cluster_member` binary), for the
//! tests where the point is a process dying: the provider a process joins
//! through, and a handle that starts it, reads its ready line and kills it.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use protoactor_cluster_provider_etcd::{EtcdConfig, EtcdProvider};
use protoactor_cluster_provider_zk::{ZkConfig, ZkProvider};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The lease TTL (etcd) and session timeout (ZooKeeper) of process-test
/// members: a killed member disappears from the provider about this long
/// after its last keep-alive or ping.
pub const EXPIRY: Duration = Duration::from_secs(2);

/// The line a member process prints once it has joined: `ready <member id> <address>`.
pub const READY: &str = "ready";

/// An etcd provider on `endpoint` with the short [`EXPIRY`] as lease TTL.
pub fn etcd_provider(endpoint: &str) -> EtcdProvider {
    let config = EtcdConfig::new([endpoint.to_string()])
        .with_prefix("/process-tests")
        .with_ttl(EXPIRY)
        .with_connect_timeout(Duration::from_secs(2))
        .with_max_retry_interval(Duration::from_millis(300));
    EtcdProvider::new(config)
}

/// A ZooKeeper provider on `connect` (host:port list) with the short
/// [`EXPIRY`] as session timeout.
pub fn zk_provider(connect: &str) -> ZkProvider {
    let config = ZkConfig::new(connect)
        .with_root("/process-tests")
        .with_session_timeout(EXPIRY)
        .with_connect_timeout(Duration::from_secs(5));
    ZkProvider::new(config)
}

/// Which provider a member process joins through (the binary's arguments).
#[derive(Debug, Clone, Copy)]
pub enum Via<'a> {
    /// A member directory shared by the processes (`DirProvider`).
    Dir(&'a Path),
    /// etcd at this endpoint.
    Etcd(&'a str),
    /// ZooKeeper at this connect string.
    Zk(&'a str),
}

/// A `cluster_member` process, killed on drop so a failing test leaves none
/// behind. It leaves the cluster gracefully when its stdin closes.
#[derive(Debug)]
pub struct MemberProcess {
    /// The process.
    pub child: Child,
    /// Its member id.
    pub id: String,
    /// Its member address.
    pub address: String,
}

impl MemberProcess {
    /// Starts `binary` (the path of `cluster_member`) joining `via`, and
    /// waits for its ready line: printed once it has joined and sees at
    /// least `members` members.
    pub async fn start(binary: &str, via: Via<'_>, members: usize) -> MemberProcess {
        let mut command = Command::new(binary);
        match via {
            Via::Dir(dir) => command.arg("--dir").arg(dir),
            Via::Etcd(endpoint) => command.args(["--etcd", endpoint]),
            Via::Zk(connect) => command.args(["--zk", connect]),
        };
        let mut child = command
            .args(["--members", &members.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("the member binary starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let line = tokio::time::timeout(Duration::from_secs(30), BufReader::new(stdout).lines().next_line())
            .await
            .expect("the member reports ready within 30 s")
            .expect("its stdout is readable")
            .expect("it prints a ready line");
        match line.split_whitespace().collect::<Vec<_>>()[..] {
            [ready, id, address] if ready == READY => {
                MemberProcess { child, id: id.to_string(), address: address.to_string() }
            }
            _ => panic!("the member printed {line:?} instead of `{READY} <id> <address>`"),
        }
    }

    /// kill -9, and reap it (so its pid is gone rather than a zombie).
    pub async fn kill(&mut self) {
        self.child.start_kill().expect("SIGKILL the member");
        self.child.wait().await.expect("reap the member");
    }
}
