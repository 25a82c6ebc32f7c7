//! A graceful leave loses no request: while two members send a continuous
//! load to many identities, the third leaves with `shutdown(true)`. Every
//! request returns Ok (requests to the leaver's grains and to the identities
//! it owned are retried until the survivors take over), the leaver's grains
//! are passivated (their stop hooks run) and answer from a survivor
//! afterwards.

use std::collections::HashSet;
use std::time::Duration;

use protoactor_integration_tests::churn::{
    Load, StopFlag, identities, join_loads, request_all, sample, shutdown_all, spawn_load,
};
use protoactor_integration_tests::*;
use tokio::time::Instant;

const GRAINS: usize = 80;
const HANG: Duration = Duration::from_secs(25);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_leave_loses_no_request() {
    let EchoMembers { activations, members: [a, b, c], .. } = echo_members().await;

    let ids = identities("grain", GRAINS);
    let warm = request_all(&a, "echo", &ids, 20, HANG).await;
    assert!(warm.errors.is_empty() && warm.hung.is_empty(), "warm-up: {}", sample(&warm.errors));
    let leaver = c.address().to_string();
    let on_leaver: HashSet<String> =
        warm.last.iter().filter(|(_, p)| p.address == leaver).map(|(k, _)| k.clone()).collect();
    assert!(!on_leaver.is_empty(), "the leaver hosts some grains");

    let stop = StopFlag::new();
    let load = Load {
        kind: "echo".into(),
        identities: ids.clone(),
        hang_after: HANG,
        pace: Duration::from_millis(2),
        die_ratio: 0.0,
    };
    let loads: Vec<_> = [&a, &a, &a, &b, &b, &b].into_iter().map(|m| spawn_load(m, load.clone(), &stop)).collect();

    assert!(stop.answered_more(300, Duration::from_secs(20)).await, "the load is under way before the leave");
    let stopped_before = activations.stopped();
    let leaving = Instant::now();
    tokio::time::timeout(Duration::from_secs(15), c.shutdown(true)).await.expect("graceful leave in time");
    let took = leaving.elapsed();
    assert!(
        activations.stopped() - stopped_before >= on_leaver.len(),
        "the leaver passivated its {} grains",
        on_leaver.len()
    );
    assert!(wait_members(&[&a, &b], 2).await, "the survivors see the leave");
    assert!(stop.answered_more(300, Duration::from_secs(20)).await, "the survivors keep serving after the leave");
    stop.raise();
    let report = join_loads(loads).await;
    tracing::info!(requests = report.total(), ?took, "load over the graceful leave");

    assert!(report.hung.is_empty(), "requests hung: {}", sample(&report.hung));
    assert!(report.errors.is_empty(), "requests failed during the leave: {}", sample(&report.errors));
    assert!(report.ok >= 200, "the load kept running ({} requests)", report.ok);

    // Afterwards every identity answers from a survivor.
    let (after_a, after_b) =
        tokio::join!(request_all(&a, "echo", &ids, 20, HANG), request_all(&b, "echo", &ids, 20, HANG));
    let survivors = [a.address().to_string(), b.address().to_string()];
    for r in [&after_a, &after_b] {
        assert!(r.errors.is_empty() && r.hung.is_empty(), "after the leave: {}", sample(&r.errors));
        for id in ids.iter() {
            assert!(survivors.contains(&r.last[id].address), "{id} lives on a survivor");
        }
    }
    for id in ids.iter() {
        assert_eq!(after_a.last[id].address, after_b.last[id].address, "{id} has one activation");
    }
    shutdown_all([a, b]).await;
}
