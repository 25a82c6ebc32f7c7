//! A member in its own OS process (`zk-test-member`) killed with SIGKILL:
//! it deletes no znode and says goodbye to no one, so the survivors can only
//! learn of its death from ZooKeeper, when its session expires.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use protoactor_actor::ActorSystem;
use protoactor_cluster::{Cluster, Topology};
use protoactor_testkit::zookeeper::ZooKeeperServer;

#[path = "bin/member_protocol.rs"]
mod member_protocol;

use member_protocol::{ECHO, Echoed, Hello, READY, SESSION, cluster_config};

const MEMBER_BINARY: &str = env!("CARGO_BIN_EXE_zk-test-member");
const DEADLINE: Duration = Duration::from_secs(15);
/// How long after the session timeout the survivors may take to drop the member.
const MARGIN: Duration = Duration::from_secs(3);

/// An `zk-test-member` process, killed on drop so a failing test leaves none behind.
struct MemberProcess {
    child: Child,
    id: String,
    address: String,
}

impl MemberProcess {
    /// Starts a member and waits until it has joined and sees `members` members.
    async fn start(connect: &str, members: usize) -> MemberProcess {
        let child = Command::new(MEMBER_BINARY)
            .args([connect, &members.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start zk-test-member");
        let mut process = MemberProcess { child, id: String::new(), address: String::new() };
        let stdout = process.child.stdout.take().expect("the member's stdout is piped");
        let first_line = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).map(|_| line)
        });
        let line = tokio::time::timeout(Duration::from_secs(30), first_line)
            .await
            .expect("the member is ready within 30 s")
            .expect("the reader task ran")
            .expect("the member's stdout is readable");
        match line.split_whitespace().collect::<Vec<_>>()[..] {
            [ready, id, address] if ready == READY => {
                process.id = id.to_string();
                process.address = address.to_string();
            }
            _ => panic!("the member printed {line:?} instead of `{READY} <id> <address>`"),
        }
        process
    }

    /// kill -9, and reap it.
    fn kill(&mut self) {
        self.child.kill().expect("SIGKILL the member");
        self.child.wait().expect("reap the member");
    }
}

impl Drop for MemberProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn zookeeper() -> ZooKeeperServer {
    tokio::task::spawn_blocking(ZooKeeperServer::start)
        .await
        .expect("fixture thread")
        .unwrap_or_else(|e| panic!("ZooKeeper must be available for these tests: {e}"))
}

async fn member(connect: &str) -> Cluster {
    let cluster = Cluster::new(&ActorSystem::new(), cluster_config(connect)).expect("cluster");
    cluster.start_member().await.expect("member starts");
    cluster
}

fn ids(t: &Topology) -> Vec<String> {
    t.members.iter().map(|m| m.id.clone()).collect()
}

/// Waits, until `deadline`, for `cluster` to see exactly the members `want`.
async fn sees_exactly_by(cluster: &Cluster, want: &[&str], deadline: Instant) -> bool {
    let mut want: Vec<String> = want.iter().map(|id| id.to_string()).collect();
    want.sort();
    cluster.member_list().wait_for(deadline.saturating_duration_since(Instant::now()), |t| ids(t) == want).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_member_process_leaves_when_its_session_expires_and_its_grains_move() {
    let server = zookeeper().await;
    let connect = server.connect_string();
    let a = member(&connect).await;
    let b = member(&connect).await;
    // Ready only once it sees all three: the process's view is checked too.
    let mut process = MemberProcess::start(&connect, 3).await;
    let all = [a.id(), b.id(), process.id.as_str()];
    for m in [&a, &b] {
        assert!(sees_exactly_by(m, &all, Instant::now() + DEADLINE).await, "{} sees all three", m.id());
    }

    // Activate grains until one lives in the process.
    let mut on_process = None;
    for i in 0..64 {
        let identity = format!("grain-{i}");
        let reply: Echoed = a.request(&identity, ECHO, Hello { text: "hi".into() }).await.expect("echo");
        assert_eq!(reply.identity, identity);
        if reply.address == process.address {
            on_process = Some(identity);
            break;
        }
    }
    let identity = on_process.expect("some grain lands on the member process");

    process.kill();
    let killed = Instant::now();
    // Proving absence over a window: the ephemeral znode stays until
    // ZooKeeper expires the session, at least ~2/3 of its 2 s after the last ping.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for m in [&a, &b] {
        assert!(m.member_list().contains(&process.id), "{} still lists the killed member", m.id());
        assert!(!m.member_list().is_blocked(&process.id), "{} has not blocked it yet", m.id());
    }

    let deadline = killed + SESSION + MARGIN;
    for m in [&a, &b] {
        assert!(sees_exactly_by(m, &[a.id(), b.id()], deadline).await, "{} drops the killed member in time", m.id());
    }
    let took = killed.elapsed();
    assert!(took >= Duration::from_secs(1), "left after {took:?}, before its 2 s session could expire");
    for m in [&a, &b] {
        assert!(m.member_list().is_blocked(&process.id), "{} blocks the killed member", m.id());
    }
    eprintln!("the killed member left {took:?} after SIGKILL (session timeout {SESSION:?})");

    // The grain is activated again on a survivor, the same one from both.
    let survivors = [a.address().to_string(), b.address().to_string()];
    let mut hosted_at = None;
    for m in [&a, &b] {
        let reply: Echoed = m.request(&identity, ECHO, Hello { text: "again".into() }).await.expect("re-activated");
        assert_eq!(reply.text, "again");
        assert!(survivors.contains(&reply.address), "{identity} now lives on a survivor, not {}", reply.address);
        hosted_at.get_or_insert(reply.address.clone());
        assert_eq!(hosted_at.as_deref(), Some(reply.address.as_str()), "one activation, reached from both");
    }
    for m in [a, b] {
        tokio::time::timeout(DEADLINE, m.shutdown(true)).await.expect("shutdown in time");
    }
}
