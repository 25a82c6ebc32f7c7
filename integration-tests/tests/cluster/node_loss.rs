//! Losing a member (ports of .NET `HandlesLosingANode` and
//! `HandlesLosingANodeWhileProcessing`): a member dies abruptly and is
//! replaced; every grain answers again, each from exactly one activation,
//! and requests in flight meanwhile do not fail.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use protoactor_cluster::Cluster;
use protoactor_integration_tests::*;

/// Asks every node for every id; returns id -> the one address that answered
/// (asserting all nodes agree).
async fn hosts_seen_from_all(tc: &TestCluster, ids: &[String]) -> BTreeMap<String, String> {
    let mut hosts = BTreeMap::new();
    for node in tc.nodes() {
        for id in ids {
            let pong: Pong = node
                .request(id, "echo", Ping { message: id.clone() })
                .await
                .unwrap_or_else(|e| panic!("{id} from {}: {e}", node.id()));
            assert_eq!((pong.identity.as_str(), pong.message.as_str()), (id.as_str(), id.as_str()));
            let host = hosts.entry(id.clone()).or_insert_with(|| pong.address.clone());
            assert_eq!(*host, pong.address, "{id}: every node reaches the same activation");
        }
    }
    hosts
}

/// Ten ids answered from all nodes; the member hosting the first one dies
/// abruptly (`shutdown(false)`, deregistered) and a new member joins. All
/// ids answer again from all nodes, one activation each: the dead member's
/// grains are activated again once, the others keep their activation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handles_losing_a_node() {
    init_tracing();
    let activations = Arc::new(Activations::default());
    let mut tc = TestCluster::start(&[echo_kind("echo", &activations)]).await;
    let ids: Vec<String> = (0..10).map(|i| format!("lose-{i}")).collect();
    let before = hosts_seen_from_all(&tc, &ids).await;
    assert_eq!(activations.started(), 10);

    let victim = tc.members.iter().position(|m| *m.address() == before[&ids[0]]).expect("host of lose-0");
    let (victim_id, victim_address) = tc.kill_member(victim).await;
    let lost = before.values().filter(|a| **a == victim_address).count();
    assert!(lost >= 1);
    tc.add_member().await;
    assert!(tc.wait_topology().await, "every node sees the two survivors and the newcomer");
    assert!(tc.nodes().all(|n| n.member_list().topology().member(&victim_id).is_none()));

    let after = hosts_seen_from_all(&tc, &ids).await;
    for id in &ids {
        assert_ne!(after[id], victim_address, "{id} does not live on the dead member");
        if before[id] != victim_address {
            assert_eq!(after[id], before[id], "{id} kept its activation on a surviving member");
        }
    }
    assert_eq!(activations.started(), 10 + lost, "exactly the lost grains were activated again, once each");
    tc.shutdown().await;
}

/// Two members keep requesting twenty ids (two loops each) while the member
/// hosting one of them dies abruptly and a new member joins; loops go on
/// until each has made progress on the new topology. No request fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handles_losing_a_node_while_processing() {
    init_tracing();
    let activations = Arc::new(Activations::default());
    let mut tc = TestCluster::start(&[echo_kind("echo", &activations)]).await;
    let ids: Arc<Vec<String>> = Arc::new((0..20).map(|i| format!("busy-{i}")).collect());
    let mut hosts = BTreeMap::new();
    for id in ids.iter() {
        let pong: Pong = tc.client.request(id, "echo", Ping::default()).await.expect("warm-up");
        hosts.insert(id.clone(), pong.address);
    }
    let victim = tc.members.iter().position(|m| *m.address() == hosts[&ids[0]]).expect("host of busy-0");
    let callers: Vec<Cluster> =
        tc.members.iter().enumerate().filter(|(i, _)| *i != victim).map(|(_, m)| m.cluster().clone()).collect();
    assert_eq!(callers.len(), 2);

    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut loops = Vec::new();
    for (n, caller) in callers.iter().flat_map(|c| [c.clone(), c.clone()]).enumerate() {
        let (ids, stop, done, failures) = (ids.clone(), stop.clone(), done.clone(), failures.clone());
        loops.push(tokio::spawn(async move {
            let mut i = n;
            while !stop.load(Ordering::SeqCst) {
                let id = &ids[i % ids.len()];
                match caller.request::<Pong, _>(id, "echo", Ping { message: format!("{n}:{i}") }).await {
                    Ok(p) if p.identity == *id && p.message == format!("{n}:{i}") => {}
                    Ok(p) => failures.lock().push(format!("{id}: wrong pong {p:?}")),
                    Err(e) => failures.lock().push(format!("{id} from {}: {e}", caller.id())),
                }
                done.fetch_add(1, Ordering::SeqCst);
                i += 1;
            }
        }));
    }
    assert!(wait_until(Duration::from_secs(10), || done.load(Ordering::SeqCst) >= 40).await, "loops are running");

    let (_, victim_address) = tc.kill_member(victim).await;
    tc.add_member().await;
    assert!(tc.wait_topology().await, "every node sees the new topology");
    let mark = done.load(Ordering::SeqCst);
    assert!(
        wait_until(Duration::from_secs(30), || done.load(Ordering::SeqCst) >= mark + 200).await,
        "loops keep making progress after the change"
    );
    stop.store(true, Ordering::SeqCst);
    for l in loops {
        tokio::time::timeout(Duration::from_secs(25), l).await.expect("loop ends").expect("loop task");
    }
    let failures = failures.lock().clone();
    assert!(
        failures.is_empty(),
        "{} of {} requests failed: {failures:#?}",
        failures.len(),
        done.load(Ordering::SeqCst)
    );
    let newcomer = tc.members.last().expect("the new member");
    for id in ids.iter() {
        let pong: Pong = newcomer.request(id, "echo", Ping::default()).await.expect("pong from newcomer");
        assert_ne!(pong.address, victim_address, "{id} was activated again elsewhere");
    }
    tc.shutdown().await;
}
