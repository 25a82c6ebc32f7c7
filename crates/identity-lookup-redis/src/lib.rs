//! # protoactor-identity-lookup-redis
//!
//! An identity lookup whose activations live in Redis: a
//! [`RedisIdentityStorage`] under the cluster crate's generic
//! [`StorageIdentityLookup`]. Any member may activate any identity; Redis
//! decides who wins.
//!
//! ```no_run
//! use protoactor_actor::prelude::*;
//! use protoactor_cluster::{Cluster, ClusterConfig, InMemoryAgent, InMemoryProvider, Kind};
//! use protoactor_identity_lookup_redis::RedisIdentityLookup;
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let system = ActorSystem::new();
//! let agent = InMemoryAgent::new();
//! let lookup = RedisIdentityLookup::new("redis://127.0.0.1:6379/")?;
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
//! Consistency: one stored activation per identity, always (the store is
//! the arbiter; a lock holder whose lock expired cannot store, and its grain
//! is stopped). A grain may briefly run twice only in that case, until the
//! loser is stopped. Redis must be reachable for first requests; cached
//! pids keep working while it is not.

mod error;
mod scripts;
mod storage;

pub use error::Error;
pub use protoactor_cluster::{StorageIdentityLookup, StorageLookupConfig};
pub use storage::{RedisConfig, RedisIdentityStorage};

/// Shorthand constructors for a [`StorageIdentityLookup`] on Redis.
#[derive(Debug, Clone, Copy)]
pub struct RedisIdentityLookup;

impl RedisIdentityLookup {
    /// A lookup on the Redis server at `url`, with default settings.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(url: &str) -> Result<StorageIdentityLookup, Error> {
        Ok(StorageIdentityLookup::new(RedisIdentityStorage::new(url)?))
    }

    /// A lookup on Redis with `redis` and `lookup` settings.
    pub fn with_config(redis: RedisConfig, lookup: StorageLookupConfig) -> Result<StorageIdentityLookup, Error> {
        Ok(StorageIdentityLookup::with_config(RedisIdentityStorage::with_config(redis)?, lookup))
    }
}
