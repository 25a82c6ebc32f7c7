//! A real PostgreSQL server (Debian's `postgresql` package) on a free
//! loopback port with a temporary data directory (feature `postgres`).
//!
//! `initdb` is slow (seconds), so it runs once per machine into a template
//! directory under the temp dir, which each server copies. As root the
//! server runs as the `postgres` user (PostgreSQL refuses to run as root).

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::service::{ServiceProcess, free_port, temp_dir};

/// What installs the server on Debian.
pub const INSTALL: &str = "apt-get install -y --no-install-recommends postgresql";

const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A PostgreSQL server for one test: user `postgres`, database `postgres`,
/// trust authentication, `fsync=off`. Stopped and its directory removed on
/// drop.
///
/// ```no_run
/// use protoactor_testkit::postgres::PostgresServer;
///
/// let mut pg = PostgresServer::start().expect("postgres starts");
/// println!("connect with {}", pg.connection_string());
/// pg.restart().expect("postgres restarts on the same port and data");
/// ```
#[derive(Debug)]
pub struct PostgresServer {
    process: ServiceProcess,
    port: u16,
    bin: PathBuf,
}

impl PostgresServer {
    /// Starts a server and waits until it accepts connections. Fails with
    /// the install command when PostgreSQL is missing.
    pub fn start() -> Result<Self, String> {
        let bin = bin_dir()?;
        let template = template()?;
        let mut last = String::new();
        for _ in 0..3 {
            let port = free_port();
            let dir = temp_dir("postgres").map_err(|e| format!("postgres: cannot create a temp dir: {e}"))?;
            let status = Command::new("cp")
                .arg("-a")
                .arg(template.join("data"))
                .arg(dir.join("data"))
                .status()
                .map_err(|e| format!("postgres: cannot copy the template: {e}"))?;
            if !status.success() {
                return Err(format!("postgres: copying the template data dir failed ({status})"));
            }
            give_to_postgres(&dir)?;
            let (program, args) = command(&bin, &dir, port);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let process = ServiceProcess::start_in("postgres", dir, &program, &args, INSTALL)?;
            let mut server = PostgresServer { process, port, bin: bin.clone() };
            match server.wait_ready() {
                Ok(()) => return Ok(server),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A libpq-style connection string for tokio-postgres.
    pub fn connection_string(&self) -> String {
        format!("host=127.0.0.1 port={} user=postgres dbname=postgres connect_timeout=5", self.port)
    }

    /// The server's process (pid, signals, log).
    pub fn process(&self) -> &ServiceProcess {
        &self.process
    }

    /// Stops the server (fast shutdown: clients are disconnected) and keeps
    /// its data; [`restart`](Self::restart) brings it back.
    pub fn stop(&mut self) {
        let _ = self.process.signal("CONT");
        // SIGINT is PostgreSQL's fast shutdown; SIGTERM would wait for clients.
        let _ = self.process.signal("INT");
        self.process.stop();
    }

    /// Stops the server if running and starts it again on the same port and
    /// data, then waits until it accepts connections.
    pub fn restart(&mut self) -> Result<(), String> {
        self.stop();
        let (program, args) = command(&self.bin, self.process.dir(), self.port);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.process.restart(&program, &args, INSTALL)?;
        self.wait_ready()
    }

    /// True if the server accepts connections now (`pg_isready`).
    pub fn is_ready(&self) -> bool {
        is_ready(&self.bin, self.port)
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let (bin, port) = (self.bin.clone(), self.port);
        self.process.wait_until(READY_TIMEOUT, || is_ready(&bin, port))
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        // A fast shutdown ends the backends too (SIGKILL would orphan them).
        self.stop();
    }
}

fn is_ready(bin: &Path, port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    if TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err() {
        return false;
    }
    Command::new(bin.join("pg_isready"))
        .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres", "-d", "postgres"])
        .status()
        .is_ok_and(|s| s.success())
}

/// The newest `/usr/lib/postgresql/<version>/bin` (or `PG_BIN`).
fn bin_dir() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| {
                    let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
                    let bin = e.path().join("bin");
                    bin.join("postgres").is_file().then_some((v, bin))
                })
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).ok_or_else(|| {
        format!("postgres: no server under /usr/lib/postgresql/<version>/bin; install it with: {INSTALL}")
    })
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// As root, `dir` must belong to the `postgres` user the server runs as.
fn give_to_postgres(dir: &Path) -> Result<(), String> {
    if !is_root() {
        return Ok(());
    }
    let status = Command::new("chown")
        .args(["-R", "postgres:postgres"])
        .arg(dir)
        .status()
        .map_err(|e| format!("postgres: chown: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("postgres: chown of {} failed ({status})", dir.display())) }
}

/// The server command: `postgres` itself (as the `postgres` user through
/// `setpriv`, which execs, so the pid is the postmaster's).
fn command(bin: &Path, dir: &Path, port: u16) -> (String, Vec<String>) {
    let server = bin.join("postgres").display().to_string();
    let mut args = vec![
        "-D".to_string(),
        dir.join("data").display().to_string(),
        "-p".into(),
        port.to_string(),
        "-k".into(),
        dir.display().to_string(),
        "-c".into(),
        "listen_addresses=127.0.0.1".into(),
        "-c".into(),
        "fsync=off".into(),
        "-c".into(),
        "max_connections=200".into(),
    ];
    if is_root() {
        let mut wrapped =
            vec!["--reuid=postgres".to_string(), "--regid=postgres".into(), "--init-groups".into(), server];
        wrapped.append(&mut args);
        ("setpriv".into(), wrapped)
    } else {
        (server, args)
    }
}

/// The initdb'd template, made once per machine and reused.
fn template() -> Result<PathBuf, String> {
    static TEMPLATE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    TEMPLATE.get_or_init(make_template).clone()
}

fn make_template() -> Result<PathBuf, String> {
    let bin = bin_dir()?;
    let version = bin.parent().and_then(Path::file_name).map(|v| v.to_string_lossy().to_string()).unwrap_or_default();
    let user = Command::new("id").arg("-un").output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let template =
        std::env::temp_dir().join(format!("protoactor-postgres-template-{version}-{}", user.unwrap_or_default()));
    if template.join("data").join("PG_VERSION").is_file() {
        return Ok(template);
    }
    // initdb into a fresh dir, then rename: concurrent test processes never
    // see a half-made template.
    let work = temp_dir("postgres-initdb").map_err(|e| format!("postgres: cannot create a temp dir: {e}"))?;
    give_to_postgres(&work)?;
    let initdb = bin.join("initdb").display().to_string();
    let data = work.join("data").display().to_string();
    let base = ["-D", &data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"];
    let output = if is_root() {
        Command::new("setpriv")
            .args(["--reuid=postgres", "--regid=postgres", "--init-groups", &initdb])
            .args(base)
            .current_dir(&work)
            .output()
    } else {
        Command::new(&initdb).args(base).output()
    }
    .map_err(|e| format!("postgres: cannot run initdb ({e}); install it with: {INSTALL}"))?;
    if !output.status.success() {
        let _ = std::fs::remove_dir_all(&work);
        return Err(format!(
            "postgres: initdb failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    match std::fs::rename(&work, &template) {
        Ok(()) => Ok(template),
        // Another process made it first: use theirs.
        Err(_) if template.join("data").join("PG_VERSION").is_file() => {
            let _ = std::fs::remove_dir_all(&work);
            Ok(template)
        }
        Err(e) => Err(format!("postgres: cannot move the template into place: {e}")),
    }
}
