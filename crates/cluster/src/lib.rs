//! # protoactor-cluster
//!
//! Virtual actors ("grains"): actors addressed by a [`ClusterIdentity`]
//! (kind + identity) instead of a pid. A grain is activated on first message
//! on some member that hosts its kind, found again from any member or
//! client, passivated when idle, and activated again elsewhere when its
//! member dies.
//!
//! Membership comes from a [`ClusterProvider`] and placement from an
//! [`IdentityLookup`]; both are plug-ins and see the cluster through a
//! narrow [`ClusterHandle`]. This crate has an in-memory provider for tests,
//! and [`StorageIdentityLookup`], which turns any [`IdentityStorage`] (Redis,
//! MongoDB, ...) into a lookup; see `protoactor-identity-lookup-partition`
//! for the default lookup.
//!
//! ```no_run
//! use std::time::Duration;
//! use protoactor_actor::prelude::*;
//! use protoactor_cluster::{Cluster, ClusterConfig, GrainContext, IdentityLookup, InMemoryAgent, InMemoryProvider, Kind};
//!
//! #[derive(Clone)]
//! struct Hello(String);
//!
//! struct Greeter;
//! impl Actor for Greeter {
//!     async fn receive(&mut self, ctx: &mut Context) -> ActorResult {
//!         if let Some(Hello(name)) = ctx.message::<Hello>() {
//!             let me = ctx.cluster_identity().map(|i| i.identity.clone()).unwrap_or_default();
//!             ctx.respond(format!("hello {name}, I am {me}"));
//!         }
//!         Ok(())
//!     }
//! }
//!
//! # async fn demo(lookup: impl IdentityLookup) -> Result<(), protoactor_cluster::Error> {
//! let system = ActorSystem::new();
//! let agent = InMemoryAgent::new();
//! let config = ClusterConfig::new("demo", InMemoryProvider::new(&agent), lookup)
//!     .with_kind(Kind::new("greeter", Props::from_producer(|| Greeter)).with_idle_timeout(Duration::from_secs(60)));
//! let cluster = Cluster::new(&system, config)?;
//! cluster.start_member().await?;
//! let answer: String = cluster.request("anna", "greeter", Hello("you".into())).await?;
//! assert_eq!(answer, "hello you, I am anna");
//! cluster.shutdown(true).await;
//! # Ok(()) }
//! ```
//!
//! What a cluster request promises while members come and go is stated in
//! `docs/semantics.md` at the repository root.

#![forbid(unsafe_code)]

mod activator;
mod cluster;
mod config;
mod error;
pub mod gossip;
mod handle;
mod identity;
mod in_memory;
mod kind;
pub mod lookup;
mod member;
mod member_list;
mod pid_cache;
pub mod provider;
mod provider_kit;
mod storage;
mod storage_lookup;

/// Types generated from `protos/cluster.proto` and `protos/gossip.proto`.
#[allow(missing_docs, unreachable_pub, missing_debug_implementations, clippy::all)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/cluster.rs"));
}

pub use activator::ACTIVATOR;
pub use cluster::{CallOptions, Cluster};
pub use config::{ClusterConfig, RetryPolicy};
pub use error::Error;
pub use gossip::{ConsensusHandle, GossipUpdate, Gossiper, SuspicionEvent};
pub use handle::ClusterHandle;
pub use identity::ClusterIdentity;
pub use in_memory::{InMemoryAgent, InMemoryProvider};
pub use kind::{ActivationTerminating, GrainContext, Kind};
pub use lookup::IdentityLookup;
pub use member::{ClusterTopology, Member, MemberInfo, topology_hash};
pub use member_list::{MemberList, Topology};
pub use pid_cache::PidCache;
pub use provider::ClusterProvider;
pub use provider_kit::{ProviderTasks, Retry, StartOnce, TopologyReporter};
pub use storage::{IdentityStorage, SpawnLock, StoredActivation};
pub use storage_lookup::{StorageIdentityLookup, StorageLookupConfig};
