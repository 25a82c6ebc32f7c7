//! Fixtures for the multi-member cluster tests: members and clients in one
//! process sharing an in-memory provider, an echo grain that reports where
//! it lives, and poll-with-deadline helpers.
//!
//! ```no_run
//! use std::sync::Arc;
//! use protoactor_integration_tests::{Activations, Ping, Pong, TestCluster, echo_kind};
//!
//! # async fn demo() -> Result<(), protoactor_cluster::Error> {
//! let activations = Arc::new(Activations::default());
//! let cluster = TestCluster::start(&[echo_kind("echo", &activations)]).await;
//! let pong: Pong = cluster.client.cluster().request("e-1", "echo", Ping { message: "hi".into() }).await?;
//! assert_eq!(pong.identity, "e-1");
//! cluster.shutdown().await;
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

mod harness;
mod ordering;
pub mod peer_protocol;

pub use harness::{CountingLookup, Node, TestCluster};
pub use ordering::{AggregatorStats, GetStats, SendTo, SendToResult, Seq, aggregator_kind, spawn_sender};
pub use protoactor_testkit::cluster::{init_tracing, start_client, start_member, wait_until};

use protoactor_actor::prelude::*;
use protoactor_cluster::{Cluster, ClusterConfig, GrainContext, InMemoryAgent, InMemoryProvider, Kind};
use protoactor_identity_lookup_partition::{PartitionConfig, PartitionIdentityLookup};

/// Asks an echo grain to answer with [`Pong`].
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Ping {
    /// Echoed back.
    #[prost(string, tag = "1")]
    pub message: String,
}
impl ::prost::Name for Ping {
    const NAME: &'static str = "Ping";
    const PACKAGE: &'static str = "tests";
    fn full_name() -> String {
        "tests.Ping".into()
    }
}

/// The echo grain's answer: the message, and who answered from where.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Pong {
    /// The ping's message.
    #[prost(string, tag = "1")]
    pub message: String,
    /// The grain's identity.
    #[prost(string, tag = "2")]
    pub identity: String,
    /// The grain's kind.
    #[prost(string, tag = "3")]
    pub kind: String,
    /// The member address it lives on.
    #[prost(string, tag = "4")]
    pub address: String,
    /// Messages this activation has handled (fresh state starts at 1).
    #[prost(uint64, tag = "5")]
    pub count: u64,
}
impl ::prost::Name for Pong {
    const NAME: &'static str = "Pong";
    const PACKAGE: &'static str = "tests";
    fn full_name() -> String {
        "tests.Pong".into()
    }
}

/// Implements `prost::Name` for a test message in package `tests`.
macro_rules! test_message_name {
    ($t:ident) => {
        impl ::prost::Name for $t {
            const NAME: &'static str = stringify!($t);
            const PACKAGE: &'static str = "tests";
            fn full_name() -> String {
                concat!("tests.", stringify!($t)).into()
            }
        }
    };
}
pub(crate) use test_message_name;

/// Asks an echo grain for a [`Pong`] that it sends only after `delay_ms`;
/// the grain keeps handling other messages meanwhile.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct SlowPing {
    /// Echoed back.
    #[prost(string, tag = "1")]
    pub message: String,
    /// How long the grain waits before answering.
    #[prost(uint64, tag = "2")]
    pub delay_ms: u64,
}
test_message_name!(SlowPing);

/// Asks an echo grain to answer [`Ack`] and then stop.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Die {}
test_message_name!(Die);

/// An empty acknowledgement.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Ack {}
test_message_name!(Ack);

/// Counts activations of the echo kinds across the whole process.
#[derive(Debug, Default)]
pub struct Activations {
    started: AtomicUsize,
    stopped: AtomicUsize,
}

impl Activations {
    /// Activations started so far.
    pub fn started(&self) -> usize {
        self.started.load(Ordering::SeqCst)
    }
    /// Activations stopped so far.
    pub fn stopped(&self) -> usize {
        self.stopped.load(Ordering::SeqCst)
    }
    pub(crate) fn record_started(&self) {
        self.started.fetch_add(1, Ordering::SeqCst);
    }
    pub(crate) fn record_stopped(&self) {
        self.stopped.fetch_add(1, Ordering::SeqCst);
    }
}

struct Echo {
    count: u64,
    activations: Arc<Activations>,
}

impl Echo {
    fn pong(&mut self, ctx: &Context, message: String) -> Pong {
        self.count += 1;
        let (identity, kind) = ctx.cluster_identity().map(|i| (i.identity.clone(), i.kind.clone())).unwrap_or_default();
        Pong { message, identity, kind, address: ctx.system().address().to_string(), count: self.count }
    }
}

