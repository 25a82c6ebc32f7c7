//! A real etcd server (single node, Debian's `etcd-server` package) on free
//! loopback ports.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::service::{ServiceProcess, free_port, temp_dir};

/// The server binary.
pub const ETCD: &str = "etcd";
/// What installs it on Debian.
pub const INSTALL: &str = "apt-get install -y --no-install-recommends etcd-server";

const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A single-node etcd for one test: client and peer ports free on
/// 127.0.0.1, data in `<temp dir>/data`, log in `<temp dir>/log`. Killed
/// and its directory removed on drop.
///
/// ```no_run
/// use protoactor_testkit::etcd::EtcdServer;
///
/// let mut etcd = EtcdServer::start().expect("etcd starts");
/// println!("etcd at {}", etcd.endpoint());
/// etcd.restart().expect("etcd restarts on the same ports and data");
/// ```
#[derive(Debug)]
pub struct EtcdServer {
    process: ServiceProcess,
    client_port: u16,
    peer_port: u16,
}

impl EtcdServer {
    /// Starts a server and waits until `GET /health` answers healthy.
    /// Fails with the install command when etcd is missing.
    pub fn start() -> Result<Self, String> {
        let mut last = String::new();
        // A free port may be taken again before etcd binds it: retry.
        for _ in 0..3 {
            let (client_port, peer_port) = (free_port(), free_port());
            if client_port == peer_port {
                continue;
            }
            let dir = temp_dir("etcd").map_err(|e| format!("etcd: cannot create a temp dir: {e}"))?;
            let args = args(&dir, client_port, peer_port);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let process = ServiceProcess::start_in("etcd", dir, ETCD, &args, INSTALL)?;
            let mut server = EtcdServer { process, client_port, peer_port };
            match server.wait_ready() {
                Ok(()) => return Ok(server),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// `http://127.0.0.1:<client port>`, for a client's endpoint list.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// The client port.
    pub fn client_port(&self) -> u16 {
        self.client_port
    }

    /// The server's process (its pid, signals, log).
    pub fn process(&self) -> &ServiceProcess {
        &self.process
    }

    /// Stops the server (SIGTERM; a no-op if it is down) and starts it again
    /// on the same ports and data, then waits until it is healthy. Keys and
    /// leases survive; etcd extends the leases as it comes back.
    pub fn restart(&mut self) -> Result<(), String> {
        // A stopped (SIGSTOP) process ignores SIGTERM until continued.
        let _ = self.process.signal("CONT");
        let args = args(self.process.dir(), self.client_port, self.peer_port);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.process.restart(ETCD, &args, INSTALL)?;
        self.wait_ready()
    }

    /// Stops the server (SIGTERM, SIGKILL after 5 s) and keeps its data;
    /// [`restart`](Self::restart) brings it back.
    pub fn stop(&mut self) {
        let _ = self.process.signal("CONT");
        self.process.stop();
    }

    /// Kills the server at once (SIGKILL) and keeps its data;
    /// [`restart`](Self::restart) brings it back.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// True if `GET /health` on the client port answers healthy now.
    pub fn is_healthy(&self) -> bool {
        health(self.client_port)
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let port = self.client_port;
        self.process.wait_until(READY_TIMEOUT, || health(port))
    }
}

fn args(dir: &std::path::Path, client_port: u16, peer_port: u16) -> Vec<String> {
    let client = format!("http://127.0.0.1:{client_port}");
    let peer = format!("http://127.0.0.1:{peer_port}");
    vec![
        "--name".into(),
        "testkit".into(),
        "--data-dir".into(),
        dir.join("data").display().to_string(),
        "--listen-client-urls".into(),
        client.clone(),
        "--advertise-client-urls".into(),
        client,
        "--listen-peer-urls".into(),
        peer.clone(),
        "--initial-advertise-peer-urls".into(),
        peer.clone(),
        "--initial-cluster".into(),
        format!("testkit={peer}"),
        "--initial-cluster-state".into(),
        "new".into(),
        "--logger".into(),
        "zap".into(),
        "--log-level".into(),
        "warn".into(),
    ]
}

/// `GET /health` over a raw TCP connection (no HTTP client in the testkit).
fn health(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    let request = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.take(64 * 1024).read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200") && answer.contains(r#""health":"true""#)
}
