//! Gossip between real members in one process: each member has its own
//! actor system and remoting on 127.0.0.1, membership comes from a shared
//! in-memory agent.

use std::future::Future;
use std::time::Duration;

use futures_util::future::BoxFuture;
use protoactor_actor::{ActorSystem, Pid};
use protoactor_cluster::gossip::{GOSSIP_ACTOR, GossipUpdate, keys};
use protoactor_cluster::proto::gossip_state::GossipMemberState;
use protoactor_cluster::proto::{
    ClusterIdentity, GossipKeyValue, GossipRequest, GossipResponse, GossipState, MemberHeartbeat,
};
use protoactor_cluster::{
    Cluster, ClusterConfig, ClusterHandle, ClusterProvider, ClusterTopology, Error, IdentityLookup, InMemoryAgent, InMemoryProvider,
    topology_hash,
};
use tokio::time::Instant;

/// The partition lookup is not part of these tests: nothing is ever activated.
struct NoLookup;

impl IdentityLookup for NoLookup {
    fn setup<'a>(&'a self, _: &'a ClusterHandle, _: &'a [String], _: bool) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async { Ok(()) })
    }
    fn get<'a>(&'a self, _: &'a protoactor_cluster::ClusterIdentity) -> BoxFuture<'a, Result<Option<Pid>, Error>> {
        Box::pin(async { Ok(None) })
    }
    fn remove_pid<'a>(
        &'a self,
        _: &'a protoactor_cluster::ClusterIdentity,
        _: &'a Pid,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async { Ok(()) })
    }
    fn shutdown(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async { Ok(()) })
    }
}

/// An in-memory provider that never deregisters, so only gossip can tell
/// the others that a member left.
struct NeverDeregisters(InMemoryProvider);

impl ClusterProvider for NeverDeregisters {
    fn start_member<'a>(&'a self, cluster: &'a ClusterHandle) -> BoxFuture<'a, Result<(), Error>> {
        self.0.start_member(cluster)
    }
    fn start_client<'a>(&'a self, cluster: &'a ClusterHandle) -> BoxFuture<'a, Result<(), Error>> {
        self.0.start_client(cluster)
    }
    fn shutdown(&self, _graceful: bool) -> BoxFuture<'_, Result<(), Error>> {
        self.0.shutdown(false)
    }
}

const DEADLINE: Duration = Duration::from_secs(15);

fn config(provider: impl ClusterProvider, heartbeat_expiration: Option<Duration>) -> ClusterConfig {
    ClusterConfig::new("gossip-test", provider, NoLookup)
        .with_gossip_interval(Duration::from_millis(100))
        .with_gossip_request_timeout(Duration::from_millis(500))
        .with_heartbeat_expiration(heartbeat_expiration)
}

async fn start(config: ClusterConfig) -> Cluster {
    let system = ActorSystem::new();
    let cluster = Cluster::new(&system, config).expect("valid config");
    cluster.start_member().await.expect("member starts");
    cluster
}

/// Three members on `agent`, with heartbeat expiry as given.
async fn three(agent: &InMemoryAgent, heartbeat_expiration: Option<Duration>) -> Vec<Cluster> {
    let mut members = Vec::new();
    for _ in 0..3 {
        members.push(start(config(InMemoryProvider::new(agent), heartbeat_expiration)).await);
    }
    members
}

