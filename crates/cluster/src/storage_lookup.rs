//! [`StorageIdentityLookup`]: an [`IdentityLookup`] on any [`IdentityStorage`].

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::future::BoxFuture;
use parking_lot::Mutex;
use protoactor_actor::Subscription;
use protoactor_actor::prelude::*;
use tokio::time::Instant;
use tracing::Instrument;

use crate::error::Error;
use crate::handle::ClusterHandle;
use crate::identity::ClusterIdentity;
use crate::kind::ActivationTerminating;
use crate::lookup::IdentityLookup;
use crate::member::Member;
use crate::storage::IdentityStorage;

/// Settings of a [`StorageIdentityLookup`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageLookupConfig {
    /// How long a lock to activate an identity lives if its holder never
    /// stores the activation (it crashed or paused). Longer than the
    /// cluster's activation timeout.
    pub lock_ttl: Duration,
    /// How long one lookup waits for another member's activation before
    /// handing back to the cluster's retry.
    pub wait_timeout: Duration,
    /// How long a graceful leave waits for local activations to stop.
    pub passivation_timeout: Duration,
    /// Locks this member takes at once. Requests beyond it queue before
    /// taking a lock, so on a slow store a lock is stored well within its
    /// TTL instead of expiring in the store's queue (which stops the grain
    /// and starts over).
    pub max_locks_in_flight: usize,
}

impl Default for StorageLookupConfig {
    fn default() -> Self {
        StorageLookupConfig {
            lock_ttl: Duration::from_secs(10),
            wait_timeout: Duration::from_secs(5),
            passivation_timeout: Duration::from_secs(5),
            max_locks_in_flight: 32,
        }
    }
}

struct Running {
    handle: ClusterHandle,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    subscription: Mutex<Option<Subscription>>,
}

/// An identity lookup whose activations live in a shared store: any member
/// may activate any identity, and the store decides who wins.
///
/// To activate, a member takes the identity's lock in the store, asks a
/// member hosting the kind to spawn the grain (through the cluster's
/// activator), and stores the pid under the lock; the store refuses a lock
/// that expired meanwhile, and the grain is then stopped. Others wait for
/// the stored activation. Activations of members that leave are removed
/// from the store by every member that sees them go (idempotent), and when
/// a grain stops its member removes its entry.
///
/// ```
/// use protoactor_cluster::{InMemoryAgent, InMemoryProvider, ClusterConfig, IdentityStorage, StorageIdentityLookup};
///
/// # fn demo(storage: impl IdentityStorage) {
/// let agent = InMemoryAgent::new();
/// let lookup = StorageIdentityLookup::new(storage);
/// let config = ClusterConfig::new("demo", InMemoryProvider::new(&agent), lookup);
/// # let _ = config;
/// # }
/// ```
pub struct StorageIdentityLookup {
    storage: Arc<dyn IdentityStorage>,
    locks: Arc<tokio::sync::Semaphore>,
    config: StorageLookupConfig,
    running: OnceLock<Running>,
}

impl fmt::Debug for StorageIdentityLookup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StorageIdentityLookup").field("config", &self.config).finish_non_exhaustive()
    }
}

impl StorageIdentityLookup {
    /// A lookup on `storage` with default settings.
    pub fn new(storage: impl IdentityStorage) -> Self {
        Self::with_config(storage, StorageLookupConfig::default())
    }

    /// A lookup on `storage` with `config`.
    pub fn with_config(storage: impl IdentityStorage, config: StorageLookupConfig) -> Self {
        let locks = Arc::new(tokio::sync::Semaphore::new(config.max_locks_in_flight.max(1)));
        StorageIdentityLookup { storage: Arc::new(storage), locks, config, running: OnceLock::new() }
    }

    /// The storage.
    pub fn storage(&self) -> &Arc<dyn IdentityStorage> {
        &self.storage
    }

    fn handle(&self) -> Result<&ClusterHandle, Error> {
        self.running
            .get()
            .map(|r| &r.handle)
            .ok_or_else(|| Error::Lookup("the storage lookup is not set up; start the cluster first".into()))
    }

