//! What `zk-test-member` and the tests that kill it share: the echo kind,
//! its messages (registered under the same JSON names on both sides) and the
//! cluster and provider settings, so both sides form one cluster.

use std::time::Duration;

use protoactor_actor::prelude::*;
use protoactor_cluster::{ClusterConfig, GrainContext, Kind};
use protoactor_cluster_provider_zk::{ZkConfig, ZkProvider};
use protoactor_identity_lookup_partition::PartitionIdentityLookup;
use protoactor_remote::RemoteConfig;
use serde::{Deserialize, Serialize};

/// The session timeout of every member: ZooKeeper expires a killed one's
/// session, and with it its ephemeral znode, about this long after its last ping.
pub(crate) const SESSION: Duration = Duration::from_secs(2);
/// The cluster every member joins.
pub(crate) const CLUSTER: &str = "shop";
/// The kind every member hosts.
pub(crate) const ECHO: &str = "echo";
/// The line the member process prints once it has joined: `ready <member id> <address>`.
pub(crate) const READY: &str = "ready";

/// Asks an echo grain to answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Hello {
    pub(crate) text: String,
}

/// An echo grain's answer: who answered, and from which member.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Echoed {
    pub(crate) text: String,
    pub(crate) identity: String,
    pub(crate) address: String,
}

fn echo_kind() -> Kind {
    Kind::new(
        ECHO,
        Props::from_fn(|ctx| {
            if let Some(hello) = ctx.message::<Hello>() {
                let identity = ctx.cluster_identity().map(|i| i.identity.clone()).unwrap_or_default();
                let reply = Echoed { text: hello.text.clone(), identity, address: ctx.system().address().to_string() };
                ctx.respond(reply);
            }
            Ok(())
        }),
    )
}

/// A member's provider on `connect` (host:port list), with the short [`SESSION`].
pub(crate) fn provider(connect: &str) -> ZkProvider {
    let config = ZkConfig::new(connect)
        .with_root("/process-tests")
        .with_session_timeout(SESSION)
        .with_connect_timeout(Duration::from_secs(5));
    ZkProvider::new(config)
}

/// A member of [`CLUSTER`] hosting the echo kind, with its messages registered.
pub(crate) fn cluster_config(connect: &str) -> ClusterConfig {
    let remote = RemoteConfig::bind("127.0.0.1", 0)
        .with_json::<Hello>("zk_process.Hello")
        .with_json::<Echoed>("zk_process.Echoed");
    ClusterConfig::new(CLUSTER, provider(connect), PartitionIdentityLookup::new())
        .with_remote(remote)
        .with_kind(echo_kind())
        .with_request_timeout(Duration::from_secs(2))
        .with_join_timeout(Duration::from_secs(15))
}
