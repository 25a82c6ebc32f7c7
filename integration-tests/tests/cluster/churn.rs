//! The partition lookup keeps one activation per identity under churn
//! (after the .NET `ClusterMaintainsSingleConcurrentVirtualActorPerIdentity`):
//! request loops on two stable members hit 50 identities, some requests
//! make their grain stop itself, and every couple of seconds a member joins
//! or one of the others leaves gracefully. A process-global counter of live
//! activations per identity (up on `Started`, down on `Stopped`) must never
//! exceed one, and every request must be answered.

use std::time::Duration;

use protoactor_cluster::{Cluster, InMemoryAgent};
use protoactor_integration_tests::churn::{
    LiveTracker, Load, StopFlag, identities, join_loads, sample, shutdown_all, spawn_load, tracked_kind,
};
use protoactor_integration_tests::*;
use std::sync::Arc;
use tokio::time::Instant;

const CHURN_FOR: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_activation_per_identity_under_churn() {
    init_tracing();
    let agent = InMemoryAgent::new();
    let tracker = Arc::new(LiveTracker::default());
    let kinds = [tracked_kind("tracked", &tracker)];
    let a = start_member(test_config(&agent, &kinds)).await;
    let b = start_member(test_config(&agent, &kinds)).await;
    let mut others: Vec<Cluster> = vec![start_member(test_config(&agent, &kinds)).await];
    assert!(wait_members(&[&a, &b, &others[0]], 3).await, "three members");

    let stop = StopFlag::new();
    let load = Load {
        kind: "tracked".into(),
        identities: identities("id", 50),
        hang_after: Duration::from_secs(25),
        pace: Duration::from_millis(2),
        die_ratio: 0.02,
    };
    let loads: Vec<_> = [&a, &a, &a, &b, &b, &b].into_iter().map(|m| spawn_load(m, load.clone(), &stop)).collect();

    let started = Instant::now();
    let (mut joins, mut leaves) = (0, 0);
    while started.elapsed() < CHURN_FOR {
        // Spaces the churn events; the load runs meanwhile.
        tokio::time::sleep(Duration::from_millis(fastrand::u64(1000..2000))).await;
        let add = match others.len() {
            0 => true,
            3.. => false,
            _ => fastrand::bool(),
        };
        if add {
            others.push(start_member(test_config(&agent, &kinds)).await);
            joins += 1;
        } else {
            let leaving = others.swap_remove(fastrand::usize(..others.len()));
            tokio::time::timeout(Duration::from_secs(15), leaving.shutdown(true))
                .await
                .expect("graceful leave in time");
            leaves += 1;
        }
    }
    stop.raise();
    let report = join_loads(loads).await;
    tracing::info!(requests = report.total(), joins, leaves, activations = tracker.activations(), "churn over");

    assert!(joins + leaves >= 5, "the membership churned ({joins} joins, {leaves} leaves)");
    assert!(report.hung.is_empty(), "requests hung: {}", sample(&report.hung));
    let violations = tracker.violations();
    assert!(violations.is_empty(), "concurrent activations of one identity: {}", sample(&violations));
    assert!(report.errors.is_empty(), "requests failed under churn: {}", sample(&report.errors));
    assert!(report.ok >= 500, "the load kept running ({} answered)", report.ok);

    others.extend([a, b]);
    shutdown_all(others).await;
    assert!(tracker.live().is_empty(), "every activation stopped: {:?}", tracker.live());
    assert!(tracker.violations().is_empty(), "no violation while stopping: {}", sample(&tracker.violations()));
}