    /// The member that hosts a new activation: spread by hashing, the same
    /// choice on every member for a given topology.
    fn place<'t>(identity: &ClusterIdentity, candidates: &[&'t Member]) -> Option<&'t Member> {
        candidates.iter().copied().max_by_key(|m| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            identity.hash(&mut h);
            m.id.hash(&mut h);
            h.finish()
        })
    }

    /// A storage error for `what` cut at the request's deadline.
    fn cut(&self, what: &str) -> Error {
        let (store, address) = self.storage.location();
        Error::Storage { store, address, reason: format!("no answer to `{what}` before the request's deadline") }
    }

    /// `operation` on the store, cut at `deadline`. Only for operations a
    /// cut cannot leave half-done (reads and idempotent removals).
    async fn until<T>(
        &self,
        deadline: Instant,
        what: &str,
        operation: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        tokio::time::timeout_at(deadline, operation).await.unwrap_or_else(|_| Err(self.cut(what)))
    }

    async fn get_or_activate(&self, identity: &ClusterIdentity, deadline: Instant) -> Result<Option<Pid>, Error> {
        let handle = self.handle()?;
        let topology = handle.member_list().topology();
        if let Some(stored) = self.until(deadline, "read", self.storage.get(identity)).await? {
            if topology.member(&stored.member_id).is_some() {
                return Ok(Some(stored.pid));
            }
            // Its member left; the cleanup may not have run yet.
            self.until(deadline, "remove", self.storage.remove_activation(identity, &stored.pid)).await?;
        }
        let candidates: Vec<&Member> = topology.members_for_kind(&identity.kind).collect();
        let Some(member) = Self::place(identity, &candidates) else {
            return Err(Error::Lookup(format!("no member hosting kind `{}` is in the topology yet", identity.kind)));
        };
        // Locking, activating and storing run to their end in a task of
        // their own, whatever happens to this request: dropped between the
        // spawn and the store, the grain would live on unknown to the store
        // and be activated a second time once the lock expired. Each step
        // is bounded (store timeouts, the activation timeout), so the task ends.
        let permit = match tokio::time::timeout_at(deadline, self.locks.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Some(permit),
            Ok(Err(_)) => None,
            Err(_) => return Err(self.cut("wait for a lock slot")),
        };
        let task = handle.system().runtime().spawn(
            activate(
                self.storage.clone(),
                handle.clone(),
                member.clone(),
                identity.clone(),
                self.config.lock_ttl,
                permit,
            )
            .instrument(tracing::debug_span!("storage activation", grain = %identity, member = %member.id)),
        );
        let outcome = match tokio::time::timeout_at(deadline, task).await {
            Ok(Ok(outcome)) => outcome?,
            Ok(Err(e)) => return Err(Error::Lookup(format!("the activation task of {identity} failed: {e}"))),
            Err(_) => return Err(self.cut("lock, activate and store")),
        };
        match outcome {
            Outcome::Activated(pid) => Ok(Some(pid)),
            Outcome::LockExpired => Err(Error::Lookup(format!(
                "the lock for {identity} expired before its activation was stored (lock TTL {:?}); the grain was stopped",
                self.config.lock_ttl
            ))),
            Outcome::Taken => {
                let left = deadline.saturating_duration_since(Instant::now());
                let wait = self.config.wait_timeout.min(left);
                let found = self.until(deadline, "wait", self.storage.wait_for_activation(identity, wait)).await?;
                let live = handle.member_list().topology();
                match found {
                    Some(a) if live.member(&a.member_id).is_some() => Ok(Some(a.pid)),
                    Some(a) => Err(Error::Lookup(format!(
                        "{identity} is stored on member {}, which has left; retrying",
                        a.member_id
                    ))),
                    None => Err(Error::Lookup(format!(
                        "another member holds the lock for {identity}; no activation appeared within {wait:?}"
                    ))),
                }
            }
        }
    }
}

/// What one try to activate an identity came to.
enum Outcome {
    /// Activated and stored.
    Activated(Pid),
    /// Someone else holds the lock (or stored an activation meanwhile).
    Taken,
    /// Activated, but the lock expired before the store: the grain was stopped.
    LockExpired,
}

/// Takes the lock, activates `identity` on `member` and stores it; on any
/// failure after the lock, releases the lock and stops a spawned grain.
async fn activate(
    storage: Arc<dyn IdentityStorage>,
    handle: ClusterHandle,
    member: Member,
    identity: ClusterIdentity,
    lock_ttl: Duration,
    _permit: Option<tokio::sync::OwnedSemaphorePermit>,
) -> Result<Outcome, Error> {
    let Some(lock) = storage.try_acquire_lock(&identity, lock_ttl).await? else { return Ok(Outcome::Taken) };
    let pid = match handle.activate(&member, &identity).await {
        Ok(pid) => pid,
        Err(e) => {
            if let Err(e) = storage.remove_lock(&lock).await {
                tracing::debug!(grain = %identity, error = %e, "could not release the lock; it will expire");
            }
            return Err(e);
        }
    };
    match storage.store_activation(&member.id, &lock, &pid).await {
        Ok(true) => Ok(Outcome::Activated(pid)),
        Ok(false) => {
            // Our lock expired while we activated: someone else may own
            // the identity now. This grain must not live on.
            tracing::warn!(grain = %identity, %pid, "the activation lock expired before the activation was stored; stopping the grain");
            handle.system().root().stop(&pid);
            Ok(Outcome::LockExpired)
        }
        Err(e) => {
            // Not known to be stored: a grain the store may not list must not live on.
            handle.system().root().stop(&pid);
            Err(e)
        }
    }
}

