//! A writer process killed with SIGKILL under load loses no acknowledged
//! event and leaves nothing half-written: the test runs this test binary
//! again as the writer (the ignored `writer_process` test), kills it once it
//! acknowledged a few hundred events, and recovers every journal.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use protoactor_persistence::{EventSourced, Journal, PostgresProvider, Provider, SnapshotPolicy, SqliteProvider};
use protoactor_testkit::postgres::PostgresServer;
use protoactor_testkit::service::temp_dir;
use serde::{Deserialize, Serialize};

const WRITERS: u64 = 4;
const STORE_VAR: &str = "PROTOACTOR_PERSISTENCE_KILL_TEST_STORE";

#[derive(Default, Serialize, Deserialize)]
struct Count(u64);

#[derive(Serialize, Deserialize)]
struct Inc(u64);

impl EventSourced for Count {
    type Event = Inc;
    fn apply(&mut self, event: &Inc) {
        // Each event carries the count it makes: a replayed journal with a
        // missing or repeated event would not add up.
        assert_eq!(event.0, self.0 + 1, "events in order, none missing or repeated");
        self.0 = event.0;
    }
}

async fn open(spec: &str) -> Arc<dyn Provider> {
    if let Some(path) = spec.strip_prefix("sqlite:") {
        Arc::new(SqliteProvider::open(path).await.expect("open sqlite"))
    } else if let Some(conn) = spec.strip_prefix("postgres:") {
        Arc::new(PostgresProvider::connect(conn).await.expect("connect postgres"))
    } else {
        panic!("unknown store spec {spec}")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the writer process of the kill tests below, started by them"]
async fn writer_process() {
    let spec = std::env::var(STORE_VAR).expect("started by a kill test");
    let provider = open(&spec).await;
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let provider = provider.clone();
        tasks.push(tokio::spawn(async move {
            let mut journal = Journal::<Count>::recover(provider, format!("writer-{w}"), SnapshotPolicy::every(50))
                .await
                .expect("recover");
            loop {
                let next = journal.state().0 + 1;
                journal.persist(Inc(next)).await.expect("persist");
                // Printed only once stored: this line is the acknowledgement.
                println!("acked {w} {next}");
            }
        }));
    }
    // The writers run until the process is killed.
    futures_util::future::join_all(tasks).await;
}

async fn kill_under_load_and_recover(spec: String) {
    let exe = std::env::current_exe().expect("test binary");
    let mut child = Command::new(exe)
        .args(["--exact", "writer_process", "--ignored", "--nocapture", "--test-threads=1"])
        .env(STORE_VAR, &spec)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the writer process");
    let stdout = child.stdout.take().expect("stdout");
    let (acked, killed) = tokio::task::spawn_blocking(move || {
        let mut acked: HashMap<u64, u64> = HashMap::new();
        let mut total = 0;
        let mut killed = false;
        let deadline = Instant::now() + Duration::from_secs(60);
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let mut words = line.split_whitespace();
            if let (Some("acked"), Some(w), Some(n)) = (words.next(), words.next(), words.next()) {
                let (w, n) = (w.parse::<u64>().expect("writer"), n.parse::<u64>().expect("count"));
                acked.insert(w, n);
                total += 1;
            }
            if !killed && (total >= 400 || Instant::now() > deadline) {
                child.kill().expect("SIGKILL the writer");
                killed = true;
            }
            // Keep reading: lines written before the kill are acknowledgements too.
        }
        let _ = child.wait();
        (acked, killed)
    })
    .await
    .expect("reader");
    assert!(killed, "the writer was killed under load");
    assert_eq!(acked.len() as u64, WRITERS, "every writer acknowledged events before the kill: {acked:?}");

    let provider = open(&spec).await;
    for (w, acked) in acked {
        let mut journal = Journal::<Count>::recover(provider.clone(), format!("writer-{w}"), SnapshotPolicy::none())
            .await
            .expect("recover after the kill");
        let recovered = journal.state().0;
        assert!(recovered >= acked, "writer {w}: {acked} acknowledged but only {recovered} recovered");
        assert!(recovered <= acked + 1, "writer {w}: at most the one unacknowledged in-flight event extra");
        let next = recovered + 1;
        journal.persist(Inc(next)).await.expect("the journal continues after the kill");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_writer_killed_under_load_loses_no_acknowledged_event() {
    let dir = temp_dir("sqlite-kill").expect("temp dir");
    kill_under_load_and_recover(format!("sqlite:{}", dir.join("journal.db").display())).await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_writer_killed_under_load_loses_no_acknowledged_event() {
    let pg = PostgresServer::start().unwrap_or_else(|e| panic!("{e}"));
    kill_under_load_and_recover(format!("postgres:{}", pg.connection_string())).await;
}