impl Actor for Echo {
    async fn receive(&mut self, ctx: &mut Context) -> ActorResult {
        if ctx.message_is::<Started>() {
            self.activations.record_started();
        } else if ctx.message_is::<Stopped>() {
            self.activations.record_stopped();
        } else if let Some(ping) = ctx.message::<Ping>() {
            let pong = self.pong(ctx, ping.message.clone());
            ctx.respond(pong);
        } else if let Some(slow) = ctx.message::<SlowPing>() {
            let pong = self.pong(ctx, slow.message.clone());
            let delay = tokio::time::sleep(Duration::from_millis(slow.delay_ms));
            ctx.reenter_after(delay, move |_: &mut Echo, ctx, ()| {
                ctx.respond(pong);
                Ok(())
            });
        } else if ctx.message_is::<Die>() {
            ctx.respond(Ack {});
            let me = ctx.self_pid().clone();
            ctx.stop(&me);
        }
        Ok(())
    }
}

/// A kind `name` of echo grains counting into `activations`.
pub fn echo_kind(name: &str, activations: &Arc<Activations>) -> Kind {
    let activations = activations.clone();
    Kind::new(name, Props::from_producer(move || Echo { count: 0, activations: activations.clone() }))
}

/// Lookup settings for tests: short timeouts so failures show quickly.
pub fn test_lookup() -> PartitionIdentityLookup {
    PartitionIdentityLookup::with_config(PartitionConfig {
        get_pid_timeout: Duration::from_secs(2),
        handover_request_timeout: Duration::from_millis(500),
        rebalance_timeout: Duration::from_secs(5),
        ..Default::default()
    })
}

/// Remoting for tests: localhost, any port, every test message registered.
pub fn test_remote() -> protoactor_remote::RemoteConfig {
    protoactor_remote::RemoteConfig::bind("127.0.0.1", 0)
        .with_protobuf::<Ping>()
        .with_protobuf::<Pong>()
        .with_protobuf::<SlowPing>()
        .with_protobuf::<Die>()
        .with_protobuf::<Ack>()
        .with_protobuf::<Seq>()
        .with_protobuf::<GetStats>()
        .with_protobuf::<AggregatorStats>()
        .with_retries(2, Duration::from_millis(50))
}

/// A cluster configuration for tests on `agent`, hosting `kinds`.
pub fn test_config(agent: &InMemoryAgent, kinds: &[Kind]) -> ClusterConfig {
    test_config_with_lookup(agent, kinds, test_lookup())
}

/// [`test_config`] with another identity lookup (e.g. a [`CountingLookup`]).
pub fn test_config_with_lookup(
    agent: &InMemoryAgent,
    kinds: &[Kind],
    lookup: impl protoactor_cluster::IdentityLookup,
) -> ClusterConfig {
    config_from(InMemoryProvider::new(agent), lookup, kinds)
}

/// The test settings (all test messages, short timeouts, fast gossip) on any
/// provider and lookup.
pub fn config_from(
    provider: impl protoactor_cluster::ClusterProvider,
    lookup: impl protoactor_cluster::IdentityLookup,
    kinds: &[Kind],
) -> ClusterConfig {
    let mut config = ClusterConfig::new("test", provider, lookup)
        .with_remote(test_remote())
        .with_request_timeout(Duration::from_secs(4))
        .with_request_deadline(Duration::from_secs(20))
        .with_gossip_interval(Duration::from_millis(100));
    for k in kinds {
        config = config.with_kind(k.clone());
    }
    config
}

/// The partition lookup's statistics on `member`.
pub async fn partition_stats(member: &Cluster) -> protoactor_identity_lookup_partition::PartitionStatsResponse {
    use protoactor_identity_lookup_partition::{PARTITION_ACTOR, PartitionStats, PartitionStatsResponse};
    let partition = Pid::new(member.address(), PARTITION_ACTOR);
    member
        .system()
        .root()
        .request_future::<PartitionStatsResponse, _>(&partition, PartitionStats, Duration::from_secs(2))
        .await
        .expect("the partition actor answers")
}

/// Three members on one in-memory agent, hosting the echo kind `echo`,
/// started and seeing each other.
#[derive(Debug)]
pub struct EchoMembers {
    /// The shared membership registry.
    pub agent: InMemoryAgent,
    /// Activations of the echo kind, across the three.
    pub activations: Arc<Activations>,
    /// The members.
    pub members: [Cluster; 3],
}

/// Starts [`EchoMembers`] (and the test log).
pub async fn echo_members() -> EchoMembers {
    init_tracing();
    let agent = InMemoryAgent::new();
    let activations = Arc::new(Activations::default());
    let kinds = [echo_kind("echo", &activations)];
    let a = start_member(test_config(&agent, &kinds)).await;
    let b = start_member(test_config(&agent, &kinds)).await;
    let c = start_member(test_config(&agent, &kinds)).await;
    assert!(wait_members(&[&a, &b, &c], 3).await, "members see each other");
    EchoMembers { agent, activations, members: [a, b, c] }
}

/// Waits until every cluster sees exactly `n` members.
pub async fn wait_members(clusters: &[&Cluster], n: usize) -> bool {
    wait_until(Duration::from_secs(10), || clusters.iter().all(|c| c.member_list().topology().members.len() == n)).await
}

pub mod churn;
pub mod member_process;
