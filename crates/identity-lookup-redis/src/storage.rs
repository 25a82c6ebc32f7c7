//! [`RedisIdentityStorage`]: the [`IdentityStorage`] on Redis.

use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;
use std::time::Duration;

use futures_util::future::BoxFuture;
use protoactor_actor::Pid;
use protoactor_cluster::{ClusterIdentity, Error as ClusterError, IdentityStorage, SpawnLock, StoredActivation};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};
use tokio::time::Instant;

use crate::error::Error;
use crate::scripts;

/// Settings of a [`RedisIdentityStorage`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// `redis://host:port/db` (or `rediss://` for TLS, with a TLS feature of `redis`).
    pub url: String,
    /// Prefix of every key; keys are `<prefix>:<cluster>:...`.
    pub key_prefix: String,
    /// Each connection attempt gives up after this.
    pub connect_timeout: Duration,
    /// Each command gives up after this (then the cluster retries the request).
    pub response_timeout: Duration,
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

impl RedisConfig {
    /// Defaults for the server at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        RedisConfig {
            url: url.into(),
            key_prefix: "protoactor".into(),
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(1),
            min_poll: Duration::from_millis(2),
            max_poll: Duration::from_millis(100),
            max_polls_in_flight: 4,
        }
    }

    /// Keys start with `prefix` instead of `protoactor`.
    pub fn with_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }
}

struct Scripts {
    acquire: Script,
    store: Script,
    unlock: Script,
    remove: Script,
    remove_member: Script,
}

struct Connected {
    connection: ConnectionManager,
    /// `<prefix>:<cluster>:`
    base: String,
}

/// Activations and spawn locks in Redis, for
/// [`StorageIdentityLookup`](protoactor_cluster::StorageIdentityLookup).
///
/// Layout under `<prefix>:<cluster>:`: `act:<kind len>:<kind>:<identity>` a
/// hash (member, address, id); `lock:...` the same name, a string set with
/// `SET NX PX` holding the lock id; `member:<id>` a set of the member's
/// activation keys for cleanup. Storing, removing and member cleanup are Lua
/// scripts (atomic).
pub struct RedisIdentityStorage {
    config: RedisConfig,
    client: redis::Client,
    scripts: Scripts,
    connected: OnceLock<Connected>,
    polls: tokio::sync::Semaphore,
}

impl fmt::Debug for RedisIdentityStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisIdentityStorage").field("config", &self.config).finish_non_exhaustive()
    }
}

impl RedisIdentityStorage {
    /// A storage for the server at `url` (`redis://127.0.0.1:6379/`); it
    /// connects when the cluster starts.
    pub fn new(url: &str) -> Result<Self, Error> {
        Self::with_config(RedisConfig::new(url))
    }

    /// A storage with `config`.
    pub fn with_config(config: RedisConfig) -> Result<Self, Error> {
        let client = redis::Client::open(config.url.as_str())
            .map_err(|source| Error::InvalidUrl { url: config.url.clone(), source })?;
        let scripts = Scripts {
            acquire: Script::new(scripts::ACQUIRE),
            store: Script::new(scripts::STORE),
            unlock: Script::new(scripts::UNLOCK),
            remove: Script::new(scripts::REMOVE),
            remove_member: Script::new(scripts::REMOVE_MEMBER),
        };
        let polls = tokio::sync::Semaphore::new(config.max_polls_in_flight.max(1));
        Ok(RedisIdentityStorage { config, client, scripts, connected: OnceLock::new(), polls })
    }

    fn fail(&self, source: redis::RedisError) -> ClusterError {
        Error::Redis { address: redacted(&self.config.url), source }.into()
    }

    fn connected(&self) -> Result<(ConnectionManager, &str), ClusterError> {
        let c = self.connected.get().ok_or(Error::NotInitialised)?;
        Ok((c.connection.clone(), &c.base))
    }

    fn name(identity: &ClusterIdentity) -> String {
        format!("{}:{}:{}", identity.kind.len(), identity.kind, identity.identity)
    }

    fn activation_key(base: &str, identity: &ClusterIdentity) -> String {
        format!("{base}act:{}", Self::name(identity))
    }

    fn lock_key(base: &str, identity: &ClusterIdentity) -> String {
        format!("{base}lock:{}", Self::name(identity))
    }

    fn member_key(base: &str, member: &str) -> String {
        format!("{base}member:{member}")
    }

    async fn read(&self, identity: &ClusterIdentity) -> Result<Option<StoredActivation>, ClusterError> {
        let (mut con, base) = self.connected()?;
        let fields: HashMap<String, String> =
            con.hgetall(Self::activation_key(base, identity)).await.map_err(|e| self.fail(e))?;
        Ok(match (fields.get("member"), fields.get("address"), fields.get("id")) {
            (Some(member), Some(address), Some(id)) => {
                Some(StoredActivation { member_id: member.clone(), pid: Pid::new(address.as_str(), id.as_str()) })
            }
            _ => None,
        })
    }
}

