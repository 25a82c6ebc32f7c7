//! 1,000 grains on 3 members, a client sending a steady load, and members
//! restarted at random (killed abruptly or leaving gracefully, then replaced
//! by a new member): every request is answered or fails with an error that
//! names its identity, none hangs, and once the churn stops every grain
//! answers again.

use std::sync::Arc;
use std::time::Duration;

use protoactor_cluster::{Cluster, InMemoryAgent};
use protoactor_integration_tests::churn::{
    Load, StopFlag, identities, join_loads, request_all, sample, shutdown_all, spawn_load,
};
use protoactor_integration_tests::*;
use tokio::time::Instant;

const GRAINS: usize = 1000;
const CHURN_FOR: Duration = Duration::from_secs(14);
/// Requests give up after 10 s (the client's deadline); this timeout firing means a hang.
const HANG: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_member_restarts_under_load() {
    init_tracing();
    let agent = InMemoryAgent::new();
    let activations = Arc::new(Activations::default());
    let kinds = [echo_kind("echo", &activations)];
    let mut members: Vec<Cluster> = Vec::new();
    for _ in 0..3 {
        members.push(start_member(test_config(&agent, &kinds)).await);
    }
    let client = start_client(test_config(&agent, &[]).with_request_deadline(Duration::from_secs(10))).await;
    let all: Vec<&Cluster> = members.iter().chain([&client]).collect();
    assert!(wait_members(&all, 3).await, "three members, seen by the client too");

    let ids = identities("grain", GRAINS);
    let warm = request_all(&client, "echo", &ids, 50, HANG).await;
    assert!(warm.errors.is_empty() && warm.hung.is_empty(), "activation: {}", sample(&warm.errors));
    assert_eq!(activations.started(), GRAINS, "one activation per grain");

    let stop = StopFlag::new();
    let load = Load {
        kind: "echo".into(),
        identities: ids.clone(),
        hang_after: HANG,
        pace: Duration::from_millis(1),
        die_ratio: 0.0,
    };
    let loads: Vec<_> = (0..12).map(|_| spawn_load(&client, load.clone(), &stop)).collect();

    let started = Instant::now();
    let (mut kills, mut leaves) = (0, 0);
    while started.elapsed() < CHURN_FOR {
        // Spaces the restarts; the load runs meanwhile.
        tokio::time::sleep(Duration::from_millis(fastrand::u64(1500..2500))).await;
        let victim = members.swap_remove(fastrand::usize(..members.len()));
        let graceful = fastrand::bool();
        tokio::time::timeout(Duration::from_secs(15), victim.shutdown(graceful)).await.expect("stop in time");
        if graceful {
            leaves += 1;
        } else {
            kills += 1;
        }
        members.push(start_member(test_config(&agent, &kinds)).await);
    }
    stop.raise();
    let report = join_loads(loads).await;
    tracing::info!(
        requests = report.total(),
        ok = report.ok,
        errors = report.errors.len(),
        kills,
        leaves,
        "load over the restarts"
    );

    assert!(kills + leaves >= 5, "members restarted ({kills} killed, {leaves} left)");
    assert!(report.hung.is_empty(), "requests hung: {}", sample(&report.hung));
    let unclear: Vec<&(String, String)> = report.errors.iter().filter(|(id, e)| !e.contains(id.as_str())).collect();
    assert!(unclear.is_empty(), "errors that do not name their identity: {}", sample(&unclear));
    assert!(report.ok >= 1000, "the load was answered ({} ok of {})", report.ok, report.total());

    // Churn over: every grain answers again.
    let all: Vec<&Cluster> = members.iter().chain([&client]).collect();
    assert!(wait_members(&all, 3).await, "three members again");
    let after = request_all(&client, "echo", &ids, 50, HANG).await;
    assert!(after.hung.is_empty(), "requests hung after the churn: {}", sample(&after.hung));
    assert!(after.errors.is_empty(), "grains unreachable after the churn: {}", sample(&after.errors));
    let live: Vec<String> = members.iter().map(|m| m.address().to_string()).collect();
    assert!(after.last.values().all(|p| live.contains(&p.address)), "every grain lives on a current member");

    members.push(client);
    shutdown_all(members).await;
}
