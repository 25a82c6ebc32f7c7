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
    /// First wait of a waiter polling for someone else's activation; doubles up to `max_poll`.
    pub min_poll: Duration,
    /// Longest wait between polls.
    pub max_poll: Duration,
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
            min_poll: Duration::from_millis(2),
            max_poll: Duration::from_millis(100),
        }
    }

    /// Uses database `database`.
    pub fn with_database(mut self, database: impl Into<String>) -> Self {
        self.database = database.into();
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
/// One document per identity, `_id: {c: cluster, k: kind, i: identity}`.
/// Claiming is an insert (a duplicate key means another member won) or a
/// conditional update of a document with no activation whose lock is
/// absent or expired; storing is an update filtered on the lock id and an
/// unexpired lock; cleanup of a member is `delete_many` on the indexed
/// `(cluster, member)`. Lock expiry is checked in these filters (against the
/// members' clocks), never left to a TTL index.
pub struct MongoIdentityStorage {
    config: MongoConfig,
    connected: OnceLock<Connected>,
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
        MongoIdentityStorage { config, connected: OnceLock::new() }
    }

    fn connected(&self) -> Result<&Connected, ClusterError> {
        Ok(self.connected.get().ok_or(Error::NotInitialised)?)
    }

    fn fail(&self, source: mongodb::error::Error) -> ClusterError {
        let address = self.connected.get().map(|c| c.address.clone()).unwrap_or_else(|| "(not connected)".into());
        Error::Mongo { address, source }.into()
    }

    fn id(c: &Connected, identity: &ClusterIdentity) -> Document {
        doc! { "c": &c.cluster, "k": &identity.kind, "i": &identity.identity }
    }

    async fn read(&self, identity: &ClusterIdentity) -> Result<Option<StoredActivation>, ClusterError> {
        let c = self.connected()?;
        let found = c
            .collection
            .find_one(doc! { "_id": Self::id(c, identity), "member": { "$type": "string" } })
            .await
            .map_err(|e| self.fail(e))?;
        Ok(found.and_then(|d| {
            let member = d.get_str("member").ok()?;
            let address = d.get_str("address").ok()?;
            let pid = d.get_str("pid").ok()?;
            Some(StoredActivation { member_id: member.to_string(), pid: Pid::new(address, pid) })
        }))
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
            options.app_name.get_or_insert_with(|| "protoactor-identity-lookup-mongo".into());
            let address = options.hosts.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
            let fail = |source| ClusterError::from(Error::Mongo { address: address.clone(), source });
            let client = Client::with_options(options).map_err(fail)?;
            let collection = client.database(&self.config.database).collection::<Document>(&self.config.collection);
            // Cleanup of a member is a query on (cluster, member).
            collection
                .create_index(IndexModel::builder().keys(doc! { "cluster": 1, "member": 1 }).build())
                .await
                .map_err(fail)?;
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
            match c.collection.insert_one(fresh).await {
                Ok(_) => return Ok(Some(SpawnLock { lock_id, identity: identity.clone() })),
                Err(e) if is_duplicate_key(&e) => {}
                Err(e) => return Err(self.fail(e)),
            }
            // The document exists: take it only if it has no activation and
            // its lock is gone or expired.
            let filter = doc! {
                "_id": id,
                "member": Bson::Null,
                "$or": [ { "lock": Bson::Null }, { "expires": { "$lt": now() } } ],
            };
            let update = doc! { "$set": { "lock": &lock_id, "expires": after(ttl) } };
            let result = c.collection.update_one(filter, update).await.map_err(|e| self.fail(e))?;
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
                let found = c.collection.find_one(doc! { "_id": id.clone() }).await.map_err(|e| self.fail(e))?;
                let Some(d) = found else { return Ok(None) };
                if d.get_str("member").is_ok() {
                    return self.read(identity).await;
                }
                let Ok(lock) = d.get_str("lock") else { return Ok(None) };
                let expired = d.get_datetime("expires").map(|t| *t < now()).unwrap_or(true);
                if expired {
                    // The holder stalled or died: clear its lock so a caller can claim.
                    let stale = doc! { "_id": id, "lock": lock, "member": Bson::Null };
                    c.collection.delete_one(stale).await.map_err(|e| self.fail(e))?;
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
            let result = c.collection.update_one(filter, update).await.map_err(|e| self.fail(e))?;
            Ok(result.matched_count == 1)
        })
    }

    fn remove_lock<'a>(&'a self, lock: &'a SpawnLock) -> BoxFuture<'a, Result<(), ClusterError>> {
        Box::pin(async move {
            let c = self.connected()?;
            let filter = doc! { "_id": Self::id(c, &lock.identity), "lock": &lock.lock_id, "member": Bson::Null };
            c.collection.delete_one(filter).await.map_err(|e| self.fail(e))?;
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
            c.collection.delete_one(filter).await.map_err(|e| self.fail(e))?;
            Ok(())
        })
    }

    fn remove_member<'a>(&'a self, member_id: &'a str) -> BoxFuture<'a, Result<usize, ClusterError>> {
        Box::pin(async move {
            let c = self.connected()?;
            let result = c
                .collection
                .delete_many(doc! { "cluster": &c.cluster, "member": member_id })
                .await
                .map_err(|e| self.fail(e))?;
            Ok(usize::try_from(result.deleted_count).unwrap_or(usize::MAX))
        })
    }

    fn dispose(&self) -> BoxFuture<'_, Result<(), ClusterError>> {
        Box::pin(async { Ok(()) })
    }
}