/// `url` without a password, for errors and logs.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://***{}", &url[..scheme], &url[at..]),
        _ => url.to_string(),
    }
}

impl IdentityStorage for RedisIdentityStorage {
    fn init<'a>(&'a self, cluster_name: &'a str) -> BoxFuture<'a, Result<(), ClusterError>> {
        Box::pin(async move {
            if self.connected.get().is_some() {
                return Ok(());
            }
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(self.config.connect_timeout))
                .set_response_timeout(Some(self.config.response_timeout))
                .set_number_of_retries(2)
                .set_max_delay(Duration::from_millis(500));
            let mut connection =
                ConnectionManager::new_with_config(self.client.clone(), config).await.map_err(|e| self.fail(e))?;
            let _: String = redis::cmd("PING").query_async(&mut connection).await.map_err(|e| self.fail(e))?;
            let base = format!("{}:{}:", self.config.key_prefix, cluster_name);
            tracing::info!(url = %redacted(&self.config.url), %base, "redis identity storage connected");
            let _ = self.connected.set(Connected { connection, base });
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
            let (mut con, base) = self.connected()?;
            let lock_id = SpawnLock::new_lock_id();
            let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
            let won: i64 = self
                .scripts
                .acquire
                .key(Self::activation_key(base, identity))
                .key(Self::lock_key(base, identity))
                .arg(&lock_id)
                .arg(ttl_ms)
                .invoke_async(&mut con)
                .await
                .map_err(|e| self.fail(e))?;
            Ok((won == 1).then(|| SpawnLock { lock_id, identity: identity.clone() }))
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
                {
                    let _permit = self.polls.acquire().await.ok();
                    if let Some(found) = self.read(identity).await? {
                        return Ok(Some(found));
                    }
                    let (mut con, base) = self.connected()?;
                    // The lock expires by itself (PX): gone means its holder
                    // failed or stalled, and the caller may try to take it.
                    let locked: bool = con.exists(Self::lock_key(base, identity)).await.map_err(|e| self.fail(e))?;
                    if !locked {
                        return self.read(identity).await;
                    }
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
            let (mut con, base) = self.connected()?;
            let stored: i64 = self
                .scripts
                .store
                .key(Self::activation_key(base, &lock.identity))
                .key(Self::lock_key(base, &lock.identity))
                .key(Self::member_key(base, member_id))
                .arg(&lock.lock_id)
                .arg(member_id)
                .arg(pid.address())
                .arg(pid.id())
                .invoke_async(&mut con)
                .await
                .map_err(|e| self.fail(e))?;
            Ok(stored == 1)
        })
    }

    fn remove_lock<'a>(&'a self, lock: &'a SpawnLock) -> BoxFuture<'a, Result<(), ClusterError>> {
        Box::pin(async move {
            let (mut con, base) = self.connected()?;
            let _: i64 = self
                .scripts
                .unlock
                .key(Self::lock_key(base, &lock.identity))
                .arg(&lock.lock_id)
                .invoke_async(&mut con)
                .await
                .map_err(|e| self.fail(e))?;
            Ok(())
        })
    }

    fn remove_activation<'a>(
        &'a self,
        identity: &'a ClusterIdentity,
        pid: &'a Pid,
    ) -> BoxFuture<'a, Result<(), ClusterError>> {
        Box::pin(async move {
            let (mut con, base) = self.connected()?;
            let _: i64 = self
                .scripts
                .remove
                .key(Self::activation_key(base, identity))
                .arg(pid.address())
                .arg(pid.id())
                .arg(format!("{base}member:"))
                .invoke_async(&mut con)
                .await
                .map_err(|e| self.fail(e))?;
            Ok(())
        })
    }

    fn remove_member<'a>(&'a self, member_id: &'a str) -> BoxFuture<'a, Result<usize, ClusterError>> {
        Box::pin(async move {
            let (mut con, base) = self.connected()?;
            let n: i64 = self
                .scripts
                .remove_member
                .key(Self::member_key(base, member_id))
                .arg(member_id)
                .invoke_async(&mut con)
                .await
                .map_err(|e| self.fail(e))?;
            Ok(usize::try_from(n).unwrap_or(0))
        })
    }

    fn dispose(&self) -> BoxFuture<'_, Result<(), ClusterError>> {
        Box::pin(async { Ok(()) })
    }

    fn location(&self) -> (String, String) {
        ("redis".into(), redacted(&self.config.url))
    }
}
