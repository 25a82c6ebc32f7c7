//! Killing a member (its actor system stops abruptly: no passivation, no
//! deregistration) loses only the grains it hosted. Once the provider
//! notices, by TTL expiry or by an explicit deregistration, those grains are
//! activated again on the survivors with fresh state, every request to every
//! identity succeeds within the retry window, and the survivors' grains keep
//! their activation and state.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use protoactor_integration_tests::churn::{identities, request_all, sample, shutdown_all};
use protoactor_integration_tests::*;
use tokio::time::Instant;

const GRAINS: usize = 60;
/// A request may retry for up to the configured 20 s deadline; a hang is longer.
const HANG: Duration = Duration::from_secs(25);

async fn kill_a_member(deregister: bool) {
    let EchoMembers { agent, activations, members: [a, b, c] } = echo_members().await;

    // Activate every grain, then touch it again: count 2 everywhere.
    let ids = identities("grain", GRAINS);
    for _ in 0..2 {
        let r = request_all(&a, "echo", &ids, 20, HANG).await;
        assert!(r.errors.is_empty() && r.hung.is_empty(), "warm-up: {:?} {:?}", sample(&r.errors), r.hung);
    }
    let r = request_all(&a, "echo", &ids, 20, HANG).await;
    assert!(r.errors.is_empty() && r.hung.is_empty(), "warm-up: {:?} {:?}", sample(&r.errors), r.hung);
    assert!(r.last.values().all(|p| p.count == 3), "one activation per grain before the kill");
    assert_eq!(activations.started(), GRAINS);
    let before: HashMap<String, String> = r.last.iter().map(|(k, p)| (k.clone(), p.address.clone())).collect();

    let victim = c.address().to_string();
    let on_victim: HashSet<String> = before.iter().filter(|(_, a)| **a == victim).map(|(k, _)| k.clone()).collect();
    assert!(!on_victim.is_empty() && on_victim.len() < GRAINS, "grains spread over the members");

    let victim_id = c.id().to_string();
    let killed = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), c.shutdown(false)).await.expect("abrupt stop in time");
    if deregister {
        agent.deregister(&victim_id);
    }

    // Right away, from both survivors at once: every request must come back Ok.
    let (from_a, from_b) =
        tokio::join!(request_all(&a, "echo", &ids, 30, HANG), request_all(&b, "echo", &ids, 30, HANG));
    let recovered = killed.elapsed();
    for (who, r) in [("a", &from_a), ("b", &from_b)] {
        assert!(r.hung.is_empty(), "requests from {who} hung: {}", sample(&r.hung));
        assert!(r.errors.is_empty(), "requests from {who} failed after the kill: {}", sample(&r.errors));
        assert_eq!(r.last.len(), GRAINS, "every identity answered {who}");
    }
    tracing::info!(?recovered, on_victim = on_victim.len(), "every identity answered after the kill");

    let survivors = [a.address().to_string(), b.address().to_string()];
    for id in ids.iter() {
        let (pa, pb) = (&from_a.last[id], &from_b.last[id]);
        assert_eq!(pa.address, pb.address, "{id}: both survivors reach the same activation");
        let first = pa.count.min(pb.count);
        if on_victim.contains(id) {
            assert!(survivors.contains(&pa.address), "{id} moved off the dead member (now {})", pa.address);
            assert_eq!(first, 1, "{id} was activated again with fresh state");
        } else {
            assert_eq!(pa.address, before[id], "{id} stayed where it was");
            assert_eq!(first, 4, "{id} kept its activation and state");
        }
    }
    assert!(a.member_list().topology().member(&victim_id).is_none(), "the dead member left a's topology");
    assert!(b.member_list().is_blocked(&victim_id), "the dead member is blocked");
    assert_eq!(
        activations.started(),
        GRAINS + on_victim.len(),
        "exactly the dead member's grains were activated again, once each"
    );
    shutdown_all([a, b]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_member_expires_and_its_grains_move() {
    kill_a_member(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_member_deregistered_and_its_grains_move() {
    kill_a_member(true).await;
}