impl IdentityLookup for StorageIdentityLookup {
    fn setup<'a>(
        &'a self,
        cluster: &'a ClusterHandle,
        _kinds: &'a [String],
        is_client: bool,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            self.storage.init(cluster.name()).await?;
            let running =
                Running { handle: cluster.clone(), tasks: Mutex::new(Vec::new()), subscription: Mutex::new(None) };
            if !is_client {
                // Every member that sees a member leave removes its
                // activations (idempotent; the first one does the work).
                let mut topology = cluster.member_list().subscribe();
                let storage = self.storage.clone();
                let mut known: HashSet<String> = HashSet::new();
                running.tasks.lock().push(cluster.system().runtime().spawn(async move {
                    loop {
                        let now: HashSet<String> =
                            topology.borrow_and_update().members.iter().map(|m| m.id.clone()).collect();
                        for gone in known.difference(&now) {
                            let span = tracing::info_span!("storage cleanup", member = %gone);
                            match storage.remove_member(gone).instrument(span).await {
                                Ok(n) => tracing::debug!(member = %gone, removed = n, "removed activations of a member that left"),
                                Err(e) => tracing::warn!(member = %gone, error = %e, "could not remove the activations of a member that left"),
                            }
                        }
                        known = now;
                        if topology.changed().await.is_err() {
                            return;
                        }
                    }
                }));
                // A grain that stops here leaves the store. Not while the
                // member stops: a graceful leave removes all its entries at
                // once, and a crash must be cleaned by the others.
                let storage = self.storage.clone();
                let runtime = cluster.system().runtime().clone();
                let handle = cluster.clone();
                *running.subscription.lock() =
                    Some(cluster.system().event_stream().subscribe::<ActivationTerminating>(move |e| {
                        if handle.is_stopping() {
                            return;
                        }
                        let storage = storage.clone();
                        let e = e.clone();
                        runtime.spawn(async move {
                            if let Err(err) = storage.remove_activation(&e.identity, &e.pid).await {
                                tracing::debug!(grain = %e.identity, error = %err, "could not remove a stopped activation");
                            }
                        });
                    }));
            }
            self.running.set(running).map_err(|_| Error::Lookup("set up twice".into()))
        })
    }

    fn get<'a>(&'a self, identity: &'a ClusterIdentity) -> BoxFuture<'a, Result<Option<Pid>, Error>> {
        let deadline = Instant::now() + self.config.wait_timeout + self.config.lock_ttl;
        self.get_until(identity, deadline.into_std())
    }

    fn get_until<'a>(
        &'a self,
        identity: &'a ClusterIdentity,
        deadline: std::time::Instant,
    ) -> BoxFuture<'a, Result<Option<Pid>, Error>> {
        let span = tracing::debug_span!("storage lookup", grain = %identity);
        Box::pin(self.get_or_activate(identity, deadline.into()).instrument(span))
    }

    fn remove_pid<'a>(&'a self, identity: &'a ClusterIdentity, pid: &'a Pid) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move { self.storage.remove_activation(identity, pid).await })
    }

    fn shutdown(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            let Some(running) = self.running.get() else { return Ok(()) };
            let handle = &running.handle;
            if !handle.is_client() {
                // Graceful leave: stop local grains (their stop hooks run),
                // then drop everything stored for this member so others
                // activate them again at once.
                let root = handle.system().root();
                let local = handle.local_activations();
                let stops = local.iter().map(|(_, p)| root.poison_future(p));
                if tokio::time::timeout(self.config.passivation_timeout, futures_util::future::join_all(stops))
                    .await
                    .is_err()
                {
                    tracing::warn!("some activations did not stop in time");
                }
                let removed = self.storage.remove_member(handle.id()).await?;
                tracing::info!(
                    passivated = local.len(),
                    removed,
                    "local activations passivated and removed from the store"
                );
            }
            for task in running.tasks.lock().drain(..) {
                task.abort();
            }
            running.subscription.lock().take();
            self.storage.dispose().await
        })
    }
}
