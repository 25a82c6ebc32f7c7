//! [`TestCluster`]: three members and a client sharing one in-memory agent,
//! each node counting the identity lookups it makes.

use std::collections::BTreeSet;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::future::BoxFuture;
use protoactor_actor::Pid;
use protoactor_cluster::{Cluster, ClusterConfig, ClusterHandle, ClusterIdentity, Error, IdentityLookup, InMemoryAgent, Kind};
use protoactor_identity_lookup_partition::PartitionIdentityLookup;

use crate::{start_client, start_member, test_config_with_lookup, test_lookup, wait_until};

/// The test lookup, counting calls to `get`: the one observable that tells a
/// request served from the pid cache from one that asked the owner.
pub struct CountingLookup {
    inner: PartitionIdentityLookup,
    gets: Arc<AtomicUsize>,
}

impl fmt::Debug for CountingLookup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CountingLookup").field("gets", &self.gets.load(Ordering::SeqCst)).finish()
    }
}

impl CountingLookup {
    /// Wraps [`test_lookup`]; the counter is shared with the caller.
    pub fn new(gets: Arc<AtomicUsize>) -> Self {
        CountingLookup { inner: test_lookup(), gets }
    }
}

impl IdentityLookup for CountingLookup {
    fn setup<'a>(
        &'a self,
        cluster: &'a ClusterHandle,
        kinds: &'a [String],
        is_client: bool,
    ) -> BoxFuture<'a, Result<(), Error>> {
        self.inner.setup(cluster, kinds, is_client)
    }

    fn get<'a>(&'a self, identity: &'a ClusterIdentity) -> BoxFuture<'a, Result<Option<Pid>, Error>> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        self.inner.get(identity)
    }

    fn remove_pid<'a>(&'a self, identity: &'a ClusterIdentity, pid: &'a Pid) -> BoxFuture<'a, Result<(), Error>> {
        self.inner.remove_pid(identity, pid)
    }

    fn shutdown(&self) -> BoxFuture<'_, Result<(), Error>> {
        self.inner.shutdown()
    }
}

/// A started member or client and its lookup counter. Derefs to [`Cluster`].
#[derive(Debug)]
pub struct Node {
    cluster: Cluster,
    gets: Arc<AtomicUsize>,
}

impl Node {
    /// Identity lookups this node has made so far.
    pub fn lookups(&self) -> usize {
        self.gets.load(Ordering::SeqCst)
    }

    /// The cluster handle.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }
}

impl Deref for Node {
    type Target = Cluster;
    fn deref(&self) -> &Cluster {
        &self.cluster
    }
}

type Configure = Arc<dyn Fn(ClusterConfig) -> ClusterConfig + Send + Sync>;

/// Members and a client on one [`InMemoryAgent`].
pub struct TestCluster {
    /// The shared registry.
    pub agent: InMemoryAgent,
    /// Running members, in start order.
    pub members: Vec<Node>,
    /// A client (hosts nothing).
    pub client: Node,
    kinds: Vec<Kind>,
    configure: Configure,
}

impl fmt::Debug for TestCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestCluster").field("members", &self.members).field("client", &self.client).finish()
    }
}

impl TestCluster {
    /// Three members hosting `kinds` and a client, all seeing the three members.
    pub async fn start(kinds: &[Kind]) -> Self {
        Self::start_with(kinds, |c| c).await
    }

    /// [`start`](Self::start), with `configure` applied to every node's
    /// [`test_config`](crate::test_config).
    pub async fn start_with(
        kinds: &[Kind],
        configure: impl Fn(ClusterConfig) -> ClusterConfig + Send + Sync + 'static,
    ) -> Self {
        let agent = InMemoryAgent::new();
        let configure: Configure = Arc::new(configure);
        let mut members = Vec::new();
        for _ in 0..3 {
            members.push(start_node(&agent, kinds, &configure, false).await);
        }
        let client = start_node(&agent, kinds, &configure, true).await;
        let tc = TestCluster { agent, members, client, kinds: kinds.to_vec(), configure };
        assert!(tc.wait_topology().await, "every node sees the three members");
        tc
    }

    /// Starts one more member; returns its index in `members`.
    pub async fn add_member(&mut self) -> usize {
        let node = start_node(&self.agent, &self.kinds, &self.configure, false).await;
        self.members.push(node);
        self.members.len() - 1
    }

    /// Stops member `index` abruptly (no passivation, no deregistration, as a
    /// crash) and removes it from the agent, as a registry noticing the
    /// death would. Returns its id and address.
    pub async fn kill_member(&mut self, index: usize) -> (String, String) {
        let node = self.members.remove(index);
        let (id, address) = (node.id().to_string(), node.address().to_string());
        tokio::time::timeout(Duration::from_secs(15), node.shutdown(false)).await.expect("abrupt shutdown in time");
        self.agent.deregister(&id);
        (id, address)
    }

    /// Members, then the client.
    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.members.iter().chain(std::iter::once(&self.client))
    }

    /// The member whose address is `address`.
    pub fn member_at(&self, address: &str) -> Option<&Node> {
        self.members.iter().find(|m| &*m.address() == address)
    }

    /// Waits (up to 10 s) until every node's topology is exactly `members`.
    pub async fn wait_topology(&self) -> bool {
        let expected: BTreeSet<String> = self.members.iter().map(|m| m.id().to_string()).collect();
        wait_until(Duration::from_secs(10), || {
            self.nodes().all(|n| {
                let seen: BTreeSet<String> = n.member_list().topology().members.iter().map(|m| m.id.clone()).collect();
                seen == expected
            })
        })
        .await
    }

    /// Shuts every node down gracefully: the client, then the members.
    pub async fn shutdown(self) {
        for node in std::iter::once(self.client).chain(self.members) {
            tokio::time::timeout(Duration::from_secs(15), node.shutdown(true)).await.expect("shutdown in time");
        }
    }
}

async fn start_node(agent: &InMemoryAgent, kinds: &[Kind], configure: &Configure, client: bool) -> Node {
    let gets = Arc::new(AtomicUsize::new(0));
    let config = configure(test_config_with_lookup(agent, kinds, CountingLookup::new(gets.clone())));
    let cluster = if client { start_client(config).await } else { start_member(config).await };
    Node { cluster, gets }
}
