//! A handover larger than one chunk: with 7 activations per chunk, a member
//! joining a cluster of 200 grains receives its share of the directory in
//! many chunks from each member, and ends up owning it all: no identity is
//! lost (re-activated) or owned twice.

use std::sync::Arc;
use std::time::Duration;

use protoactor_cluster::InMemoryAgent;
use protoactor_identity_lookup_partition::{PartitionConfig, PartitionIdentityLookup};
use protoactor_integration_tests::churn::{identities, request_all, sample, shutdown_all};
use protoactor_integration_tests::*;

const GRAINS: usize = 200;
const CHUNK: usize = 7;

fn chunked_lookup() -> PartitionIdentityLookup {
    PartitionIdentityLookup::with_config(PartitionConfig {
        handover_chunk_size: CHUNK,
        get_pid_timeout: Duration::from_secs(2),
        handover_request_timeout: Duration::from_millis(500),
        ..Default::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_chunk_handover_moves_every_entry_once() {
    init_tracing();
    let agent = InMemoryAgent::new();
    let activations = Arc::new(Activations::default());
    let kinds = [echo_kind("echo", &activations)];
    let a = start_member(test_config_with_lookup(&agent, &kinds, chunked_lookup())).await;
    let b = start_member(test_config_with_lookup(&agent, &kinds, chunked_lookup())).await;
    assert!(wait_members(&[&a, &b], 2).await);
    let ids = identities("chunked", GRAINS);
    let first = request_all(&a, "echo", &ids, 20, Duration::from_secs(25)).await;
    assert!(first.errors.is_empty() && first.hung.is_empty(), "activation: {}", sample(&first.errors));
    assert_eq!(activations.started(), GRAINS);

    let c = start_member(test_config_with_lookup(&agent, &kinds, chunked_lookup())).await;
    assert!(wait_members(&[&a, &b, &c], 3).await);
    let after = request_all(&c, "echo", &ids, 20, Duration::from_secs(25)).await;
    assert!(after.errors.is_empty() && after.hung.is_empty(), "after the join: {}", sample(&after.errors));
    assert_eq!(activations.started(), GRAINS, "no grain was activated again: the handover carried every entry");

    // Every identity owned exactly once, and the newcomer's share needed
    // several chunks from the others (it hosts none of these grains).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let (sa, sb, sc) = loop {
        let s = (partition_stats(&a).await, partition_stats(&b).await, partition_stats(&c).await);
        if !(s.0.rebalancing || s.1.rebalancing || s.2.rebalancing) || tokio::time::Instant::now() >= deadline {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(!sa.rebalancing && !sb.rebalancing && !sc.rebalancing, "{sa:?} {sb:?} {sc:?}");
    assert_eq!(sa.owned + sb.owned + sc.owned, GRAINS, "{sa:?} {sb:?} {sc:?}");
    assert_eq!(sc.hosted, 0);
    assert!(sc.owned > 2 * CHUNK, "the newcomer's share ({}) spans several chunks", sc.owned);
    shutdown_all(vec![a, b, c]).await;
}
