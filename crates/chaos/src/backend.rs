//! What the cluster runs on: provider, identity lookup, persistence. Each
//! is a `clap::ValueEnum`; a new one is a variant plus one match arm in
//! [`cluster_config`].

use std::time::Duration;

use clap::ValueEnum;
use std::sync::Arc;

use protoactor_cluster::{ClusterConfig, IdentityLookup};
use protoactor_cluster_provider_automanaged::{AutomanagedConfig, AutomanagedProvider};
use protoactor_cluster_provider_etcd::{EtcdConfig, EtcdProvider};
use protoactor_cluster_provider_zk::{ZkConfig, ZkProvider};
use protoactor_identity_lookup_mongo::MongoIdentityLookup;
use protoactor_identity_lookup_partition::PartitionIdentityLookup;
use protoactor_identity_lookup_redis::RedisIdentityLookup;
use protoactor_remote::RemoteConfig;

use crate::proto::{CountReply, Increment};

/// The cluster every process of a run joins.
pub(crate) const CLUSTER: &str = "chaos";
/// The grain kind the members host.
pub(crate) const KIND: &str = "counter";

/// Membership provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// Members poll each other's HTTP health endpoint (no server needed).
    Automanaged,
    /// Membership in etcd (a server started for the run).
    Etcd,
    /// Membership in ZooKeeper (a server started for the run).
    Zookeeper,
}

/// Identity lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LookupKind {
    /// Partition by rendezvous hashing (no storage; duplicates possible while
    /// the topology is in flux).
    Partition,
    /// Activations stored in Redis (a server started for the run, or `--lookup-url`).
    Redis,
    /// Activations stored in MongoDB (the testkit's stand-in started for the
    /// run, or `--lookup-url`).
    Mongo,
}

impl LookupKind {
    /// True if the lookup keeps activations in a store, so a grain is never
    /// live twice, faults included.
    pub fn has_store(self) -> bool {
        self != LookupKind::Partition
    }
}

/// Where counter grains keep their counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PersistKind {
    /// In memory: a re-activated grain starts again at 0.
    None,
    /// Event-sourced in one SQLite file shared by the member processes.
    Sqlite,
    /// Event-sourced in PostgreSQL (a server started for the run, or the
    /// one `PROTOACTOR_CHAOS_POSTGRES` names as a connection string).
    Postgres,
}

/// Poll every 500 ms, a member is dead after 4 missed polls.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// Missed polls before a member leaves the topology.
pub(crate) const MISSED_POLLS: u32 = 4;

/// etcd lease TTL of a member.
const ETCD_TTL: Duration = Duration::from_secs(3);
/// ZooKeeper session timeout of a member.
const ZK_SESSION: Duration = Duration::from_secs(4);

/// How long a silent member stays in the topology (the failure-detection window).
pub(crate) fn detection_window(provider: ProviderKind) -> Duration {
    match provider {
        ProviderKind::Automanaged => POLL_INTERVAL * MISSED_POLLS,
        ProviderKind::Etcd => ETCD_TTL,
        ProviderKind::Zookeeper => ZK_SESSION,
    }
}

/// The identity lookup of every process of a run; `url` is its server
/// (Redis, MongoDB).
fn identity_lookup(lookup: LookupKind, url: &str) -> Result<Arc<dyn IdentityLookup>, crate::Error> {
    Ok(match lookup {
        LookupKind::Partition => Arc::new(PartitionIdentityLookup::new()),
        LookupKind::Redis => Arc::new(
            RedisIdentityLookup::new(url)
                .map_err(|e| crate::Error::Member(format!("--lookup redis at `{url}`: {e}")))?,
        ),
        LookupKind::Mongo => Arc::new(MongoIdentityLookup::new(url)),
    })
}

/// The configuration of a member (`health_port` is `Some`) or of the tool's
/// client; `endpoint` is the provider's server (etcd, ZooKeeper),
/// `lookup_url` the lookup's (Redis, MongoDB); `host` the address to bind
/// (127.0.0.1, or the process's address in its namespace).
pub(crate) fn cluster_config(
    provider: ProviderKind,
    lookup: LookupKind,
    peers: &[String],
    health_port: Option<u16>,
    endpoint: &str,
    lookup_url: &str,
    host: &str,
) -> Result<ClusterConfig, crate::Error> {
    let remote = RemoteConfig::bind(host, 0).with_protobuf::<Increment>().with_protobuf::<CountReply>();
    let lookup = identity_lookup(lookup, lookup_url)?;
    let config = match provider {
        ProviderKind::Etcd => {
            ClusterConfig::new(CLUSTER, EtcdProvider::new(EtcdConfig::new([endpoint]).with_ttl(ETCD_TTL)), lookup)
        }
        ProviderKind::Zookeeper => ClusterConfig::new(
            CLUSTER,
            ZkProvider::new(ZkConfig::new(endpoint).with_session_timeout(ZK_SESSION)),
            lookup,
        ),
        ProviderKind::Automanaged => {
            let mut automanaged = AutomanagedConfig::new(peers.to_vec())
                .with_poll_interval(POLL_INTERVAL)
                .with_timeout(Duration::from_secs(1))
                .with_missed_polls(MISSED_POLLS);
            if let Some(port) = health_port {
                automanaged = automanaged.with_bind(host, port);
            }
            ClusterConfig::new(CLUSTER, AutomanagedProvider::new(automanaged), lookup)
        }
    };
    Ok(config.with_remote(remote))
}
