//! A member joining moves ownership, not grains: 100 grains activated on two
//! members stay where they are when a third joins, requests from every
//! member (including the newcomer, before and after everyone has seen it)
//! reach the same activations, and no grain is activated twice, not even
//! fresh identities whose first requests race with the join. The directory
//! entries the newcomer now owns were handed over to it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use protoactor_cluster::InMemoryAgent;
use protoactor_integration_tests::churn::{LoadReport, identities, request_all, sample, shutdown_all};
use protoactor_integration_tests::*;

const GRAINS: usize = 100;
const HANG: Duration = Duration::from_secs(25);

fn assert_clean(what: &str, r: &LoadReport) {
    assert!(r.hung.is_empty(), "{what}: requests hung: {}", sample(&r.hung));
    assert!(r.errors.is_empty(), "{what}: requests failed: {}", sample(&r.errors));
    assert_eq!(r.last.len(), GRAINS, "{what}: every identity answered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joining_member_takes_ownership_without_reactivating() {
    init_tracing();
    let agent = InMemoryAgent::new();
    let activations = Arc::new(Activations::default());
    let kinds = [echo_kind("echo", &activations)];
    let a = start_member(test_config(&agent, &kinds)).await;
    let b = start_member(test_config(&agent, &kinds)).await;
    assert!(wait_members(&[&a, &b], 2).await, "two members");

    let ids = identities("grain", GRAINS);
    let first = request_all(&a, "echo", &ids, 20, HANG).await;
    assert_clean("activation", &first);
    assert_eq!(activations.started(), GRAINS);
    let home: HashMap<String, String> = first.last.iter().map(|(k, p)| (k.clone(), p.address.clone())).collect();

    // First activations of fresh identities race with the join: an owner
    // under the old topology may activate while the new owner pulls.
    let fresh = identities("fresh", GRAINS);
    let (c, fa, fb) = tokio::join!(
        start_member(test_config(&agent, &kinds)),
        request_all(&a, "echo", &fresh, 10, HANG),
        request_all(&b, "echo", &fresh, 10, HANG),
    );
    // At once, while a and b may not have seen c yet and c is pulling its
    // share of the directory: the newcomer's requests must wait for the
    // handover rather than activate a second copy.
    let (ra, rb, rc) = tokio::join!(
        request_all(&a, "echo", &ids, 20, HANG),
        request_all(&b, "echo", &ids, 20, HANG),
        request_all(&c, "echo", &ids, 20, HANG),
    );
    for (who, r) in [("a during the join", &ra), ("b during the join", &rb), ("c during the join", &rc)] {
        assert_clean(who, r);
    }
    let fc = request_all(&c, "echo", &fresh, 20, HANG).await;
    for (who, r) in [("a, fresh", &fa), ("b, fresh", &fb), ("c, fresh", &fc)] {
        assert_clean(who, r);
    }
    for id in fresh.iter() {
        let addresses: std::collections::HashSet<&str> =
            [&fa, &fb, &fc].iter().map(|r| r.last[id].address.as_str()).collect();
        assert_eq!(addresses.len(), 1, "{id} has one activation: {addresses:?}");
    }
    assert_eq!(activations.started(), 2 * GRAINS, "fresh identities activated once each during the join");
    assert!(wait_members(&[&a, &b, &c], 3).await, "everyone sees the newcomer");
    let (ra2, rb2, rc2) = tokio::join!(
        request_all(&a, "echo", &ids, 20, HANG),
        request_all(&b, "echo", &ids, 20, HANG),
        request_all(&c, "echo", &ids, 20, HANG),
    );
    for (who, r) in [("a after the join", &ra2), ("b after the join", &rb2), ("c after the join", &rc2)] {
        assert_clean(who, r);
    }

    assert_eq!(activations.started(), 2 * GRAINS, "no grain was activated twice");
    for id in ids.iter() {
        for r in [&ra, &rb, &rc, &ra2, &rb2, &rc2] {
            assert_eq!(r.last[id].address, home[id], "{id} stayed on its member");
        }
        // One activation saw all 1 + 6 requests.
        let top = [&ra2, &rb2, &rc2].iter().map(|r| r.last[id].count).max();
        assert_eq!(top, Some(7), "{id} answered every request from one activation");
    }

    // Ownership moved: c holds directory entries for grains it does not host,
    // and every identity has exactly one owner.
    let mut owned = 0;
    let mut c_owned = 0;
    for (i, m) in [&a, &b, &c].into_iter().enumerate() {
        let s = partition_stats(m).await;
        assert!(!s.rebalancing, "member {i} finished rebalancing");
        owned += s.owned;
        if i == 2 {
            let fresh_on_c = fc.last.values().filter(|p| p.address == *c.address()).count();
            assert_eq!(s.hosted, fresh_on_c, "the newcomer hosts only fresh grains it activated");
            c_owned = s.owned;
        }
    }
    assert!(c_owned > 0, "the newcomer owns part of the directory");
    assert_eq!(owned, 2 * GRAINS, "every identity is owned exactly once");
    shutdown_all([a, b, c]).await;
}