/// Polls `check` until it holds or `DEADLINE` passes.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !check() {
        assert!(Instant::now() < deadline, "timed out after {DEADLINE:?} waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Async form of [`eventually`].
async fn eventually_async<F: Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    let deadline = Instant::now() + DEADLINE;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out after {DEADLINE:?} waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until every member sees all of `members` and agrees on that topology by gossip.
async fn wait_for_consensus(members: &[Cluster]) {
    let expected = topology_hash(members.iter().map(|c| c.id()));
    for c in members {
        eventually_async("every member reports the same topology", || async {
            c.gossip().topology_consensus(Duration::from_millis(200)).await == Some(expected)
        })
        .await;
    }
}

async fn shutdown_all(members: Vec<Cluster>) {
    for c in members {
        c.shutdown(false).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topology_consensus_is_reached_on_all_members() {
    let agent = InMemoryAgent::new();
    let members = three(&agent, None).await;
    let expected = topology_hash(members.iter().map(|c| c.id()));
    for c in &members {
        eventually("the member list has all three", || c.member_list().topology_hash() == expected).await;
    }
    for c in &members {
        let agreed = c.gossip().topology_consensus(DEADLINE).await;
        assert_eq!(agreed, Some(expected), "member {} agrees on the three-member topology", c.id());
        // The consensus rests on every member's own topology entry, replicated here.
        let topologies = c.gossip().get_state::<ClusterTopology>(keys::TOPOLOGY);
        assert_eq!(topologies.len(), 3);
        assert!(topologies.values().all(|t| t.topology_hash == expected && t.members.len() == 3));
    }
    // Heartbeats (with the activation counts) travel too.
    for c in &members {
        eventually("every member has everyone's heartbeat", || {
            c.gossip().get_state::<MemberHeartbeat>(keys::HEARTBEAT).len() == 3
        })
        .await;
    }
    shutdown_all(members).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_is_replicated_across_cluster() {
    let agent = InMemoryAgent::new();
    let members = three(&agent, None).await;
    let (a, b, c) = (&members[0], &members[1], &members[2]);
    let (_sub, mut updates) = b.system().event_stream().subscribe_channel::<GossipUpdate>();

    let value = ClusterIdentity { identity: "hello".into(), kind: "from-a".into() };
    a.gossip().set_state("test:custom", &value);
    for other in [b, c] {
        eventually("the custom key set on A is visible", || {
            other.gossip().get_state::<ClusterIdentity>("test:custom").get(a.id()) == Some(&value)
        })
        .await;
    }
    // B published the accepted entry as an event.
    let event = tokio::time::timeout(DEADLINE, async {
        loop {
            let update = updates.recv().await.expect("subscription open");
            if update.key == "test:custom" {
                return update;
            }
        }
    })
    .await
    .expect("a GossipUpdate for the custom key");
    assert_eq!(event.member_id, a.id());
    assert_eq!(event.value.to_msg::<ClusterIdentity>().expect("decodes"), value);

    // A later write replaces the value everywhere.
    let newer = ClusterIdentity { identity: "again".into(), kind: "from-a".into() };
    a.gossip().set_state("test:custom", &newer);
    for other in [b, c] {
        eventually("the newer value replaces the old one", || {
            other.gossip().get_state::<ClusterIdentity>("test:custom").get(a.id()) == Some(&newer)
        })
        .await;
    }
    shutdown_all(members).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_consensus_is_reached_lost_and_regained() {
    let agent = InMemoryAgent::new();
    let members = three(&agent, None).await;
    wait_for_consensus(&members).await;
    let checks: Vec<_> = members
        .iter()
        .map(|c| c.gossip().register_consensus_check("test:vote", |v: &ClusterIdentity| v.identity.clone()))
        .collect();
    let vote = |text: &str| ClusterIdentity { identity: text.into(), kind: "vote".into() };

    members[0].gossip().set_state("test:vote", &vote("x"));
    members[1].gossip().set_state("test:vote", &vote("x"));
    // Not everyone voted: no consensus (a short window to show it is not reached).
    assert_eq!(checks[0].wait(Duration::from_millis(300)).await, None);

    members[2].gossip().set_state("test:vote", &vote("x"));
    for check in &checks {
        assert_eq!(check.wait(DEADLINE).await.as_deref(), Some("x"));
    }

    // One member changes its mind: consensus is lost everywhere.
    members[1].gossip().set_state("test:vote", &vote("y"));
    for check in &checks {
        eventually("consensus is lost", || check.current().is_none()).await;
    }
    members[0].gossip().set_state("test:vote", &vote("y"));
    members[2].gossip().set_state("test:vote", &vote("y"));
    for check in &checks {
        assert_eq!(check.wait(DEADLINE).await.as_deref(), Some("y"));
    }
    shutdown_all(members).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_whose_gossip_stops_is_blocked_by_heartbeat_expiry() {
    // The registry keeps the dead member for a minute: only gossip can notice.
    let agent = InMemoryAgent::with_ttl(Duration::from_secs(60));
    let mut members = three(&agent, Some(Duration::from_millis(1500))).await;
    wait_for_consensus(&members).await;
    // Heartbeats flow: nobody healthy is blocked, even past the expiration.
    eventually("everyone has everyone's heartbeat", || {
        members.iter().all(|c| c.gossip().get_state::<MemberHeartbeat>(keys::HEARTBEAT).len() == 3)
    })
    .await;

    let dead = members.pop().expect("three members");
    let dead_id = dead.id().to_string();
    dead.shutdown(false).await;

    for c in &members {
        eventually("the silent member is blocked and leaves the topology", || {
            c.member_list().is_blocked(&dead_id) && !c.member_list().contains(&dead_id)
        })
        .await;
    }
    assert!(agent.members().iter().any(|m| m.id == dead_id), "the provider still lists it: gossip found it");
    for c in &members {
        assert!(!c.member_list().blocked().iter().any(|id| members.iter().any(|m| m.id() == id)));
        assert_eq!(c.member_list().members().len(), 2);
    }
    wait_for_consensus(&members).await;
    // Its gossip state is forgotten once it is out of the topology.
    for c in &members {
        eventually("the dead member's state is purged", || {
            !c.gossip().get_state::<MemberHeartbeat>(keys::HEARTBEAT).contains_key(&dead_id)
        })
        .await;
    }
    shutdown_all(members).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_leave_sets_left_and_the_others_block_the_member() {
    // No heartbeat expiry and no deregistration: only the LEFT key can do it.
    let agent = InMemoryAgent::with_ttl(Duration::from_secs(60));
    let mut members = Vec::new();
    for _ in 0..3 {
        members.push(start(config(NeverDeregisters(InMemoryProvider::new(&agent)), None)).await);
    }
    wait_for_consensus(&members).await;
    let (_sub, mut updates) = members[0].system().event_stream().subscribe_channel::<GossipUpdate>();

    let leaving = members.pop().expect("three members");
    let leaving_id = leaving.id().to_string();
    leaving.shutdown(true).await;

    for c in &members {
        eventually("the member that left is blocked and leaves the topology", || {
            c.member_list().is_blocked(&leaving_id) && !c.member_list().contains(&leaving_id)
        })
        .await;
    }
    assert!(agent.members().iter().any(|m| m.id == leaving_id), "still registered: gossip did it");
    let left = tokio::time::timeout(DEADLINE, async {
        loop {
            let update = updates.recv().await.expect("subscription open");
            if update.key == keys::LEFT {
                return update;
            }
        }
    })
    .await
    .expect("the LEFT key arrived by gossip");
    assert_eq!(left.member_id, leaving_id);
    wait_for_consensus(&members).await;
    shutdown_all(members).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gossip_from_non_members_is_rejected_and_not_merged() {
    let agent = InMemoryAgent::new();
    let members = three(&agent, None).await;
    wait_for_consensus(&members).await;
    let a = &members[0];
    let gossip = Pid::new(a.address(), GOSSIP_ACTOR);

    // A request from `from` carrying an entry of `from` under "test:forged".
    let forged = |from: &str| {
        let value = ClusterIdentity { identity: "forged".into(), kind: "test".into() };
        let entry = GossipKeyValue {
            sequence_number: 1_000,
            value: Some(prost_types::Any::from_msg(&value).expect("encodes")),
            local_timestamp_unix_milliseconds: 0,
        };
        let mut member = GossipMemberState::default();
        member.values.insert("test:forged".into(), entry);
        let mut state = GossipState::default();
        state.members.insert(from.into(), member);
        GossipRequest { state: Some(state), member_id: from.into(), request_id: "test".into() }
    };
    let reply: GossipResponse = a
        .system()
        .root()
        .request_future(&gossip, forged("stranger"), Duration::from_secs(5))
        .await
        .expect("the gossip actor answers");
    assert!(reply.rejected, "a member id outside the topology is refused");
    assert!(a.gossip().get_state::<ClusterIdentity>("test:forged").is_empty(), "and nothing is merged");

    let member_id = members[1].id().to_string();
    let reply: GossipResponse = a
        .system()
        .root()
        .request_future(&gossip, forged(&member_id), Duration::from_secs(5))
        .await
        .expect("the gossip actor answers");
    assert!(!reply.rejected, "a member is accepted");
    assert!(a.gossip().get_state::<ClusterIdentity>("test:forged").contains_key(&member_id));
    shutdown_all(members).await;
}
