//! [`MongoIdentityStorage`]: the [`IdentityStorage`] on MongoDB.

use std::fmt;
use std::sync::OnceLock;
use std::time::Duration;

use futures_util::future::BoxFuture;
use mongodb::bson::{Bson, DateTime, Document, doc};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::ClientOptions;
use mongodb::{Client, Collection, IndexModel};
use protoactor_actor::Pid;
use protoactor_cluster::{ClusterIdentity, Error as ClusterError, IdentityStorage, SpawnLock, StoredActivation};
use tokio::time::Instant;

use crate::error::Error;

/// Settings of a [`MongoIdentityStorage`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MongoConfig {
    /// `mongodb://host:port/` (credentials and options as the driver accepts them).
    pub uri: String,
    /// The database.
    pub database: String,
    /// The collection; one document per identity, for every cluster.
    pub collection: String,
    /// How long the driver looks for a reachable server per operation.
    pub server_selection_timeout: Duration,
    /// Each connection attempt gives up after this.
    pub connect_timeout: Duration,
    /// Connections to the server per member (the driver's pool size);
    /// operations beyond it wait their turn in this storage.
    pub max_connections: u32,
    /// Each operation gives up after this, counted from when it got a
    /// connection (the driver has no per-operation
    /// limit of its own: without it, a stalled server holds a request or a
    /// cleanup forever). Requests are also cut at their own deadline.
    pub operation_timeout: Duration,
    /// First wait of a waiter polling for someone else's activation; doubles up to `max_poll`.
    pub min_poll: Duration,
    /// Longest wait between polls.
    pub max_poll: Duration,
    /// Polls of waiting requests in flight at once, per member. Waiters
    /// beyond it queue here rather than at the server, so the few requests
    /// that hold locks (and must store in time) are not stuck behind
    /// hundreds of polls on a slow store.
    pub max_polls_in_flight: usize,
}

impl MongoConfig {
    /// Defaults for the server at `uri`: database `protoactor`, collection `identities`.
    pub fn new(uri: impl Into<String>) -> Self {
        MongoConfig {
            uri: uri.into(),
            database: "protoactor".into(),
            collection: "identities".into(),
            server_selection_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(1),
            operation_timeout: Duration::from_secs(5),
            max_connections: 10,
            min_poll: Duration::from_millis(2),
            max_poll: Duration::from_millis(100),
            max_polls_in_flight: 4,
        }
    }

    /// Uses database `database`.
    pub fn with_database(mut self, database: impl Into<String>) -> Self {
        self.database = database.into();
        self
    }

    /// Each operation gives up after `timeout`.
    pub fn with_operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// Uses collection `collection`.
    pub fn with_collection(mut self, collection: impl Into<String>) -> Self {
        self.collection = collection.into();
        self
    }
}

struct Connected {
    collection: Collection<Document>,
    cluster: String,
    /// The servers, for error messages (the URI may carry credentials).
    address: String,
}

/// Activations and spawn locks in MongoDB, for
/// [`StorageIdentityLookup`](protoactor_cluster::StorageIdentityLookup).
///
/// One document per identity, `_id: "<cluster len>:<cluster>/<kind len>:<kind>/<identity>"`
/// (a string: every operation is a point lookup on `_id`; a document `_id`
/// or an `$or` in the filter makes some MongoDB-compatible servers scan the
/// collection). A lock document always carries `expires`. Claiming is an
/// insert (a duplicate key means another member won) or a conditional
/// update of a document with no activation whose lock expired; storing is an update filtered on the lock id and an
/// unexpired lock; cleanup of a member is `delete_many` on the indexed
/// `(cluster, member)`. Lock expiry is checked in these filters (against the
/// members' clocks), never left to a TTL index.
pub struct MongoIdentityStorage {
    config: MongoConfig,
    connected: OnceLock<Connected>,
    polls: tokio::sync::Semaphore,
    /// One permit per pooled connection: operations queue here, where
    /// giving up is free, and not in the driver, where an operation dropped
    /// half-way costs its connection.
    ops: tokio::sync::Semaphore,
}

impl fmt::Debug for MongoIdentityStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MongoIdentityStorage")
            .field("database", &self.config.database)
            .field("collection", &self.config.collection)
            .finish_non_exhaustive()
    }
}

fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    match &*e.kind {
        ErrorKind::Write(WriteFailure::WriteError(w)) => w.code == 11000,
        ErrorKind::Command(c) => c.code == 11000,
        _ => false,
    }
}

/// The activation a document holds, if any.
fn activation(d: &Document) -> Option<StoredActivation> {
    let member = d.get_str("member").ok()?;
    let address = d.get_str("address").ok()?;
    let pid = d.get_str("pid").ok()?;
    Some(StoredActivation { member_id: member.to_string(), pid: Pid::new(address, pid) })
}

