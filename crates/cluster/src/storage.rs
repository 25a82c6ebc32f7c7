//! [`IdentityStorage`]: the storage half of a storage-backed identity
//! lookup (Redis, MongoDB, ...), driven by [`StorageIdentityLookup`](crate::StorageIdentityLookup).

use std::time::Duration;

use futures_util::future::BoxFuture;
use protoactor_actor::Pid;

use crate::error::Error;
use crate::identity::ClusterIdentity;

/// The right to activate one identity, held until stored or expired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpawnLock {
    /// Unique per acquisition; the store accepts an activation only under it.
    pub lock_id: String,
    /// The identity locked.
    pub identity: ClusterIdentity,
}

impl SpawnLock {
    /// A new random lock id (128 bits, hex): what a storage writes when it
    /// takes a lock, so that only this acquisition can store under it.
    pub fn new_lock_id() -> String {
        format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
    }
}

/// An activation as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredActivation {
    /// The member hosting it.
    pub member_id: String,
    /// The grain.
    pub pid: Pid,
}

/// Where a storage-backed lookup keeps activations and locks.
///
/// # Writing an identity storage
///
/// A storage keeps, per cluster identity, at most one *activation* (member
/// id + pid) and at most one *lock* (the right to activate it). The generic
/// lookup on top does the rest: placing the grain, the activation request,
/// cleanup when members leave. The contract:
///
/// * [`try_acquire_lock`](IdentityStorage::try_acquire_lock) atomically takes
///   the lock for an identity that has no activation and no live lock;
///   `Ok(None)` means someone else holds it (or an activation exists). A
///   lock expires after `ttl` even if its holder never returns.
/// * [`store_activation`](IdentityStorage::store_activation) writes the
///   activation and releases the lock in one atomic step, **only if the lock
///   id still matches**; `Ok(false)` means the lock expired or was taken
///   over (the caller then stops the grain it spawned).
/// * [`wait_for_activation`](IdentityStorage::wait_for_activation) polls with
///   growing backoff until an activation appears (`Some`), the lock is gone
///   or expired (`None`: try to acquire again), or `timeout` passes (`None`).
///   A lock that outlived its expiry is cleared.
/// * [`remove_activation`](IdentityStorage::remove_activation) removes the
///   activation only if it is still `pid`;
///   [`remove_member`](IdentityStorage::remove_member) removes every
///   activation of a member. Both are atomic, idempotent, and safe when
///   several members call them at once.
/// * Errors are [`Error::Storage`] naming the store and its address; nothing
///   is left half-written. Every operation gives up after a bounded time of
///   its own (a stalled server must not hold a background cleanup forever);
///   requests additionally cut them at their deadline.
pub trait IdentityStorage: Send + Sync + 'static {
    /// Connects and prepares (indexes, scripts) for cluster `cluster_name`;
    /// keys and documents live under that name.
    fn init<'a>(&'a self, cluster_name: &'a str) -> BoxFuture<'a, Result<(), Error>>;
    /// The stored activation of `identity`, if any.
    fn get<'a>(&'a self, identity: &'a ClusterIdentity) -> BoxFuture<'a, Result<Option<StoredActivation>, Error>>;
    /// Takes the lock for `identity` for `ttl`; `None` if taken or activated.
    fn try_acquire_lock<'a>(
        &'a self,
        identity: &'a ClusterIdentity,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<SpawnLock>, Error>>;
    /// Waits for someone else's activation of `identity`; `None` if the lock
    /// went away (or expired) first or `timeout` passed.
    fn wait_for_activation<'a>(
        &'a self,
        identity: &'a ClusterIdentity,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Option<StoredActivation>, Error>>;
    /// Stores `pid` on `member_id` under `lock` and releases it; `false` if the lock is no longer ours.
    fn store_activation<'a>(
        &'a self,
        member_id: &'a str,
        lock: &'a SpawnLock,
        pid: &'a Pid,
    ) -> BoxFuture<'a, Result<bool, Error>>;
    /// Releases `lock` (activation failed) if it is still ours.
    fn remove_lock<'a>(&'a self, lock: &'a SpawnLock) -> BoxFuture<'a, Result<(), Error>>;
    /// Removes the activation of `identity` if it is still `pid`.
    fn remove_activation<'a>(&'a self, identity: &'a ClusterIdentity, pid: &'a Pid)
    -> BoxFuture<'a, Result<(), Error>>;
    /// Removes every activation stored for `member_id`; returns how many.
    fn remove_member<'a>(&'a self, member_id: &'a str) -> BoxFuture<'a, Result<usize, Error>>;
    /// Releases connections.
    fn dispose(&self) -> BoxFuture<'_, Result<(), Error>>;
    /// Which store this is and where, for errors: `("redis", "redis://127.0.0.1:6379/")`.
    /// Never include credentials.
    fn location(&self) -> (String, String) {
        ("identity storage".into(), "(address unknown)".into())
    }
}

impl<S: IdentityStorage + ?Sized> IdentityStorage for std::sync::Arc<S> {
    fn init<'a>(&'a self, cluster_name: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        (**self).init(cluster_name)
    }
    fn get<'a>(&'a self, identity: &'a ClusterIdentity) -> BoxFuture<'a, Result<Option<StoredActivation>, Error>> {
        (**self).get(identity)
    }
    fn try_acquire_lock<'a>(
        &'a self,
        identity: &'a ClusterIdentity,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<SpawnLock>, Error>> {
        (**self).try_acquire_lock(identity, ttl)
    }
    fn wait_for_activation<'a>(
        &'a self,
        identity: &'a ClusterIdentity,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Option<StoredActivation>, Error>> {
        (**self).wait_for_activation(identity, timeout)
    }
    fn store_activation<'a>(
        &'a self,
        member_id: &'a str,
        lock: &'a SpawnLock,
        pid: &'a Pid,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        (**self).store_activation(member_id, lock, pid)
    }
    fn remove_lock<'a>(&'a self, lock: &'a SpawnLock) -> BoxFuture<'a, Result<(), Error>> {
        (**self).remove_lock(lock)
    }
    fn remove_activation<'a>(
        &'a self,
        identity: &'a ClusterIdentity,
        pid: &'a Pid,
    ) -> BoxFuture<'a, Result<(), Error>> {
        (**self).remove_activation(identity, pid)
    }
    fn remove_member<'a>(&'a self, member_id: &'a str) -> BoxFuture<'a, Result<usize, Error>> {
        (**self).remove_member(member_id)
    }
    fn dispose(&self) -> BoxFuture<'_, Result<(), Error>> {
        (**self).dispose()
    }
    fn location(&self) -> (String, String) {
        (**self).location()
    }
}
