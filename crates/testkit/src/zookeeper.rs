//! A real ZooKeeper server (standalone, Debian's `zookeeper` package) on a
//! free loopback port.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use crate::service::{ServiceProcess, free_port, temp_dir};

/// The jar of the server; its manifest's Class-Path brings the rest.
pub const ZOOKEEPER_JAR: &str = "/usr/share/java/zookeeper.jar";
/// The slf4j binding that makes the server log (to `<dir>/log`).
pub const SLF4J_SIMPLE_JAR: &str = "/usr/share/java/slf4j-simple.jar";
/// What installs the server and Java on Debian.
pub const INSTALL: &str = "apt-get install -y --no-install-recommends zookeeper default-jre-headless";

const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A standalone ZooKeeper for one test: `tickTime` 500 ms (session timeouts
/// from 1 s to 60 s allowed), admin server off, four-letter words `ruok`,
/// `srvr`, `stat`, `mntr`, `cons` on. Killed and its data removed on drop.
#[derive(Debug)]
pub struct ZooKeeperServer {
    process: ServiceProcess,
    port: u16,
}

impl ZooKeeperServer {
    /// Starts a server and waits until it answers `ruok` with `imok`. Fails
    /// with the install command when ZooKeeper or Java is missing.
    pub fn start() -> Result<Self, String> {
        if !Path::new(ZOOKEEPER_JAR).is_file() {
            return Err(format!("zookeeper: {ZOOKEEPER_JAR} is not installed; install it with: {INSTALL}"));
        }
        let mut last = String::new();
        // The free port may be taken again before the JVM binds it: retry.
        for _ in 0..3 {
            let port = free_port();
            let dir = temp_dir("zookeeper").map_err(|e| format!("zookeeper: cannot create a temp dir: {e}"))?;
            write_config(&dir, port)?;
            let args = args();
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let process = ServiceProcess::start_in("zookeeper", dir, "java", &args, INSTALL)?;
            let mut server = ZooKeeperServer { process, port };
            match server.wait_ready() {
                Ok(()) => return Ok(server),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// `127.0.0.1:<port>`, for a client's connect string.
    pub fn connect_string(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's process.
    pub fn process(&self) -> &ServiceProcess {
        &self.process
    }

    /// Stops the server (SIGTERM) and starts it again on the same port and
    /// data: sessions that have not expired meanwhile survive.
    pub fn restart(&mut self) -> Result<(), String> {
        // A stopped JVM ignores SIGTERM until continued.
        let _ = self.process.signal("CONT");
        let args = args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.process.restart("java", &args, INSTALL)?;
        self.wait_ready()
    }

    /// Starts the server again after [`stop`](Self::stop) (same port, data).
    pub fn start_again(&mut self) -> Result<(), String> {
        self.restart()
    }

    /// Freezes the server (SIGSTOP): clients see no answers, and when it is
    /// resumed after more than a session timeout their sessions expire.
    pub fn pause(&self) -> Result<(), String> {
        self.process.signal("STOP")
    }

    /// Resumes a [paused](Self::pause) server (SIGCONT).
    pub fn resume(&self) -> Result<(), String> {
        self.process.signal("CONT")
    }

    /// Stops the server (SIGTERM, SIGKILL after 5 s), keeping its data.
    pub fn stop(&mut self) {
        // A stopped JVM ignores SIGTERM until continued.
        let _ = self.process.signal("CONT");
        self.process.stop();
    }

    /// True if the server answers `ruok` with `imok` now.
    pub fn is_ok(&self) -> bool {
        four_letter_word(self.port, "ruok").is_some_and(|answer| answer == "imok")
    }

    /// Sends a four-letter word (`srvr`, `stat`, `mntr`, `cons`, `ruok`) and
    /// returns the answer.
    pub fn four_letter_word(&self, word: &str) -> Option<String> {
        four_letter_word(self.port, word)
    }

    /// The last lines of the server's log.
    pub fn log_tail(&self) -> String {
        self.process.log_tail()
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let port = self.port;
        self.process.wait_until(READY_TIMEOUT, || four_letter_word(port, "ruok").is_some_and(|a| a == "imok"))
    }
}

fn args() -> Vec<String> {
    [
        "-Xms32m",
        "-Xmx256m",
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",
        "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
        "-cp",
        &format!("{ZOOKEEPER_JAR}:{SLF4J_SIMPLE_JAR}"),
        "org.apache.zookeeper.server.ZooKeeperServerMain",
        "zoo.cfg",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn write_config(dir: &Path, port: u16) -> Result<(), String> {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).map_err(|e| format!("zookeeper: cannot create {}: {e}", data.display()))?;
    let config = format!(
        "tickTime=500\nminSessionTimeout=1000\nmaxSessionTimeout=60000\ninitLimit=10\nsyncLimit=5\n\
         dataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\nmaxClientCnxns=0\n\
         admin.enableServer=false\n4lw.commands.whitelist=ruok,srvr,stat,mntr,cons\nforceSync=no\n",
        data.display()
    );
    std::fs::write(dir.join("zoo.cfg"), config).map_err(|e| format!("zookeeper: cannot write zoo.cfg: {e}"))
}

fn four_letter_word(port: u16, word: &str) -> Option<String> {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    stream.write_all(word.as_bytes()).ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    Some(answer)
}