fn now() -> DateTime {
    DateTime::now()
}

fn after(ttl: Duration) -> DateTime {
    let ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 4);
    DateTime::from_millis(DateTime::now().timestamp_millis().saturating_add(ms))
}

impl MongoIdentityStorage {
    /// A storage for the server at `uri`; it connects when the cluster starts.
    pub fn new(uri: &str) -> Self {
        Self::with_config(MongoConfig::new(uri))
    }

    /// A storage with `config`.
    pub fn with_config(config: MongoConfig) -> Self {
        let polls = tokio::sync::Semaphore::new(config.max_polls_in_flight.max(1));
        let ops = tokio::sync::Semaphore::new(config.max_connections.max(1) as usize);
        MongoIdentityStorage { config, connected: OnceLock::new(), polls, ops }
    }

    fn connected(&self) -> Result<&Connected, ClusterError> {
        Ok(self.connected.get().ok_or(Error::NotInitialised)?)
    }

    fn fail(&self, source: mongodb::error::Error) -> ClusterError {
        Error::Mongo { address: self.address(), source }.into()
    }

    /// The identity's `_id`; the lengths keep it unambiguous whatever the names contain.
    fn id(c: &Connected, identity: &ClusterIdentity) -> String {
        format!("{}:{}/{}:{}/{}", c.cluster.len(), c.cluster, identity.kind.len(), identity.kind, identity.identity)
    }

    /// `operation` bounded by the configured operation timeout.
    async fn op<T>(
        &self,
        what: &str,
        operation: impl std::future::IntoFuture<Output = mongodb::error::Result<T>>,
    ) -> Result<T, ClusterError> {
        let _permit = self.ops.acquire().await.ok();
        match tokio::time::timeout(self.config.operation_timeout, operation.into_future()).await {
            Ok(result) => result.map_err(|e| self.fail(e)),
            Err(_) => Err(Error::Timeout {
                address: self.address(),
                operation: what.to_string(),
                after: self.config.operation_timeout,
            }
            .into()),
        }
    }

    fn address(&self) -> String {
        self.connected.get().map(|c| c.address.clone()).unwrap_or_else(|| "(not connected)".into())
    }

    async fn read(&self, identity: &ClusterIdentity) -> Result<Option<StoredActivation>, ClusterError> {
        let c = self.connected()?;
        let found = self
            .op("read", c.collection.find_one(doc! { "_id": Self::id(c, identity), "member": { "$type": "string" } }))
            .await?;
        Ok(found.as_ref().and_then(activation))
    }
}

impl IdentityStorage for MongoIdentityStorage {
    fn init<'a>(&'a self, cluster_name: &'a str) -> BoxFuture<'a, Result<(), ClusterError>> {
        Box::pin(async move {
            if self.connected.get().is_some() {
                return Ok(());
            }
            let mut options = ClientOptions::parse(&self.config.uri)
                .await
                .map_err(|source| Error::InvalidUri { uri: self.config.uri.clone(), source })?;
            options.server_selection_timeout = Some(self.config.server_selection_timeout);
            options.connect_timeout = Some(self.config.connect_timeout);
            options.max_pool_size = Some(self.config.max_connections.max(1));
            options.app_name.get_or_insert_with(|| "protoactor-identity-lookup-mongo".into());
            let address = options.hosts.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
            let fail = |source| ClusterError::from(Error::Mongo { address: address.clone(), source });
            let client = Client::with_options(options).map_err(fail)?;
            let collection = client.database(&self.config.database).collection::<Document>(&self.config.collection);
            // Cleanup of a member is a query on (cluster, member).
            let index = collection.create_index(IndexModel::builder().keys(doc! { "cluster": 1, "member": 1 }).build());
            let after = self.config.operation_timeout;
            match tokio::time::timeout(after, index).await {
                Ok(result) => result.map_err(fail)?,
                Err(_) => {
                    let operation = "create the member index".to_string();
                    return Err(Error::Timeout { address, operation, after }.into());
                }
            };
            tracing::info!(%address, database = %self.config.database, collection = %self.config.collection, "mongodb identity storage connected");
            let _ = self.connected.set(Connected { collection, cluster: cluster_name.to_string(), address });
            Ok(())
        })
    }

