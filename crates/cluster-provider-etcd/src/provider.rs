//! [`EtcdProvider`]: register under a leased key, keep the lease alive,
//! watch the cluster's prefix, report the full member set.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use etcd_client::{Client, EventType, WatchOptions};
use futures_util::future::BoxFuture;
use parking_lot::Mutex;
use protoactor_cluster::{ClusterHandle, ClusterProvider, Error, Retry, StartOnce, TopologyReporter};
use tokio::task::JoinHandle;

use crate::config::EtcdConfig;
use crate::etcd::{self, CallError, bounded};
use crate::member_info::{MemberInfo, Registry};

/// Membership on etcd. Each member writes its [`MemberInfo`] under
/// `<prefix>/<cluster>/<member-id>`, bound to a lease it keeps alive; every
/// member and client watches `<prefix>/<cluster>/` and reports who is there.
/// See the [crate docs](crate).
///
/// Cheap to clone; clones are the same provider, so keep one to ask for
/// [`lease_id`](Self::lease_id) after handing it to the cluster
/// configuration. One provider serves one member or client, once.
#[derive(Clone)]
pub struct EtcdProvider {
    inner: Arc<Inner>,
}

struct Inner {
    config: EtcdConfig,
    once: StartOnce,
    /// The lease our key is bound to; 0 when there is none.
    lease_id: AtomicI64,
    /// How many times this member registered (1 at start, +1 per lost lease).
    registrations: AtomicU64,
    /// The latest connected client, for revoking the lease at shutdown.
    client: Mutex<Option<Client>>,
    running: Mutex<Option<Running>>,
}

struct Running {
    tasks: Vec<JoinHandle<()>>,
    member: bool,
}

impl fmt::Debug for EtcdProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdProvider")
            .field("config", &self.inner.config)
            .field("lease_id", &self.lease_id())
            .field("registrations", &self.registrations())
            .field("running", &self.inner.running.lock().is_some())
            .finish()
    }
}

