//! Members in separate OS processes (the `cluster_member` binary, found
//! through a shared member directory) and this test process as a client:
//! under load, one member process is killed with SIGKILL. Within a bound,
//! every identity answers again from a live process, no request hangs, and
//! every failure names its identity. The other members then leave
//! gracefully and exit cleanly.
#![cfg(target_os = "linux")]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use protoactor_integration_tests::churn::dir_provider::DirProvider;
use protoactor_integration_tests::churn::{
    Load, LoadReport, StopFlag, config_with, identities, join_loads, request_all, sample, spawn_load,
};
use protoactor_integration_tests::member_process::{MemberProcess, Via};
use protoactor_integration_tests::*;
use tokio::time::Instant;

const GRAINS: usize = 60;
/// Client requests give up after 10 s; this timeout firing means a hang.
const HANG: Duration = Duration::from_secs(20);
/// How long after the kill every identity must answer again.
const RECOVERY: Duration = Duration::from_secs(15);

async fn spawn_member(dir: &Path) -> MemberProcess {
    MemberProcess::start(env!("CARGO_BIN_EXE_cluster_member"), Via::Dir(dir), 1).await
}

fn temp_dir() -> PathBuf {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let dir = std::env::temp_dir().join(format!("protoactor-process-test-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary member directory");
    dir
}

fn clean(r: &LoadReport, live: &[String]) -> bool {
    r.errors.is_empty()
        && r.hung.is_empty()
        && r.last.len() == GRAINS
        && r.last.values().all(|p| live.contains(&p.address))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_a_member_process_under_load() {
    init_tracing();
    let dir = temp_dir();
    let (p1, p2, p3) = tokio::join!(spawn_member(&dir), spawn_member(&dir), spawn_member(&dir));
    let mut processes = vec![p1, p2, p3];
    let client =
        start_client(config_with(DirProvider::new(&dir), &[]).with_request_deadline(Duration::from_secs(10))).await;
    assert!(wait_members(&[&client], 3).await, "the client sees the three member processes");

    let ids = identities("grain", GRAINS);
    let warm = request_all(&client, "echo", &ids, 20, HANG).await;
    assert!(warm.errors.is_empty() && warm.hung.is_empty(), "activation: {}", sample(&warm.errors));
    let mut hosted: HashMap<&str, usize> = HashMap::new();
    for p in warm.last.values() {
        *hosted.entry(p.address.as_str()).or_default() += 1;
    }
    // Kill the process hosting the most grains.
    let victim_index = (0..processes.len())
        .max_by_key(|i| hosted.get(processes[*i].address.as_str()).copied().unwrap_or(0))
        .expect("three processes");
    let mut victim = processes.swap_remove(victim_index);
    assert!(hosted.get(victim.address.as_str()).is_some_and(|n| *n > 0), "the victim hosts grains");
    let live: Vec<String> = processes.iter().map(|p| p.address.clone()).collect();

    let stop = StopFlag::new();
    let load = Load {
        kind: "echo".into(),
        identities: ids.clone(),
        hang_after: HANG,
        pace: Duration::from_millis(2),
        die_ratio: 0.0,
    };
    let loads: Vec<_> = (0..6).map(|_| spawn_load(&client, load.clone(), &stop)).collect();
    assert!(stop.answered_more(300, Duration::from_secs(20)).await, "the load is under way before the kill");

    victim.kill().await;
    let killed = Instant::now();

    let mut rounds = 0;
    let recovered = loop {
        rounds += 1;
        let r = request_all(&client, "echo", &ids, 20, HANG).await;
        if clean(&r, &live) {
            break killed.elapsed();
        }
        assert!(
            killed.elapsed() < RECOVERY,
            "not recovered {RECOVERY:?} after the kill: errors {}, hung {}, on the dead member {}",
            sample(&r.errors),
            sample(&r.hung),
            r.last.values().filter(|p| p.address == victim.address).count()
        );
    };
    stop.raise();
    let report = join_loads(loads).await;
    tracing::info!(
        ?recovered,
        rounds,
        requests = report.total(),
        errors = report.errors.len(),
        "recovered from kill -9"
    );

    assert!(report.hung.is_empty(), "requests hung: {}", sample(&report.hung));
    let unclear: Vec<&(String, String)> = report.errors.iter().filter(|(id, e)| !e.contains(id.as_str())).collect();
    assert!(unclear.is_empty(), "errors that do not name their identity: {}", sample(&unclear));
    assert!(report.ok > 0, "the load was answered");
    assert_eq!(client.member_list().topology().members.len(), 2, "the dead process left the topology");

    // The survivors leave gracefully when their stdin closes.
    for p in &mut processes {
        drop(p.child.stdin.take());
    }
    for p in &mut processes {
        let status = tokio::time::timeout(Duration::from_secs(20), p.child.wait())
            .await
            .expect("a member process exits within 20 s of being told to leave")
            .expect("its status is readable");
        assert!(status.success(), "member at {} exited cleanly ({status})", p.address);
    }
    tokio::time::timeout(Duration::from_secs(15), client.shutdown(true)).await.expect("client stops in time");
    let left = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "graceful leaves and the dead member's cleanup empty the member directory");
    let _ = std::fs::remove_dir_all(&dir);
}
