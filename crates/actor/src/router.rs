//! Routers: one pid in front of many routees, spreading messages over them.
//!
//! A router is spawned and addressed like any actor. There are four
//! strategies, each as a *group* (routees are pids you give) or a *pool*
//! (the router spawns `size` routees from your props as its own children, so
//! stopping the router stops them):
//!
//! | strategy | group | pool | a message goes to |
//! |---|---|---|---|
//! | round robin | [`round_robin_group`] | [`round_robin_pool`] | the next routee in turn |
//! | random | [`random_group`] | [`random_pool`] | a routee picked at random |
//! | broadcast | [`broadcast_group`] | [`broadcast_pool`] | every routee |
//! | consistent hash | [`consistent_hash_group`] | [`consistent_hash_pool`] | the routee owning the message's key |
//!
//! Round-robin and random routers are plain [`Props`]; broadcast and
//! consistent-hash routers need per-message-type configuration, so they are
//! builders ([`BroadcastRouter`], [`ConsistentHashRouter`]) finished with
//! `.props()`.
//!
//! ```
//! use std::time::Duration;
//! use protoactor_actor::prelude::*;
//! use protoactor_actor::router;
//!
//! struct Work(u32);
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> Result<(), Error> {
//! let system = ActorSystem::new();
//! let worker = Props::from_fn(|ctx| {
//!     if let Some(Work(n)) = ctx.message::<Work>() {
//!         ctx.respond(n * 2);
//!     }
//!     Ok(())
//! });
//! let pool = system.root().spawn(router::round_robin_pool(worker, 4));
//! // The routee answers the requester directly.
//! let doubled: u32 = system.root().request_future(&pool, Work(21), Duration::from_secs(1)).await?;
//! assert_eq!(doubled, 42);
//! system.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! # Forwarding
//!
//! A routed message keeps its original sender and headers, so a request sent
//! to the router is answered by the routee, straight to the requester.
//! Messages a router cannot deliver (it has no routees, a consistent-hash
//! router has no key extractor for the type, a broadcast router cannot copy
//! the type) go to dead letters, which also fails a waiting request at once.
//!
//! # Management messages
//!
//! Every router understands [`AddRoutee`], [`RemoveRoutee`], [`GetRoutees`]
//! (answered with [`Routees`]) and [`BroadcastMessage`] (a copy to every
//! routee whatever the strategy). Routers watch their routees and drop those
//! that terminate; a pool does not replace them.
//!
//! # Copying messages for broadcast
//!
//! Messages travel as `Box<dyn Message>` and are not `Clone`. A broadcast
//! router therefore copies only the types registered with
//! [`BroadcastRouter::with_clone`]; the last routee gets the original, so with
//! a single routee nothing is copied. Any other message is sent to dead
//! letters with a warning. [`BroadcastMessage::new`] works for any `Clone`
//! message on any router without registration.
//!
//! # Restarts
//!
//! A router fails only if a user-supplied key extractor or `Clone` impl panics. When restarted it returns to
//! its initial configuration: a group to the pids it was created with, a pool
//! to `size` fresh children (the old ones are stopped by the restart).

mod actor;
mod hash;
mod messages;

use std::any::TypeId;
use std::fmt;
use std::sync::Arc;

use crate::message::Message;
use crate::pid::Pid;
use crate::props::Props;

use self::actor::{RouterSpec, Source, Strategy, cloner_for};

pub use self::actor::DEFAULT_REPLICAS;
pub use self::hash::stable_hash;
pub use self::messages::{AddRoutee, BroadcastMessage, GetRoutees, RemoveRoutee, Routees};

fn group(routees: impl IntoIterator<Item = Pid>) -> Source {
    Source::Group(routees.into_iter().collect())
}

fn pool(props: Props, size: usize) -> Source {
    Source::Pool { props, size }
}

/// A router sending each message to the next of `routees` in turn.
pub fn round_robin_group(routees: impl IntoIterator<Item = Pid>) -> Props {
    RouterSpec::new(Strategy::RoundRobin, group(routees)).into_props()
}

/// A router spawning `size` children from `props` and sending each message to
/// the next of them in turn.
pub fn round_robin_pool(props: Props, size: usize) -> Props {
    RouterSpec::new(Strategy::RoundRobin, pool(props, size)).into_props()
}

/// A router sending each message to one of `routees` picked at random.
pub fn random_group(routees: impl IntoIterator<Item = Pid>) -> Props {
    RouterSpec::new(Strategy::Random, group(routees)).into_props()
}

/// A router spawning `size` children from `props` and sending each message to
/// one of them picked at random.
pub fn random_pool(props: Props, size: usize) -> Props {
    RouterSpec::new(Strategy::Random, pool(props, size)).into_props()
}

/// A router sending every message to all of `routees`; register the message
/// types it may copy with [`BroadcastRouter::with_clone`].
pub fn broadcast_group(routees: impl IntoIterator<Item = Pid>) -> BroadcastRouter {
    BroadcastRouter { spec: RouterSpec::new(Strategy::Broadcast, group(routees)) }
}

/// A router spawning `size` children from `props` and sending every message
/// to all of them; register the message types it may copy with
/// [`BroadcastRouter::with_clone`].
pub fn broadcast_pool(props: Props, size: usize) -> BroadcastRouter {
    BroadcastRouter { spec: RouterSpec::new(Strategy::Broadcast, pool(props, size)) }
}

/// A router sending each message to the routee that owns its key on a hash
/// ring over `routees`; register key extractors with
/// [`ConsistentHashRouter::with_key`].
pub fn consistent_hash_group(routees: impl IntoIterator<Item = Pid>) -> ConsistentHashRouter {
    ConsistentHashRouter { spec: RouterSpec::new(Strategy::ConsistentHash, group(routees)) }
}

/// A router spawning `size` children from `props` and sending each message to
/// the child that owns its key on a hash ring; register key extractors with
/// [`ConsistentHashRouter::with_key`].
pub fn consistent_hash_pool(props: Props, size: usize) -> ConsistentHashRouter {
    ConsistentHashRouter { spec: RouterSpec::new(Strategy::ConsistentHash, pool(props, size)) }
}

/// Builds a broadcast router; see [`broadcast_group`] and [`broadcast_pool`].
///
/// ```
/// use protoactor_actor::{Pid, Props, router};
/// #[derive(Clone)]
/// struct Invalidate(String);
/// # let (a, b) = (Pid::new("nonhost", "a"), Pid::new("nonhost", "b"));
/// let props: Props = router::broadcast_group([a, b]).with_clone::<Invalidate>().props();
/// ```
#[derive(Clone)]
pub struct BroadcastRouter {
    spec: RouterSpec,
}

impl BroadcastRouter {
    /// Lets the router copy messages of type `T` to every routee.
    pub fn with_clone<T: Message + Clone>(mut self) -> Self {
        self.spec.cloners.insert(TypeId::of::<T>(), cloner_for::<T>);
        self
    }

    /// The props to spawn the router with.
    pub fn props(self) -> Props {
        self.spec.into_props()
    }
}

impl From<BroadcastRouter> for Props {
    fn from(router: BroadcastRouter) -> Props {
        router.props()
    }
}

impl fmt::Debug for BroadcastRouter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("BroadcastRouter").field(&self.spec).finish()
    }
}