impl EtcdProvider {
    /// A provider talking to etcd as `config` says.
    pub fn new(config: EtcdConfig) -> Self {
        EtcdProvider {
            inner: Arc::new(Inner {
                config,
                once: StartOnce::new("EtcdProvider"),
                lease_id: AtomicI64::new(0),
                registrations: AtomicU64::new(0),
                client: Mutex::new(None),
                running: Mutex::new(None),
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &EtcdConfig {
        &self.inner.config
    }

    /// The etcd lease this member's key is bound to, while registered.
    pub fn lease_id(&self) -> Option<i64> {
        Some(self.inner.lease_id.load(Ordering::Acquire)).filter(|id| *id != 0)
    }

    /// How many times this member registered: 1 once started, one more for
    /// every lease that was lost and granted again.
    pub fn registrations(&self) -> u64 {
        self.inner.registrations.load(Ordering::Acquire)
    }

    fn fail(&self, e: &CallError) -> Error {
        Error::Provider(e.describe(&self.inner.config.endpoints))
    }

    async fn start(&self, cluster: &ClusterHandle, member: bool) -> Result<(), Error> {
        let inner = &self.inner;
        inner.once.start()?;
        let config = &inner.config;
        config.validate()?;
        let name = cluster.name().to_string();
        let mut client = etcd::connect(config).await.map_err(|e| self.fail(&e))?;
        let reporter = TopologyReporter::new(cluster, "etcd", member);
        if let Some(me) = reporter.me() {
            let key = config.member_key(&name, &me.id);
            let value = serde_json::to_vec(&MemberInfo::new(&name, me))
                .map_err(|e| Error::Provider(format!("etcd: cannot encode the member info: {e}")))?;
            let lease = etcd::register(&mut client, config, &key, &value).await.map_err(|e| self.fail(&e))?;
            inner.lease_id.store(lease, Ordering::Release);
            inner.registrations.fetch_add(1, Ordering::AcqRel);
            tracing::info!(cluster = %name, %key, lease, ttl = ?config.ttl, "registered in etcd");
            let retry = Retry::new("etcd", name.clone(), FIRST_RETRY, config.retry_max);
            let keeper = KeepAlive { inner: inner.clone(), client: client.clone(), key, value, retry };
            let task = cluster.system().runtime().spawn(keeper.run());
            inner.running.lock().get_or_insert_with(|| Running { tasks: Vec::new(), member }).tasks.push(task);
        }
        let prefix = config.cluster_prefix(&name);
        let mut watcher = Watcher {
            inner: inner.clone(),
            client: client.clone(),
            retry: Retry::new("etcd", name.clone(), FIRST_RETRY, config.retry_max),
            cluster: name,
            prefix,
            reporter,
            registry: Registry::default(),
            revision: 0,
        };
        if let Err(e) = watcher.list().await {
            self.stop_tasks();
            return Err(self.fail(&e));
        }
        *inner.client.lock() = Some(client);
        let task = cluster.system().runtime().spawn(watcher.run());
        inner.running.lock().get_or_insert_with(|| Running { tasks: Vec::new(), member }).tasks.push(task);
        Ok(())
    }

    fn stop_tasks(&self) -> Option<Running> {
        let running = self.inner.running.lock().take();
        if let Some(running) = &running {
            for task in &running.tasks {
                task.abort();
            }
        }
        running
    }
}

/// Keeps the lease alive; grants a new one and registers again when it was lost.
struct KeepAlive {
    inner: Arc<Inner>,
    client: Client,
    key: String,
    value: Vec<u8>,
    retry: Retry,
}

/// The first pause after a failed call to etcd.
const FIRST_RETRY: std::time::Duration = std::time::Duration::from_millis(100);

/// Why a keep-alive session ended.
enum SessionEnd {
    /// The server no longer knows the lease: our key is gone.
    LeaseLost(String),
    /// The connection failed; the lease may still be alive.
    Broken(String),
}

impl KeepAlive {
    async fn run(mut self) {
        loop {
            let lease = self.inner.lease_id.load(Ordering::Acquire);
            let end = if lease == 0 { SessionEnd::LeaseLost("no lease".into()) } else { self.session(lease).await };
            match end {
                SessionEnd::Broken(why) => {
                    // The lease lives until its TTL: keep renewing once etcd answers.
                    self.retry.failed(format!("keep-alive of lease {lease} for {}: {why}", self.key)).await;
                    self.reconnect().await;
                }
                SessionEnd::LeaseLost(why) => {
                    tracing::warn!(key = %self.key, lease, %why, "etcd lease lost; granting a new one and registering again");
                    self.inner.lease_id.store(0, Ordering::Release);
                    self.register_again().await;
                }
            }
        }
    }

    async fn register_again(&mut self) {
        let config = self.inner.config.clone();
        loop {
            match etcd::register(&mut self.client, &config, &self.key, &self.value).await {
                Ok(lease) => {
                    self.inner.lease_id.store(lease, Ordering::Release);
                    let n = self.inner.registrations.fetch_add(1, Ordering::AcqRel) + 1;
                    tracing::info!(key = %self.key, lease, registrations = n, "registered in etcd again");
                    self.retry.succeeded();
                    return;
                }
                Err(e) => {
                    self.retry.failed(format!("registering again: {}", e.describe(&config.endpoints))).await;
                    self.reconnect().await;
                }
            }
        }
    }

    async fn reconnect(&mut self) {
        match etcd::connect(&self.inner.config).await {
            Ok(client) => {
                *self.inner.client.lock() = Some(client.clone());
                self.client = client;
            }
            Err(e) => tracing::debug!(error = %e.describe(&self.inner.config.endpoints), "etcd reconnect failed"),
        }
    }

    /// Renews `lease` every TTL/3 until something fails.
    async fn session(&mut self, lease: i64) -> SessionEnd {
        let config = &self.inner.config;
        let open =
            bounded(config.connect_timeout, "opening the keep-alive stream", self.client.lease_keep_alive(lease));
        let (mut keeper, mut stream) = match open.await {
            Ok(pair) => pair,
            Err(e) if e.is_lease_lost() => return SessionEnd::LeaseLost(e.describe(&config.endpoints)),
            Err(e) => return SessionEnd::Broken(e.describe(&config.endpoints)),
        };
        self.retry.succeeded();
        // Opening the stream renewed the lease once already.
        let mut tick = tokio::time::interval_at(
            tokio::time::Instant::now() + config.keep_alive_interval(),
            config.keep_alive_interval(),
        );
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = keeper.keep_alive().await {
                return SessionEnd::Broken(format!("sending a keep-alive failed: {e}"));
            }
            match tokio::time::timeout(config.connect_timeout, stream.message()).await {
                Ok(Ok(Some(answer))) if answer.ttl() <= 0 => {
                    return SessionEnd::LeaseLost("etcd answered the keep-alive: lease not found".into());
                }
                Ok(Ok(Some(_))) => {}
                Ok(Ok(None)) => return SessionEnd::Broken("the keep-alive stream ended".into()),
                Ok(Err(e)) => return SessionEnd::Broken(format!("the keep-alive stream failed: {e}")),
                Err(_) => {
                    return SessionEnd::Broken(format!("no keep-alive answer within {:?}", config.connect_timeout));
                }
            }
        }
    }
}

/// Lists the prefix, then watches it from the listed revision; reports the
/// full member set on every change.
struct Watcher {
    inner: Arc<Inner>,
    client: Client,
    retry: Retry,
    cluster: String,
    prefix: String,
    reporter: TopologyReporter,
    registry: Registry,
    /// The last revision whose events we have applied.
    revision: i64,
}

/// Why a watch ended.
enum WatchEnd {
    /// The revision to resume from was compacted away: list again.
    Compacted(i64),
    /// The stream failed; resume from the last revision.
    Broken(String),
}

impl Watcher {
    async fn list(&mut self) -> Result<(), CallError> {
        let config = &self.inner.config;
        let (revision, ignored) =
            etcd::list(&mut self.client, config, &self.cluster, &self.prefix, &mut self.registry).await?;
        for (key, why) in ignored {
            tracing::warn!(%key, %why, "ignoring a key under the cluster prefix");
        }
        self.revision = revision;
        self.report();
        Ok(())
    }

    fn report(&mut self) {
        let members = self.registry.members(self.reporter.me());
        self.reporter.report(members);
    }

    async fn run(mut self) {
        let mut needs_list = false;
        loop {
            if needs_list {
                match self.list().await {
                    Ok(()) => needs_list = false,
                    Err(e) => {
                        self.retry.failed(format!("re-list: {}", e.describe(&self.inner.config.endpoints))).await;
                        self.reconnect().await;
                        continue;
                    }
                }
            }
            match self.watch().await {
                WatchEnd::Compacted(compacted) => {
                    tracing::warn!(
                        cluster = %self.cluster, from = self.revision + 1, compacted,
                        "etcd compacted the revisions the watch would resume from; listing the members again"
                    );
                    needs_list = true;
                }
                WatchEnd::Broken(why) => {
                    self.retry.failed(format!("watch from revision {}: {why}", self.revision + 1)).await;
                    self.reconnect().await;
                }
            }
        }
    }

    async fn reconnect(&mut self) {
        match etcd::connect(&self.inner.config).await {
            Ok(client) => self.client = client,
            Err(e) => tracing::debug!(error = %e.describe(&self.inner.config.endpoints), "etcd reconnect failed"),
        }
    }

    /// Watches from the revision after the last one applied, until it fails.
    async fn watch(&mut self) -> WatchEnd {
        let config = self.inner.config.clone();
        let options = WatchOptions::new().with_prefix().with_start_revision(self.revision + 1).with_progress_notify();
        let open = self.client.watch(self.prefix.clone(), Some(options));
        let mut stream = match bounded(config.connect_timeout, "opening the watch", open).await {
            Ok(stream) => stream,
            Err(e) => return WatchEnd::Broken(e.describe(&config.endpoints)),
        };
        loop {
            let response = match stream.message().await {
                Ok(Some(response)) => response,
                Ok(None) => return WatchEnd::Broken("the watch stream ended".into()),
                Err(e) => return WatchEnd::Broken(format!("the watch stream failed: {e}")),
            };
            if response.canceled() {
                if response.compact_revision() > 0 {
                    return WatchEnd::Compacted(response.compact_revision());
                }
                return WatchEnd::Broken(format!("etcd canceled the watch: {}", response.cancel_reason()));
            }
            if response.created() {
                self.retry.succeeded();
                continue;
            }
            if response.events().is_empty() {
                // A progress notification: everything up to its revision was sent.
                if let Some(header) = response.header() {
                    self.revision = self.revision.max(header.revision());
                }
                continue;
            }
            for event in response.events() {
                let Some(kv) = event.kv() else { continue };
                self.revision = self.revision.max(kv.mod_revision());
                let key = String::from_utf8_lossy(kv.key()).into_owned();
                match event.event_type() {
                    EventType::Put => {
                        if let Some(why) = self.registry.put(&self.cluster, &key, kv.value()) {
                            tracing::warn!(%key, %why, "ignoring a key under the cluster prefix");
                        }
                    }
                    EventType::Delete => self.registry.delete(&key),
                }
            }
            self.report();
        }
    }
}

impl ClusterProvider for EtcdProvider {
    fn start_member<'a>(&'a self, cluster: &'a ClusterHandle) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(self.start(cluster, true))
    }

    fn start_client<'a>(&'a self, cluster: &'a ClusterHandle) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(self.start(cluster, false))
    }

    /// Stops watching and renewing. Graceful: revokes the lease, so the key
    /// goes at once and the others see the member leave. Otherwise the key
    /// stays until the lease expires, as for a process that died.
    fn shutdown(&self, graceful: bool) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            let Some(running) = self.stop_tasks() else { return Ok(()) };
            let lease = self.inner.lease_id.swap(0, Ordering::AcqRel);
            let client = self.inner.client.lock().take();
            if graceful && running.member && lease != 0 {
                let config = &self.inner.config;
                let Some(mut client) = client else { return Ok(()) };
                let revoke = bounded(config.connect_timeout, "revoking the lease", client.lease_revoke(lease));
                if let Err(e) = revoke.await {
                    return Err(Error::Provider(format!(
                        "{}; the member's key goes when its lease expires (TTL {:?})",
                        e.describe(&config.endpoints),
                        config.ttl
                    )));
                }
                tracing::info!(lease, "etcd lease revoked: left the cluster");
            } else {
                tracing::info!(graceful, "etcd provider stopped");
            }
            Ok(())
        })
    }
}
