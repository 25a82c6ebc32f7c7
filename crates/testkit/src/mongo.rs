//! A MongoDB stand-in for tests: SecantusDB (a MongoDB wire-protocol server
//! in Python on WiredTiger) from a pinned virtualenv, on a free loopback
//! port; or a real MongoDB when `MONGODB_URI` is set.

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use crate::service::{ServiceProcess, free_port, temp_dir};

/// The pinned SecantusDB release.
pub const SECANTUS_VERSION: &str = "0.7.0b3";
/// What installs it (`scripts/test.sh` runs this when it is missing).
pub const INSTALL: &str = "python3 -m venv ~/.cache/protoactor-rs/secantus-0.7.0b3 && ~/.cache/protoactor-rs/secantus-0.7.0b3/bin/pip install secantusdb==0.7.0b3 (or run scripts/test.sh --setup-only)";

const READY_TIMEOUT: Duration = Duration::from_secs(30);

const LAUNCHER: &str = r#"
import signal, sys
from secantus import SecantusDBServer
s = SecantusDBServer(host="127.0.0.1", port=int(sys.argv[1]), storage_path=":memory:",
                     ttl_sweep_seconds=1.0, cache_size="64M", enable_test_commands=False)
def stop(*_):
    s.stop()
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
s.start()
print("READY", s.uri, flush=True)
s.wait()
"#;

/// The virtualenv's python (`$HOME/.cache/protoactor-rs/secantus-<version>/bin/python3`).
pub fn venv_python() -> PathBuf {
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/root"));
    home.join(".cache/protoactor-rs").join(format!("secantus-{SECANTUS_VERSION}")).join("bin/python3")
}

/// A MongoDB-compatible server for one test: SecantusDB on a free port
/// (in memory, killed on drop), or the real server in `MONGODB_URI`.
///
/// ```no_run
/// use protoactor_testkit::mongo::MongoServer;
///
/// let mongo = MongoServer::start().expect("mongo starts");
/// println!("mongo at {}", mongo.uri());
/// ```
#[derive(Debug)]
pub struct MongoServer {
    process: Option<ServiceProcess>,
    uri: String,
    port: u16,
}

impl MongoServer {
    /// A real MongoDB if `MONGODB_URI` is set, else the stand-in; see
    /// [`start_stand_in`](Self::start_stand_in).
    pub fn start() -> Result<Self, String> {
        match std::env::var("MONGODB_URI") {
            Ok(uri) if !uri.is_empty() => Ok(MongoServer { process: None, uri, port: 0 }),
            _ => Self::start_stand_in(),
        }
    }

    /// Starts SecantusDB and waits until its port accepts connections.
    /// Fails with the install command when the virtualenv is missing.
    pub fn start_stand_in() -> Result<Self, String> {
        let python = venv_python();
        let python = python.to_str().ok_or("the virtualenv path is not UTF-8")?.to_string();
        let mut last = String::new();
        for _ in 0..3 {
            let port = free_port();
            let dir = temp_dir("mongo").map_err(|e| format!("mongo: cannot create a temp dir: {e}"))?;
            let script = dir.join("launch.py");
            std::fs::write(&script, LAUNCHER).map_err(|e| format!("mongo: cannot write the launcher: {e}"))?;
            let script = script.display().to_string();
            let port_arg = port.to_string();
            let mut process =
                ServiceProcess::start_in("secantusdb", dir, &python, &[script.as_str(), &port_arg], INSTALL)?;
            match process.wait_until(READY_TIMEOUT, || connects(port)) {
                Ok(()) => {
                    return Ok(MongoServer { process: Some(process), uri: format!("mongodb://127.0.0.1:{port}/"), port });
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Stops the stand-in (SIGTERM) and starts it again on the same port,
    /// empty (it keeps its data in memory), then waits until it accepts
    /// connections. Fails for an external server.
    pub fn restart(&mut self) -> Result<(), String> {
        let port = self.port;
        let process = self.process.as_mut().ok_or("cannot restart the external server in MONGODB_URI")?;
        let python = venv_python().display().to_string();
        let script = process.dir().join("launch.py").display().to_string();
        let port_arg = port.to_string();
        process.restart(&python, &[script.as_str(), &port_arg], INSTALL)?;
        process.wait_until(READY_TIMEOUT, || connects(port))
    }

    /// The connection string.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// True if this is the real server from `MONGODB_URI`.
    pub fn is_external(&self) -> bool {
        self.process.is_none()
    }

    /// The stand-in's process, `None` for an external server.
    pub fn process(&self) -> Option<&ServiceProcess> {
        self.process.as_ref()
    }

    /// The stand-in's port (0 for an external server).
    pub fn port(&self) -> u16 {
        self.port
    }
}

fn connects(port: u16) -> bool {
    TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], port)), Duration::from_millis(500)).is_ok()
}