/// Builds a consistent-hash router; see [`consistent_hash_group`] and
/// [`consistent_hash_pool`].
///
/// The ring holds [`DEFAULT_REPLICAS`] virtual nodes per routee, placed by
/// [`stable_hash`] of the routee's pid, so the same key reaches the same
/// routee in every process, and adding or removing a routee only moves the
/// keys that it gains or owned. Messages of a type without a key extractor go
/// to dead letters with a warning.
///
/// ```
/// use protoactor_actor::{Pid, Props, router};
/// struct Deposit { account: String, amount: u64 }
/// # let (a, b) = (Pid::new("nonhost", "a"), Pid::new("nonhost", "b"));
/// let props: Props = router::consistent_hash_group([a, b])
///     .with_key::<Deposit>(|d| d.account.clone())
///     .props();
/// ```
#[derive(Clone)]
pub struct ConsistentHashRouter {
    spec: RouterSpec,
}

impl ConsistentHashRouter {
    /// Routes messages of type `T` by the key `key` extracts from them.
    pub fn with_key<T: Message>(mut self, key: impl Fn(&T) -> String + Send + Sync + 'static) -> Self {
        let extract: actor::KeyFn = Arc::new(move |message| message.downcast_ref::<T>().map(&key));
        self.spec.keys.insert(TypeId::of::<T>(), extract);
        self
    }

    /// Sets the number of virtual nodes per routee (default
    /// [`DEFAULT_REPLICAS`]; at least 1). More spread keys more evenly.
    pub fn with_replicas(mut self, replicas: usize) -> Self {
        self.spec.replicas = replicas.max(1);
        self
    }

    /// The props to spawn the router with.
    pub fn props(self) -> Props {
        self.spec.into_props()
    }
}

impl From<ConsistentHashRouter> for Props {
    fn from(router: ConsistentHashRouter) -> Props {
        router.props()
    }
}

impl fmt::Debug for ConsistentHashRouter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ConsistentHashRouter").field(&self.spec).finish()
    }
}
