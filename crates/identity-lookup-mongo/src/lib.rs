//! # protoactor-identity-lookup-mongo
//!
//! An identity lookup whose activations live in MongoDB: a
//! [`MongoIdentityStorage`] (official `mongodb` driver) under the cluster
//! crate's generic [`StorageIdentityLookup`]. Any member may activate any
//! identity; MongoDB's unique `_id` decides who wins.
//!
//! ```no_run
//! use protoactor_actor::prelude::*;
//! use protoactor_cluster::{Cluster, ClusterConfig, InMemoryAgent, InMemoryProvider, Kind};
//! use protoactor_identity_lookup_mongo::MongoIdentityLookup;
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let system = ActorSystem::new();
//! let agent = InMemoryAgent::new();
//! let lookup = MongoIdentityLookup::new("mongodb://127.0.0.1:27017/");
//! let echo = Props::from_fn(|ctx| {
//!     if let Some(n) = ctx.message::<u64>() {
//!         ctx.respond(*n);
//!     }
//!     Ok(())
//! });
//! let config = ClusterConfig::new("demo", InMemoryProvider::new(&agent), lookup).with_kind(Kind::new("echo", echo));
//! let cluster = Cluster::new(&system, config)?;
//! cluster.start_member().await?;
//! let n: u64 = cluster.request("e1", "echo", 7u64).await?;
//! assert_eq!(n, 7);
//! cluster.shutdown(true).await;
//! # Ok(()) }
//! ```
//!
//! Consistency: one stored activation per identity, always (the unique
//! `_id` and the lock-id filter are the arbiter; a member whose lock expired
//! cannot store, and its grain is stopped). Lock expiry compares the
//! members' clocks: keep them within a fraction of the lock TTL.

mod error;
mod storage;

pub use error::Error;
pub use protoactor_cluster::{StorageIdentityLookup, StorageLookupConfig};
pub use storage::{MongoConfig, MongoIdentityStorage};

/// Shorthand constructors for a [`StorageIdentityLookup`] on MongoDB.
#[derive(Debug, Clone, Copy)]
pub struct MongoIdentityLookup;

impl MongoIdentityLookup {
    /// A lookup on the MongoDB server at `uri`, with default settings.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(uri: &str) -> StorageIdentityLookup {
        StorageIdentityLookup::new(MongoIdentityStorage::new(uri))
    }

    /// A lookup on MongoDB with `mongo` and `lookup` settings.
    pub fn with_config(mongo: MongoConfig, lookup: StorageLookupConfig) -> StorageIdentityLookup {
        StorageIdentityLookup::with_config(MongoIdentityStorage::with_config(mongo), lookup)
    }
}
