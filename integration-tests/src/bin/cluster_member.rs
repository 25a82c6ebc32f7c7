//! One cluster member in its own OS process, for the process tests.
//!
//! `cluster_member --dir <member directory>` joins the cluster registered in
//! that directory (see `DirProvider`), hosting the `echo` kind, prints
//! `ready <member id> <address>` on stdout, and leaves gracefully when its
//! stdin closes.

use std::io::{BufRead, Write};
use std::sync::Arc;
use std::time::Duration;

use protoactor_integration_tests::churn::config_with;
use protoactor_integration_tests::churn::dir_provider::DirProvider;
use protoactor_integration_tests::{Activations, echo_kind, start_member};

fn main() -> std::process::ExitCode {
    let mut args = std::env::args().skip(1);
    let dir = match (args.next().as_deref(), args.next()) {
        (Some("--dir"), Some(dir)) => dir,
        _ => {
            eprintln!("usage: cluster_member --dir <member directory>");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cluster_member: cannot start a tokio runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(dir));
    std::process::ExitCode::SUCCESS
}

async fn run(dir: String) {
    // Logs go to stderr: stdout carries the ready line the test reads.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    let activations = Arc::new(Activations::default());
    let config = config_with(DirProvider::new(dir), &[echo_kind("echo", &activations)]);
    let cluster = start_member(config).await;
    // The test may stop reading stdout after this line; later writes must not panic.
    let mut out = std::io::stdout();
    let _ = writeln!(out, "ready {} {}", cluster.id(), cluster.address()).and_then(|()| out.flush());
    // Stdin closing (the test dropping its end) is the signal to leave.
    let (closed_tx, closed_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            if line.is_err() {
                break;
            }
        }
        let _ = closed_tx.send(());
    });
    let _ = closed_rx.await;
    if tokio::time::timeout(Duration::from_secs(15), cluster.shutdown(true)).await.is_err() {
        eprintln!("cluster_member: graceful shutdown took longer than 15 s");
    }
}
