//! [`IdentityLookup`]: where a grain lives, and who activates it.
//!
//! # Writing an identity lookup
//!
//! A lookup answers one question: given a [`ClusterIdentity`], which pid is
//! its activation? If there is none, it arranges for exactly one to be
//! spawned, on a member that hosts the kind, and returns its pid. The
//! contract:
//!
//! * [`setup`](IdentityLookup::setup) runs once during start, after remoting
//!   and before the provider; on members it starts whatever actors the
//!   lookup needs, on clients (`is_client`) only what is needed to ask.
//! * [`get`](IdentityLookup::get) returns `Ok(Some(pid))`, or `Ok(None)` for
//!   "not available right now, try again" (the cluster retries with
//!   backoff), or an error that retrying cannot fix:
//!   [`Error::IdentityBlocked`] when the kind refuses the identity,
//!   [`Error::UnknownKind`] when no member hosts the kind.
//! * To activate, call [`ClusterHandle::activate`] with a member that hosts
//!   the kind (the cluster's activator on that member spawns the grain,
//!   carrying the identity into its context; it waits at most
//!   [`ClusterConfig::activation_timeout`](crate::ClusterConfig::activation_timeout)),
//!   or [`ClusterHandle::spawn_activation`] on this member. Concurrent gets
//!   for one identity must produce one activation.
//! * A lookup that keeps its state in a store implements only
//!   [`IdentityStorage`](crate::IdentityStorage) and runs on
//!   [`StorageIdentityLookup`](crate::StorageIdentityLookup).
//! * Wire messages of its own are registered in
//!   [`register_messages`](IdentityLookup::register_messages).
//! * When an activation stops, its member publishes
//!   [`ActivationTerminating`](crate::ActivationTerminating) on its event
//!   stream; forget the entry (and tell other members if they keep one).
//! * [`remove_pid`](IdentityLookup::remove_pid) is called when a request
//!   found `pid` dead: forget it if it is still the entry for the identity.
//! * Watch the [`MemberList`](crate::MemberList): activations on members
//!   that left are gone and must never be returned again.
//! * [`shutdown`](IdentityLookup::shutdown) stops the lookup's actors; on a
//!   graceful leave, hand off whatever others need first.

use futures_util::future::BoxFuture;
use protoactor_actor::Pid;
use protoactor_remote::Serialization;

use crate::handle::ClusterHandle;
use crate::error::Error;
use crate::identity::ClusterIdentity;

/// Finds (and if needed activates) grains; see the [module docs](self).
pub trait IdentityLookup: Send + Sync + 'static {
    /// Prepares the lookup for `cluster`, hosting `kinds` unless `is_client`.
    fn setup<'a>(
        &'a self,
        cluster: &'a ClusterHandle,
        kinds: &'a [String],
        is_client: bool,
    ) -> BoxFuture<'a, Result<(), Error>>;
    /// The activation of `identity`, activating it if needed; `None` = retry later.
    fn get<'a>(&'a self, identity: &'a ClusterIdentity) -> BoxFuture<'a, Result<Option<Pid>, Error>>;
    /// `pid` was found dead: forget it if it is still the activation of `identity`.
    fn remove_pid<'a>(&'a self, identity: &'a ClusterIdentity, pid: &'a Pid) -> BoxFuture<'a, Result<(), Error>>;
    /// Stops the lookup.
    fn shutdown(&self) -> BoxFuture<'_, Result<(), Error>>;
    /// Registers the lookup's own wire messages with remoting (called once,
    /// when the cluster is created). None by default.
    fn register_messages(&self, serialization: &mut Serialization) {
        let _ = serialization;
    }
}
