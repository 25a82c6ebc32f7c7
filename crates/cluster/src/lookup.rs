//! [`IdentityLookup`]: where a grain lives, and who activates it.

use futures_util::future::BoxFuture;
use protoactor_actor::Pid;
use protoactor_remote::Serialization;

use crate::error::Error;
use crate::handle::ClusterHandle;
use crate::identity::ClusterIdentity;

/// Finds (and if needed activates) grains.
///
/// # Writing an identity lookup
///
/// A lookup answers one question: given a [`ClusterIdentity`], which pid is
/// its activation? If there is none, it arranges for exactly one to be
/// spawned, on a member that hosts the kind, and returns its pid. The
/// contract:
///
/// * [`setup`](IdentityLookup::setup) runs once during start, after remoting
///   and before the provider; on members it starts whatever actors the
///   lookup needs, on clients (`is_client`) only what is needed to ask.
/// * [`get`](IdentityLookup::get) returns `Ok(Some(pid))`, or `Ok(None)` for
///   "not available right now, try again" (the cluster retries with
///   backoff), or an error. [`Error::IdentityBlocked`] (the kind refuses the
///   identity) and [`Error::UnknownKind`] (no member hosts the kind) end the
///   request; any other error is retried like `Ok(None)`, and its message
///   is what the request reports if it runs out of time, so say why.
/// * The cluster calls [`get_until`](IdentityLookup::get_until) with the
///   request's deadline; it must answer by then. The default cuts `get` at
///   the deadline, which is right when dropping `get` half-way leaves
///   nothing behind; a lookup that writes (locks, activations) overrides it
///   so that a cut never leaves a grain that nobody knows of.
/// * To activate, call [`ClusterHandle::activate`] with a member that hosts
///   the kind (the cluster's activator on that member spawns the grain,
///   carrying the identity into its context; it waits at most
///   [`ClusterConfig::activation_timeout`](crate::ClusterConfig::activation_timeout)),
///   or [`ClusterHandle::spawn_activation`] on this member. Concurrent gets
///   for one identity must produce one activation.
/// * A lookup that keeps its state in a store implements only
///   [`IdentityStorage`](crate::IdentityStorage) and runs on
///   [`StorageIdentityLookup`](crate::StorageIdentityLookup).
/// * Wire messages of its own are registered in
///   [`register_messages`](IdentityLookup::register_messages).
/// * When an activation stops, its member publishes
///   [`ActivationTerminating`](crate::ActivationTerminating) on its event
///   stream; forget the entry (and tell other members if they keep one).
/// * [`remove_pid`](IdentityLookup::remove_pid) is called when a request
///   found `pid` dead: forget it if it is still the entry for the identity.
/// * Watch the [`MemberList`](crate::MemberList): activations on members
///   that left are gone and must never be returned again.
/// * [`shutdown`](IdentityLookup::shutdown) stops the lookup's actors; on a
///   graceful leave, hand off whatever others need first.
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
    /// [`get`](Self::get), answering by `deadline` (the request's). The
    /// default drops `get` at the deadline and says so.
    fn get_until<'a>(
        &'a self,
        identity: &'a ClusterIdentity,
        deadline: std::time::Instant,
    ) -> BoxFuture<'a, Result<Option<Pid>, Error>> {
        Box::pin(async move {
            match tokio::time::timeout_at(deadline.into(), self.get(identity)).await {
                Ok(found) => found,
                Err(_) => Err(Error::Lookup(format!("no answer for {identity} before the request's deadline"))),
            }
        })
    }
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

impl<T: IdentityLookup + ?Sized> IdentityLookup for std::sync::Arc<T> {
    fn setup<'a>(
        &'a self,
        cluster: &'a ClusterHandle,
        kinds: &'a [String],
        is_client: bool,
    ) -> BoxFuture<'a, Result<(), Error>> {
        (**self).setup(cluster, kinds, is_client)
    }
    fn get<'a>(&'a self, identity: &'a ClusterIdentity) -> BoxFuture<'a, Result<Option<Pid>, Error>> {
        (**self).get(identity)
    }
    fn get_until<'a>(
        &'a self,
        identity: &'a ClusterIdentity,
        deadline: std::time::Instant,
    ) -> BoxFuture<'a, Result<Option<Pid>, Error>> {
        (**self).get_until(identity, deadline)
    }
    fn remove_pid<'a>(&'a self, identity: &'a ClusterIdentity, pid: &'a Pid) -> BoxFuture<'a, Result<(), Error>> {
        (**self).remove_pid(identity, pid)
    }
    fn shutdown(&self) -> BoxFuture<'_, Result<(), Error>> {
        (**self).shutdown()
    }
    fn register_messages(&self, serialization: &mut Serialization) {
        (**self).register_messages(serialization)
    }
}
