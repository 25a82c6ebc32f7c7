//! # protoactor-cluster-provider-zk
//!
//! Cluster membership on [Apache ZooKeeper](https://zookeeper.apache.org/)
//! (3.5 or later), through the `zookeeper-client` crate.
//!
//! Every member creates one ephemeral sequential znode
//! `/<root>/<cluster>/member-<sequence>` holding its [`MemberInfo`] as JSON
//! (`id`, `host`, `port`, `kinds`, `cluster`). Every member and client
//! watches the children of `/<root>/<cluster>` (re-arming the one-shot
//! watch after each event) and hands the full member set to the cluster's
//! member list on every change.
//!
//! ```no_run
//! use std::time::Duration;
//! use protoactor_actor::prelude::*;
//! use protoactor_cluster::{Cluster, ClusterConfig, Kind};
//! use protoactor_cluster_provider_zk::{LeaderChanged, ZkConfig, ZkProvider};
//! use protoactor_identity_lookup_partition::PartitionIdentityLookup;
//!
//! # async fn demo() -> Result<(), protoactor_cluster::Error> {
//! let provider = ZkProvider::new(
//!     ZkConfig::new("zk1:2181,zk2:2181,zk3:2181")
//!         .with_root("/protoactor")
//!         .with_session_timeout(Duration::from_secs(10)),
//! );
//! let echo = Props::from_fn(|ctx| {
//!     if let Some(n) = ctx.message::<u64>() {
//!         ctx.respond(*n);
//!     }
//!     Ok(())
//! });
//! let system = ActorSystem::new();
//! let (_leadership, mut leaders) = system.event_stream().subscribe_channel::<LeaderChanged>();
//! let config = ClusterConfig::new("demo", provider.clone(), PartitionIdentityLookup::new())
//!     .with_kind(Kind::new("echo", echo));
//! let cluster = Cluster::new(&system, config)?;
//! cluster.start_member().await?;
//! if let Some(leader) = leaders.recv().await {
//!     println!("leader: {} (me: {})", leader.leader_id, leader.is_self);
//! }
//! cluster.shutdown(true).await;
//! # Ok(()) }
//! ```
//!
//! ## Rules
//!
//! * **Joining.** `start_member` opens a session, creates the cluster's
//!   directory if missing, creates this member's znode and returns once
//!   registered. An unreachable ensemble fails it with a clear error after
//!   the [connect timeout](ZkConfig::with_connect_timeout); so does
//!   ZooKeeper refusing access (`NoAuth` with the wrong credentials).
//! * **Leaving.** A graceful shutdown deletes the znode and closes the
//!   session: the others see the member leave at once. A member that dies
//!   (or shuts down without `graceful`) leaves when ZooKeeper expires its
//!   session, about one [session timeout](ZkConfig::with_session_timeout)
//!   after its last heartbeat.
//! * **Leader.** The member with the lowest sequence number is the leader.
//!   Each change is published as [`LeaderChanged`] on the actor system's
//!   event stream (nothing in the cluster acts on it yet) and readable with
//!   [`ZkProvider::leader`].
//! * **Outages.** While disconnected the member keeps its last known
//!   topology. If its session expired it opens a new one and registers
//!   again (a new znode, the same member id). After any interruption of its
//!   own connection, members missing from ZooKeeper are kept for up to two
//!   session timeouts so that those re-registering after a common expiry
//!   (the ensemble was down or paused) are not dropped; a member gone for
//!   longer leaves.
//! * **Other clusters.** Each cluster has its own directory; a znode whose
//!   info names another cluster is ignored with a warning.
//! * **Security.** With [`ZkConfig::with_auth`] the provider authenticates
//!   with the `digest` scheme and creates its znodes with the
//!   `CREATOR_ALL` ACL, so only holders of the same credentials can read or
//!   change them. Without it the znodes are open to anyone who can reach
//!   the ensemble.

#![forbid(unsafe_code)]
mod config;
mod info;
mod provider;
mod session;
mod watch;

pub use config::{DEFAULT_ROOT, ZkConfig};
pub use info::{LeaderChanged, MemberInfo, NODE_PREFIX};
pub use provider::ZkProvider;
