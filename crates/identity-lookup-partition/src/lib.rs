//! # protoactor-identity-lookup-partition
//!
//! The default [`IdentityLookup`](protoactor_cluster::IdentityLookup) for
//! protoactor-rs clusters: every identity has an owner member chosen by
//! rendezvous hashing over the members that host its kind; the owner
//! activates the grain and is the one place that knows its pid. Nothing
//! outside the cluster is needed.
//!
//! ```
//! use protoactor_actor::prelude::*;
//! use protoactor_cluster::{Cluster, ClusterConfig, InMemoryAgent, InMemoryProvider, Kind};
//! use protoactor_identity_lookup_partition::PartitionIdentityLookup;
//!
//! # #[tokio::main] async fn main() -> Result<(), protoactor_cluster::Error> {
//! let system = ActorSystem::new();
//! let agent = InMemoryAgent::new();
//! let echo = Props::from_fn(|ctx| {
//!     if let Some(n) = ctx.message::<u64>() {
//!         ctx.respond(*n);
//!     }
//!     Ok(())
//! });
//! let config = ClusterConfig::new("demo", InMemoryProvider::new(&agent), PartitionIdentityLookup::new())
//!     .with_kind(Kind::new("echo", echo));
//! let cluster = Cluster::new(&system, config)?;
//! cluster.start_member().await?;
//! let n: u64 = cluster.request("e1", "echo", 7u64).await?;
//! assert_eq!(n, 7);
//! cluster.shutdown(true).await;
//! # Ok(()) }
//! ```
//!
//! Consistency: one activation per identity while the membership is stable
//! and through changes that every member sees; see `docs/semantics.md`.

#![forbid(unsafe_code)]
mod actor;
mod config;
mod handover;
mod lookup;
mod rendezvous;

pub use actor::{PARTITION_ACTOR, PartitionStats, PartitionStatsResponse};
pub use config::PartitionConfig;
pub use lookup::PartitionIdentityLookup;
