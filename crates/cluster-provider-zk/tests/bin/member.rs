//! `zk-test-member <connect string> [MEMBERS]`: one cluster member in its
//! own OS process, for the tests that kill a member with SIGKILL.
//!
//! It joins cluster `shop` through ZooKeeper at `connect` with a 2 s session,
//! hosts the `echo` kind, waits until it sees `MEMBERS` members (default 1,
//! itself), prints `ready <member id> <address>` on stdout and runs until it
//! is killed. When its stdin closes (the test is gone) it leaves gracefully,
//! so a failed test leaves no member behind.

use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use protoactor_actor::ActorSystem;
use protoactor_cluster::Cluster;

mod member_protocol;

use member_protocol::{READY, cluster_config};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(connect), Ok(members)) = (args.next(), args.next().map_or(Ok(1), |n| n.parse::<usize>())) else {
        eprintln!("usage: zk-test-member <ZooKeeper connect string> [MEMBERS]");
        return ExitCode::from(2);
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("zk-test-member: cannot start a tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(connect, members))
}

async fn run(connect: String, members: usize) -> ExitCode {
    let system = ActorSystem::new();
    let cluster = match Cluster::new(&system, cluster_config(&connect)) {
        Ok(cluster) => cluster,
        Err(e) => {
            eprintln!("zk-test-member: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = cluster.start_member().await {
        eprintln!("zk-test-member: cannot join through {connect}: {e}");
        return ExitCode::FAILURE;
    }
    if !cluster.member_list().wait_for(Duration::from_secs(15), |t| t.members.len() == members).await {
        eprintln!("zk-test-member: did not see {members} members within 15 s");
        return ExitCode::FAILURE;
    }
    // The test may have stopped reading stdout; a failed write must not panic.
    let mut out = std::io::stdout();
    let _ = writeln!(out, "{READY} {} {}", cluster.id(), cluster.address()).and_then(|()| out.flush());

    let (closed, stdin_closed) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin();
        let mut buf = [0u8; 256];
        while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
        let _ = closed.send(());
    });
    let _ = stdin_closed.await;
    if tokio::time::timeout(Duration::from_secs(15), cluster.shutdown(true)).await.is_err() {
        eprintln!("zk-test-member: graceful shutdown took longer than 15 s");
    }
    ExitCode::SUCCESS
}
