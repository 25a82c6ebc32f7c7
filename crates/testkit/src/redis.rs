//! A real Redis server (Debian's `redis-server` package) on a free loopback
//! port.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::service::{ServiceProcess, free_port, temp_dir};

/// The server binary.
pub const REDIS: &str = "redis-server";
/// What installs it on Debian.
pub const INSTALL: &str = "apt-get install -y --no-install-recommends redis-server";

const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// A Redis for one test: a free port on 127.0.0.1, append-only file in its
/// temp dir (so [`restart`](Self::restart) keeps the data), killed and its
/// directory removed on drop.
///
/// ```no_run
/// use protoactor_testkit::redis::RedisServer;
///
/// let mut redis = RedisServer::start().expect("redis starts");
/// println!("redis at {}", redis.url());
/// redis.restart().expect("redis restarts on the same port and data");
/// ```
#[derive(Debug)]
pub struct RedisServer {
    process: ServiceProcess,
    port: u16,
}

impl RedisServer {
    /// Starts a server and waits until it answers `PING`. Fails with the
    /// install command when `redis-server` is missing.
    pub fn start() -> Result<Self, String> {
        let mut last = String::new();
        // A free port may be taken again before Redis binds it: retry.
        for _ in 0..3 {
            let port = free_port();
            let dir = temp_dir("redis").map_err(|e| format!("redis: cannot create a temp dir: {e}"))?;
            let args = args(&dir, port);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let process = ServiceProcess::start_in("redis", dir, REDIS, &args, INSTALL)?;
            let mut server = RedisServer { process, port };
            match server.wait_ready() {
                Ok(()) => return Ok(server),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// `redis://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's process (its pid, signals, log).
    pub fn process(&self) -> &ServiceProcess {
        &self.process
    }

    /// Stops the server (SIGTERM) and starts it again on the same port and
    /// data, then waits until it answers.
    pub fn restart(&mut self) -> Result<(), String> {
        let _ = self.process.signal("CONT");
        let args = args(self.process.dir(), self.port);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.process.restart(REDIS, &args, INSTALL)?;
        self.wait_ready()
    }

    /// True if the server answers `PING` now.
    pub fn is_ready(&self) -> bool {
        ping(self.port)
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let port = self.port;
        self.process.wait_until(READY_TIMEOUT, || ping(port))
    }
}

fn args(dir: &std::path::Path, port: u16) -> Vec<String> {
    [
        "--bind",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--save",
        "",
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--dir",
        &dir.display().to_string(),
        "--daemonize",
        "no",
        "--loglevel",
        "warning",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// `PING` over a raw TCP connection (no Redis client in the testkit).
fn ping(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut answer = [0u8; 7];
    stream.read_exact(&mut answer).is_ok() && &answer == b"+PONG\r\n"
}
