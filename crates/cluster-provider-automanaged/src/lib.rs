//! # protoactor-cluster-provider-automanaged
//!
//! Cluster membership with no external server. Every member serves a small
//! HTTP health endpoint (`GET /_protoactor/member`, answering its
//! [`MemberInfo`] as JSON) and polls the configured list of peers' health
//! addresses on an interval. The cluster is this member plus every peer that
//! answered for the same cluster name within the missed-poll limit.
//!
//! ```no_run
//! use protoactor_actor::prelude::*;
//! use protoactor_cluster::{Cluster, ClusterConfig, Kind};
//! use protoactor_cluster_provider_automanaged::{AutomanagedConfig, AutomanagedProvider};
//! use protoactor_identity_lookup_partition::PartitionIdentityLookup;
//!
//! # async fn demo() -> Result<(), protoactor_cluster::Error> {
//! // The same list on every member: each one's health address.
//! let peers = ["10.0.0.1:6330", "10.0.0.2:6330", "10.0.0.3:6330"];
//! let provider = AutomanagedProvider::new(AutomanagedConfig::new(peers).with_bind("0.0.0.0", 6330));
//! let echo = Props::from_fn(|ctx| {
//!     if let Some(n) = ctx.message::<u64>() {
//!         ctx.respond(*n);
//!     }
//!     Ok(())
//! });
//! let system = ActorSystem::new();
//! let config = ClusterConfig::new("demo", provider.clone(), PartitionIdentityLookup::new())
//!     .with_kind(Kind::new("echo", echo));
//! let cluster = Cluster::new(&system, config)?;
//! cluster.start_member().await?;
//! println!("health endpoint on {:?}", provider.health_address());
//! cluster.shutdown(true).await;
//! # Ok(()) }
//! ```
//!
//! ## Rules
//!
//! * Peers are `host:port` health addresses; listing a member's own address
//!   on it is fine (every member can share one list).
//! * All peers are polled at once every
//!   [poll interval](AutomanagedConfig::with_poll_interval), each with its
//!   own [timeout](AutomanagedConfig::with_timeout). A member that misses
//!   [`missed_polls`](AutomanagedConfig::with_missed_polls) polls in a row
//!   leaves the topology, and the member list blocks its id for good.
//! * A restarted process answers with a new member id: the old id leaves
//!   at once, the new one joins.
//! * A peer answering for another cluster name is ignored, with a warning
//!   (at most once a minute per peer) naming both names. Addresses where
//!   nothing listens, or where something other than a protoactor member
//!   answers (404, not JSON, another shape), count as misses.
//! * A client ([`Cluster::start_client`](protoactor_cluster::Cluster::start_client))
//!   polls without serving.
//! * Shutting down stops serving at once, graceful or not; peers notice
//!   after their missed-poll limit (gossip tells them sooner on a graceful
//!   leave).
//!
//! ## Choosing the timings
//!
//! | | poll interval | timeout | missed polls | a dead member leaves after |
//! |---|---|---|---|---|
//! | defaults | 1 s | 500 ms | 3 | about 3 s |
//! | `cluster_demo` ("for loaded machines") | 500 ms | 1 s | 4 | about 2 s |
//!
//! The defaults suit members whose health endpoint answers promptly: a
//! 500 ms timeout is generous for a loopback or LAN round trip, and three
//! misses keep one slow answer from costing a member its membership. Take
//! the loaded-machine values when members run near full CPU (the demo drives
//! load on a 2-core machine): an answer can then wait longer than 500 ms for
//! a thread, and a timeout longer than the interval plus a fourth miss keeps
//! busy members from being taken for dead; polling twice as often still
//! detects a dead member sooner. Whatever you pick, a member is declared dead
//! after about `interval × missed polls`, and cluster requests wait in
//! retries for that long when their grain's member dies, so keep it well under
//! the request deadline (`ClusterConfig::with_request_deadline`, 30 s).
//!
//! ## Security
//!
//! The endpoint is plain HTTP without authentication: anyone who can reach
//! it learns the member's id, remoting address and kinds, and anyone who can
//! answer on a peer address can claim to be a member. Bind it to the
//! cluster's private network only, as you would the remoting port.

#![forbid(unsafe_code)]
mod config;
mod health;
mod peers;
mod poll;
mod provider;

pub use config::{AutomanagedConfig, DEFAULT_PORT};
pub use health::{HEALTH_PATH, MemberInfo, MemberStatus};
pub use peers::PeerView;
pub use provider::AutomanagedProvider;