    fn get<'a>(
        &'a self,
        identity: &'a ClusterIdentity,
    ) -> BoxFuture<'a, Result<Option<StoredActivation>, ClusterError>> {
        Box::pin(self.read(identity))
    }

    fn try_acquire_lock<'a>(
        &'a self,
        identity: &'a ClusterIdentity,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<SpawnLock>, ClusterError>> {
        Box::pin(async move {
            let c = self.connected()?;
            let lock_id = SpawnLock::new_lock_id();
            let id = Self::id(c, identity);
            let fresh = doc! { "_id": id.clone(), "cluster": &c.cluster, "lock": &lock_id, "expires": after(ttl) };
            let inserted = self
                .op("lock", async {
                    match c.collection.insert_one(fresh).await {
                        Ok(_) => Ok(true),
                        Err(e) if is_duplicate_key(&e) => Ok(false),
                        Err(e) => Err(e),
                    }
                })
                .await?;
            if inserted {
                return Ok(Some(SpawnLock { lock_id, identity: identity.clone() }));
            }
            // The document exists: take it only if it has no activation and
            // its lock expired (every lock document has `expires`).
            let filter = doc! { "_id": id, "member": Bson::Null, "expires": { "$lt": now() } };
            let update = doc! { "$set": { "lock": &lock_id, "expires": after(ttl) } };
            let result = self.op("lock", c.collection.update_one(filter, update)).await?;
            Ok((result.matched_count == 1).then(|| SpawnLock { lock_id, identity: identity.clone() }))
        })
    }

    fn wait_for_activation<'a>(
        &'a self,
        identity: &'a ClusterIdentity,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Option<StoredActivation>, ClusterError>> {
        Box::pin(async move {
            let deadline = Instant::now() + timeout;
            let mut pause = self.config.min_poll;
            loop {
                let c = self.connected()?;
                let id = Self::id(c, identity);
                let found = {
                    let _permit = self.polls.acquire().await.ok();
                    self.op("poll", c.collection.find_one(doc! { "_id": id.clone() })).await?
                };
                let Some(d) = found else { return Ok(None) };
                if let Some(activation) = activation(&d) {
                    return Ok(Some(activation));
                }
                let Ok(lock) = d.get_str("lock") else { return Ok(None) };
                let expired = d.get_datetime("expires").map(|t| *t < now()).unwrap_or(true);
                if expired {
                    // The holder stalled or died: clear its lock so a caller can claim.
                    let stale = doc! { "_id": id, "lock": lock, "member": Bson::Null };
                    self.op("clear an expired lock", c.collection.delete_one(stale)).await?;
                    return Ok(None);
                }
                if Instant::now() + pause > deadline {
                    return Ok(None);
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(self.config.max_poll);
            }
        })
    }

    fn store_activation<'a>(
        &'a self,
        member_id: &'a str,
        lock: &'a SpawnLock,
        pid: &'a Pid,
    ) -> BoxFuture<'a, Result<bool, ClusterError>> {
        Box::pin(async move {
            let c = self.connected()?;
            let filter = doc! {
                "_id": Self::id(c, &lock.identity),
                "lock": &lock.lock_id,
                "expires": { "$gt": now() },
            };
            let update = doc! {
                "$set": { "member": member_id, "address": pid.address(), "pid": pid.id() },
                "$unset": { "lock": "", "expires": "" },
            };
            let result = self.op("store", c.collection.update_one(filter, update)).await?;
            Ok(result.matched_count == 1)
        })
    }

    fn remove_lock<'a>(&'a self, lock: &'a SpawnLock) -> BoxFuture<'a, Result<(), ClusterError>> {
        Box::pin(async move {
            let c = self.connected()?;
            let filter = doc! { "_id": Self::id(c, &lock.identity), "lock": &lock.lock_id, "member": Bson::Null };
            self.op("unlock", c.collection.delete_one(filter)).await?;
            Ok(())
        })
    }

    fn remove_activation<'a>(
        &'a self,
        identity: &'a ClusterIdentity,
        pid: &'a Pid,
    ) -> BoxFuture<'a, Result<(), ClusterError>> {
        Box::pin(async move {
            let c = self.connected()?;
            let filter = doc! { "_id": Self::id(c, identity), "address": pid.address(), "pid": pid.id() };
            self.op("remove", c.collection.delete_one(filter)).await?;
            Ok(())
        })
    }

    fn remove_member<'a>(&'a self, member_id: &'a str) -> BoxFuture<'a, Result<usize, ClusterError>> {
        Box::pin(async move {
            let c = self.connected()?;
            let result = self
                .op("remove a member", c.collection.delete_many(doc! { "cluster": &c.cluster, "member": member_id }))
                .await?;
            Ok(usize::try_from(result.deleted_count).unwrap_or(usize::MAX))
        })
    }

    fn dispose(&self) -> BoxFuture<'_, Result<(), ClusterError>> {
        Box::pin(async { Ok(()) })
    }

    fn location(&self) -> (String, String) {
        ("mongodb".into(), self.address())
    }
}
