//! One cluster member in its own OS process, for the process tests.
//!
//! `cluster_member (--dir <member directory> | --etcd <endpoint> | --zk
//! <connect string>) [--members N]` joins through that provider (a shared
//! member directory, see `DirProvider`, or etcd or ZooKeeper with a 2 s
//! lease or session), hosting the `echo` kind. Once it sees at least N
//! members (default 1) it prints `ready <member id> <address>` on stdout.
//! It leaves gracefully when its stdin closes (the test is gone or done),
//! so a failed test leaves no member behind.

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use protoactor_cluster::Cluster;
use protoactor_integration_tests::churn::config_with;
use protoactor_integration_tests::churn::dir_provider::DirProvider;
use protoactor_integration_tests::member_process::{READY, etcd_provider, zk_provider};
use protoactor_integration_tests::{Activations, echo_kind, start_member};

const USAGE: &str =
    "usage: cluster_member (--dir <member directory> | --etcd <endpoint> | --zk <connect string>) [--members N]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (via, members) = match &args[..] {
        [via, at] => ((via.clone(), at.clone()), Some(1)),
        [via, at, flag, n] if flag == "--members" => ((via.clone(), at.clone()), n.parse().ok()),
        _ => (Default::default(), None),
    };
    let Some(members) = members.filter(|_| matches!(via.0.as_str(), "--dir" | "--etcd" | "--zk")) else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cluster_member: cannot start a tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(via, members))
}

async fn run((via, at): (String, String), members: usize) -> ExitCode {
    // Logs go to stderr: stdout carries the ready line the test reads.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    let activations = Arc::new(Activations::default());
    let kinds = [echo_kind("echo", &activations)];
    let config = match via.as_str() {
        "--dir" => config_with(DirProvider::new(at), &kinds),
        "--etcd" => config_with(etcd_provider(&at), &kinds),
        _ => config_with(zk_provider(&at), &kinds),
    };
    let cluster = start_member(config).await;
    if !sees(&cluster, members).await {
        eprintln!("cluster_member: did not see {members} members within 15 s");
        return ExitCode::FAILURE;
    }
    // The test may stop reading stdout after this line; later writes must not panic.
    let mut out = std::io::stdout();
    let _ = writeln!(out, "{READY} {} {}", cluster.id(), cluster.address()).and_then(|()| out.flush());
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
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

async fn sees(cluster: &Cluster, members: usize) -> bool {
    cluster.member_list().wait_for(Duration::from_secs(15), |t| t.members.len() >= members).await
}
