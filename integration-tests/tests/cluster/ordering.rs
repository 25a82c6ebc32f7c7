//! Ordered delivery (port of .NET `OrderedDeliveryTests`): messages from one
//! sender to one grain arrive in the order sent, across members.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use protoactor_integration_tests::*;

const SENDERS_PER_NODE: usize = 20;
const MESSAGES: u64 = 10;

/// Twenty plain sender actors on every node (three members and the client)
/// each stream ten numbered fire-and-forget messages to one aggregator grain
/// through the cluster, then ask it how many of theirs arrived: all ten
/// (the question came after them on the same path), zero out of order,
/// exact total, one aggregator activation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_delivery() {
    init_tracing();
    let activations = Arc::new(Activations::default());
    let tc = TestCluster::start(&[aggregator_kind("aggregator", &activations)]).await;
    let mut jobs = Vec::new();
    for (n, node) in tc.nodes().enumerate() {
        for s in 0..SENDERS_PER_NODE {
            let pid = spawn_sender(node, &format!("node{n}-sender{s}"));
            let job = SendTo { aggregator: "agg".into(), kind: "aggregator".into(), count: MESSAGES };
            jobs.push(node.system().root().request_future::<SendToResult, _>(&pid, job, Duration::from_secs(30)));
        }
    }
    let mut names = BTreeSet::new();
    for r in join_all(jobs).await {
        let result = r.expect("sender answers");
        let stats = result.stats.unwrap_or_else(|e| panic!("{} failed: {e}", result.sender));
        assert_eq!(stats.from_sender, MESSAGES, "{}: all its messages arrived before its question", result.sender);
        names.insert(result.sender);
    }
    let senders = tc.nodes().count() * SENDERS_PER_NODE;
    assert_eq!(names.len(), senders);
    let stats: AggregatorStats = tc.members[0].request("agg", "aggregator", GetStats::default()).await.expect("stats");
    assert_eq!(stats.out_of_order, 0, "no message overtook an earlier one from the same sender");
    assert_eq!(stats.total, senders as u64 * MESSAGES, "exact total: nothing lost or duplicated");
    assert_eq!(stats.senders, senders as u64);
    assert_eq!(activations.started(), 1, "one aggregator activation");
    tc.shutdown().await;
}
