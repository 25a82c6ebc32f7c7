//! [`Cluster`]: a member or client of a cluster of virtual actors.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use parking_lot::Mutex;
use protoactor_actor::prelude::*;
use protoactor_actor::{DeliveryFailureKind, Message, Subscription};
use protoactor_remote::Remote;
use tokio::time::Instant;
use tracing::Instrument;

use crate::activator::{ACTIVATOR, Activator};
use crate::config::ClusterConfig;
use crate::error::Error;
use crate::gossip::{GossipSettings, Gossiper};
use crate::handle::ClusterHandle;
use crate::identity::ClusterIdentity;
use crate::kind::ActivatedKind;
use crate::member::{ClusterTopology, Member};
use crate::member_list::MemberList;
use crate::pid_cache::PidCache;
use crate::proto;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RunState {
    Created,
    Member,
    Client,
    Stopping,
    Stopped,
}

/// Per-call settings for [`Cluster::request_with`]; `None` keeps the
/// cluster's configured value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallOptions {
    /// How long one attempt waits for the reply.
    pub timeout: Option<Duration>,
    /// The most the whole call takes, retries included.
    pub deadline: Option<Duration>,
    /// How the call retries.
    pub retry: Option<crate::config::RetryPolicy>,
}

impl CallOptions {
    /// Each attempt waits at most `timeout`.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The call takes at most `deadline`, retries included.
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Retries with `retry`.
    pub fn with_retry(mut self, retry: crate::config::RetryPolicy) -> Self {
        self.retry = Some(retry);
        self
    }
}

/// A member (hosts kinds) or client (only calls grains) of a cluster.
/// Cheap to clone; every clone is the same member.
///
/// ```no_run
/// use protoactor_actor::prelude::*;
/// use protoactor_cluster::{Cluster, ClusterConfig, IdentityLookup, InMemoryAgent, InMemoryProvider, Kind};
///
/// # async fn demo(lookup: impl IdentityLookup) -> Result<(), protoactor_cluster::Error> {
/// let system = ActorSystem::new();
/// let agent = InMemoryAgent::new();
/// let echo = Props::from_fn(|ctx| {
///     if let Some(text) = ctx.message::<String>() {
///         ctx.respond(text.clone());
///     }
///     Ok(())
/// });
/// let cluster = Cluster::new(
///     &system,
///     ClusterConfig::new("demo", InMemoryProvider::new(&agent), lookup).with_kind(Kind::new("echo", echo)),
/// )?;
/// cluster.start_member().await?;
/// let reply: String = cluster.request("echo-1", "echo", "hello".to_string()).await?;
/// assert_eq!(reply, "hello");
/// cluster.shutdown(true).await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    system: ActorSystem,
    remote: Remote,
    config: ClusterConfig,
    kinds: HashMap<String, ActivatedKind>,
    member_list: MemberList,
    pid_cache: Arc<PidCache>,
    gossip: Gossiper,
    state: Mutex<RunState>,
    /// True once `shutdown` finished; later callers wait on it.
    stopped: tokio::sync::watch::Sender<bool>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    subscriptions: Mutex<Vec<Subscription>>,
    /// Activations living on this member (for graceful leaves).
    activations: dashmap::DashMap<ClusterIdentity, Pid>,
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster")
            .field("name", &self.inner.config.name)
            .field("id", &self.inner.system.id())
            .field("address", &self.inner.system.address())
            .field("state", &*self.inner.state.lock())
            .finish()
    }
}

/// A member the cluster declared dead stops for good (ungracefully: the
/// others already moved on).
fn shut_down_in_background(inner: &std::sync::Weak<Inner>) {
    if let Some(inner) = inner.upgrade() {
        let cluster = Cluster { inner };
        let runtime = cluster.inner.system.runtime().clone();
        runtime.spawn(async move { cluster.shutdown(false).await });
    }
}

/// Registers the cluster's wire messages with remoting.
fn register_messages(config: &mut protoactor_remote::RemoteConfig) {
    let s = config.serialization_mut();
    s.register_protobuf::<proto::ClusterIdentity>();
    s.register_protobuf::<proto::ActivationRequest>();
    s.register_protobuf::<proto::ActivationResponse>();
    s.register_protobuf::<proto::ActivationTerminated>();
    s.register_protobuf::<proto::IdentityHandoverRequest>();
    s.register_protobuf::<proto::IdentityHandover>();
    s.register_protobuf_priority::<proto::ClusterTopology>();
    s.register_protobuf_priority::<proto::GossipRequest>();
    s.register_protobuf_priority::<proto::GossipResponse>();
}

impl Cluster {
    /// Prepares a cluster member or client on `system`; nothing runs until
    /// [`start_member`](Self::start_member) or [`start_client`](Self::start_client).
    pub fn new(system: &ActorSystem, config: ClusterConfig) -> Result<Cluster, Error> {
        if config.name.is_empty() {
            return Err(Error::Config("the cluster name is empty".into()));
        }
        // Members of other clusters (and plain remote systems) are refused
        // at the handshake as WrongCluster.
        let mut remote_config = config.remote.clone().with_cluster_name(config.name.clone());
        register_messages(&mut remote_config);
        config.lookup.register_messages(remote_config.serialization_mut());
        let remote = Remote::new(system, remote_config);
        let member_list = MemberList::new(system, &remote, config.block_list_ttl);
        let kinds: HashMap<String, ActivatedKind> =
            config.kinds.iter().map(|k| (k.name.clone(), ActivatedKind::new(k.clone()))).collect();
        let counts: Vec<(String, Arc<std::sync::atomic::AtomicI64>)> =
            kinds.values().map(|k| (k.kind.name.clone(), k.count.clone())).collect();
        let statistics = Arc::new(move || counts.iter().map(|(k, c)| (k.clone(), c.load(Ordering::Relaxed))).collect());
        let settings = GossipSettings {
            interval: config.gossip_interval,
            request_timeout: config.gossip_request_timeout,
            fanout: config.gossip_fanout,
            max_send: config.gossip_max_send,
            heartbeat_expiration: config.heartbeat_expiration,
        };
        let gossip = Gossiper::new(system, &member_list, settings, statistics);
        Ok(Cluster {
            inner: Arc::new(Inner {
                system: system.clone(),
                remote,
                config,
                kinds,
                member_list,
                pid_cache: Arc::new(PidCache::new()),
                gossip,
                state: Mutex::new(RunState::Created),
                stopped: tokio::sync::watch::channel(false).0,
                tasks: Mutex::new(Vec::new()),
                subscriptions: Mutex::new(Vec::new()),
                activations: dashmap::DashMap::new(),
            }),
        })
    }

    fn transition(&self, to: RunState) -> Result<(), Error> {
        let mut state = self.inner.state.lock();
        if *state != RunState::Created {
            return Err(Error::AlreadyStarted);
        }
        *state = to;
        Ok(())
    }

    /// Joins as a member: starts remoting, gossip and the identity lookup,
    /// registers with the provider and returns once this member is in the
    /// topology.
    pub async fn start_member(&self) -> Result<(), Error> {
        self.transition(RunState::Member)?;
        let span = tracing::info_span!("cluster start", cluster = %self.inner.config.name, member = %self.id());
        async {
            self.start_common(false).await?;
            self.inner.gossip.start().await?;
            self.inner.config.provider.start_member(&ClusterHandle::new(self)).await?;
            let me = self.id().to_string();
            let timeout = self.inner.config.join_timeout;
            if !self.inner.member_list.wait_for(timeout, |t| t.member(&me).is_some()).await {
                return Err(Error::JoinTimeout { cluster: self.inner.config.name.clone(), member: me, after: timeout });
            }
            tracing::info!(address = %self.address(), kinds = ?self.inner.kinds.keys().collect::<Vec<_>>(), "joined the cluster");
            Ok(())
        }
        .instrument(span)
        .await
    }

    /// Joins as a client: watches the membership and calls grains, hosts none.
    pub async fn start_client(&self) -> Result<(), Error> {
        self.transition(RunState::Client)?;
        let span = tracing::info_span!("cluster start client", cluster = %self.inner.config.name, member = %self.id());
        async {
            self.start_common(true).await?;
            self.inner.config.provider.start_client(&ClusterHandle::new(self)).await?;
            tracing::info!(address = %self.address(), "started as a client");
            Ok(())
        }
        .instrument(span)
        .await
    }

    async fn start_common(&self, client: bool) -> Result<(), Error> {
        let inner = &self.inner;
        inner.remote.start().await?;
        let weak = Arc::downgrade(inner);
        inner.member_list.on_self_blocked(move || shut_down_in_background(&weak));
        // A peer refusing us means the cluster declared us dead: leave for good.
        let weak = Arc::downgrade(inner);
        let subscription = inner.system.event_stream().subscribe::<protoactor_remote::BlockedByPeer>(move |e| {
            tracing::warn!(peer = %e.address, "a peer refused this member as blocked; shutting down");
            shut_down_in_background(&weak);
        });
        inner.subscriptions.lock().push(subscription);
        // Members that left take their activations with them.
        let cache = inner.pid_cache.clone();
        let subscription = inner.system.event_stream().subscribe::<ClusterTopology>(move |t| {
            for m in &t.left {
                let n = cache.remove_by_address(&m.address());
                tracing::debug!(member = %m.id, removed = n, "forgot cached activations of a member that left");
            }
        });
        inner.subscriptions.lock().push(subscription);
        let cache = inner.pid_cache.clone();
        let ttl = inner.config.pid_cache_ttl;
        let local = inner.system.address();
        let sweep = inner.system.runtime().spawn(async move {
            let mut tick = tokio::time::interval((ttl / 4).clamp(Duration::from_secs(1), Duration::from_secs(15)));
            loop {
                tick.tick().await;
                cache.remove_idle_remote(&local, ttl);
            }
        });
        inner.tasks.lock().push(sweep);
        let kinds: Vec<String> = if client { Vec::new() } else { inner.kinds.keys().cloned().collect() };
        if !client {
            // Any lookup may ask this member to activate a grain it hosts.
            let cluster = self.clone();
            inner
                .system
                .root()
                .spawn_named(Props::from_producer(move || Activator { cluster: cluster.clone() }), ACTIVATOR)
                .map_err(|e| Error::Config(format!("could not start the activator: {e}")))?;
        }
        inner.config.lookup.setup(&ClusterHandle::new(self), &kinds, client).await
    }

    /// Leaves the cluster and stops the actor system. Graceful: deregister
    /// first so others stop routing here, then passivate local activations
    /// (their stop hooks run) and let the lookup hand off what it owns;
    /// requests in flight here fail over to the new activations. Not
    /// graceful: stop now, others notice through the provider or heartbeats.
    pub async fn shutdown(&self, graceful: bool) {
        let was = {
            let mut state = self.inner.state.lock();
            let was = *state;
            if !matches!(was, RunState::Stopping | RunState::Stopped) {
                *state = RunState::Stopping;
            }
            was
        };
        if matches!(was, RunState::Stopping | RunState::Stopped) {
            // Another caller is stopping it: return when that is done.
            let mut stopped = self.inner.stopped.subscribe();
            let _ = stopped.wait_for(|s| *s).await;
            return;
        }
        let inner = &self.inner;
        let span = tracing::info_span!("cluster shutdown", member = %self.id(), graceful);
        async {
            if was != RunState::Created {
                if graceful && was == RunState::Member {
                    // Passivate first (stop hooks run, owners forget the
                    // activations; requests here are refused and retried),
                    // then leave the topology so ownership moves on.
                    if let Err(e) = inner.config.lookup.shutdown().await {
                        tracing::warn!(error = %e, "the identity lookup did not shut down cleanly");
                    }
                    inner.gossip.leave().await;
                }
                if let Err(e) = inner.config.provider.shutdown(graceful).await {
                    tracing::warn!(error = %e, "the provider did not shut down cleanly");
                }
                inner.gossip.shutdown().await;
                for task in inner.tasks.lock().drain(..) {
                    task.abort();
                }
                inner.subscriptions.lock().clear();
                // A member stopping abruptly does not passivate: it behaves as
                // a crash would, and its system's shutdown stops everything.
                if was == RunState::Client {
                    let _ = inner.config.lookup.shutdown().await;
                }
                inner.remote.shutdown(graceful).await;
            }
            inner.system.shutdown().await;
            *inner.state.lock() = RunState::Stopped;
            inner.stopped.send_replace(true);
            tracing::info!("left the cluster");
        }
        .instrument(span)
        .await
    }

    // ----- grains -----

    /// The pid of the activation of `kind/identity`, activating it if needed.
    pub async fn get(&self, identity: &str, kind: &str) -> Result<Pid, Error> {
        let started = Instant::now();
        let deadline = started + self.inner.config.request_deadline;
        self.check_kind(kind, deadline).await?;
        let retry = self.inner.config.retry;
        let mut topology = self.inner.member_list.subscribe();
        let mut last_hash = 0;
        let mut attempt = 0;
        loop {
            attempt += 1;
            if attempt > 1 && self.is_stopping() {
                return Err(Error::NotRunning);
            }
            let after_change = RecentChange::observe(&mut topology, &mut last_hash, attempt);
            let reason = match self.resolve(identity, kind).await {
                Ok(Some(pid)) => return Ok(pid),
                Ok(None) => "no activation is available yet".to_string(),
                Err(e @ (Error::IdentityBlocked { .. } | Error::UnknownKind { .. })) => return Err(e),
                Err(e) => e.to_string(),
            };
            let wait = after_change.pause(retry.backoff(attempt));
            if attempt >= retry.max_attempts || Instant::now() + wait >= deadline {
                return Err(self.failed(identity, kind, "none", attempt, started, reason));
            }
            backoff_or_topology_change(wait, &mut topology).await;
        }
    }

    /// Sends `message` to `kind/identity` and waits for its reply of type `R`.
    ///
    /// The pid comes from the cache, or else from the identity lookup (which
    /// activates the grain if needed). An attempt that times out, or finds
    /// the activation gone, forgets the cached pid and retries with backoff
    /// (see [`RetryPolicy`](crate::RetryPolicy)); a reply to an earlier
    /// attempt still counts. The message is cloned for each attempt.
    pub async fn request<R, M>(&self, identity: &str, kind: &str, message: M) -> Result<R, Error>
    where
        R: Send + 'static,
        M: Message + Clone,
    {
        self.request_with(identity, kind, message, &CallOptions::default()).await
    }

    /// [`request`](Self::request) with per-call settings in place of the
    /// configured ones.
    pub async fn request_with<R, M>(
        &self,
        identity: &str,
        kind: &str,
        message: M,
        options: &CallOptions,
    ) -> Result<R, Error>
    where
        R: Send + 'static,
        M: Message + Clone,
    {
        let span = tracing::debug_span!("cluster request", %identity, %kind);
        self.request_attempts(identity, kind, message, options).instrument(span).await
    }

    async fn request_attempts<R, M>(
        &self,
        identity: &str,
        kind: &str,
        message: M,
        options: &CallOptions,
    ) -> Result<R, Error>
    where
        R: Send + 'static,
        M: Message + Clone,
    {
        let inner = &self.inner;
        let started = Instant::now();
        let deadline = started + options.deadline.unwrap_or(inner.config.request_deadline);
        let retry = options.retry.unwrap_or(inner.config.retry);
        let attempt_timeout = options.timeout.unwrap_or(inner.config.request_timeout);
        let root = inner.system.root();
        let mut reply = inner.system.response_future::<R>();
        let mut attempt = 0u32;
        let mut checked = false;
        let mut member = String::from("none");
        let mut topology = inner.member_list.subscribe();
        let mut last_hash = 0;
        // Why the last lookup gave nothing, for the final error.
        let mut lookup_failure: Option<String> = None;
        loop {
            attempt += 1;
            if attempt > 1 && self.is_stopping() {
                return Err(Error::NotRunning);
            }
            // A change from here on ends the pause before the next attempt.
            let after_change = RecentChange::observe(&mut topology, &mut last_hash, attempt);
            let pid = match inner.pid_cache.get(identity, kind) {
                Some(pid) => Some(pid),
                None => {
                    if !checked {
                        self.check_kind(kind, deadline).await?;
                        checked = true;
                    }
                    match self.lookup(identity, kind).await {
                        Ok(pid) => pid,
                        Err(e @ (Error::IdentityBlocked { .. } | Error::UnknownKind { .. })) => return Err(e),
                        Err(e) => {
                            tracing::debug!(%identity, %kind, error = %e, "identity lookup failed; retrying");
                            lookup_failure = Some(e.to_string());
                            None
                        }
                    }
                }
            };
            let reason;
            let mut pause = true;
            match pid {
                None => reason = lookup_failure.take().unwrap_or_else(|| "no activation is available yet".to_string()),
                Some(pid) => {
                    member = pid.address().to_string();
                    root.request(&pid, message.clone(), reply.pid());
                    let left = deadline.saturating_duration_since(Instant::now());
                    match reply.wait(attempt_timeout.min(left)).await {
                        Ok(response) => return Ok(response),
                        Err(protoactor_actor::Error::Timeout { after, .. }) => {
                            inner.pid_cache.remove_by_value(identity, kind, &pid);
                            reason = format!("no reply within {after:?}");
                            // The wait was the pause; a late reply still lands in `reply`.
                            pause = false;
                        }
                        Err(e @ protoactor_actor::Error::UnexpectedResponse { .. }) => {
                            return Err(Error::UnexpectedResponse {
                                kind: kind.to_string(),
                                identity: identity.to_string(),
                                source: e,
                            });
                        }
                        Err(protoactor_actor::Error::DeliveryFailed { kind: failure, reason, .. })
                            if !retry_can_help(failure) =>
                        {
                            // The same message fails the same way on every attempt
                            // (and the activation is fine): the caller learns now.
                            return Err(Error::Undeliverable {
                                kind: kind.to_string(),
                                identity: identity.to_string(),
                                member,
                                failure,
                                reason,
                            });
                        }
                        Err(e) => {
                            // Dead letter, terminated, undeliverable: the activation is gone.
                            inner.pid_cache.remove_by_value(identity, kind, &pid);
                            let ci = ClusterIdentity::new(identity, kind);
                            if let Err(e) = inner.config.lookup.remove_pid(&ci, &pid).await {
                                tracing::debug!(grain = %ci, error = %e, "could not remove a dead activation");
                            }
                            reason = format!("the activation at {} is gone ({e})", pid.address());
                            reply = inner.system.response_future::<R>();
                            pause = attempt > 1;
                        }
                    }
                }
            }
            let wait = if pause { after_change.pause(retry.backoff(attempt)) } else { Duration::ZERO };
            if attempt >= retry.max_attempts || Instant::now() + wait >= deadline {
                return Err(self.failed(identity, kind, &member, attempt, started, reason));
            }
            tracing::debug!(%identity, %kind, attempt, %reason, "cluster request retrying");
            if !wait.is_zero() {
                backoff_or_topology_change(wait, &mut topology).await;
            }
        }
    }

    /// Sends `message` to `kind/identity` without waiting for a reply; the
    /// grain is activated if needed. Returns once the message is on its way.
    pub async fn send<M: Message>(&self, identity: &str, kind: &str, message: M) -> Result<(), Error> {
        let pid = self.get(identity, kind).await?;
        self.inner.system.root().send(&pid, message);
        Ok(())
    }

    fn failed(
        &self,
        identity: &str,
        kind: &str,
        member: &str,
        attempts: u32,
        started: Instant,
        reason: String,
    ) -> Error {
        Error::RequestFailed {
            kind: kind.to_string(),
            identity: identity.to_string(),
            member: member.to_string(),
            attempts,
            elapsed: started.elapsed(),
            reason,
        }
    }

    /// Fails fast when no member hosts `kind`. A member waits for its own
    /// join; a client waits (up to `deadline`) for a first topology.
    async fn check_kind(&self, kind: &str, deadline: Instant) -> Result<(), Error> {
        let list = &self.inner.member_list;
        let state = *self.inner.state.lock();
        match state {
            RunState::Member | RunState::Client => {}
            _ => return Err(Error::NotRunning),
        }
        let me = self.id().to_string();
        let wait = deadline.saturating_duration_since(Instant::now());
        let ready = list
            .wait_for(wait, |t| if state == RunState::Member { t.member(&me).is_some() } else { !t.members.is_empty() })
            .await;
        if ready && list.topology().members_for_kind(kind).next().is_none() {
            return Err(Error::UnknownKind { cluster: self.inner.config.name.clone(), kind: kind.to_string() });
        }
        Ok(())
    }

    async fn resolve(&self, identity: &str, kind: &str) -> Result<Option<Pid>, Error> {
        if let Some(pid) = self.inner.pid_cache.get(identity, kind) {
            return Ok(Some(pid));
        }
        self.lookup(identity, kind).await
    }

    async fn lookup(&self, identity: &str, kind: &str) -> Result<Option<Pid>, Error> {
        let ci = ClusterIdentity::new(identity, kind);
        let found = self.inner.config.lookup.get(&ci).await?;
        if let Some(pid) = &found {
            self.inner.pid_cache.set(identity, kind, pid.clone());
        }
        Ok(found)
    }

    // ----- for providers and lookups -----

    /// Spawns an activation of `identity` on this member: the kind's props,
    /// with the identity and this cluster in the grain's context. Identity
    /// lookups call this (through [`ClusterHandle`]) on the member chosen to
    /// host the grain. Refused while the member is leaving.
    pub fn spawn_activation(&self, identity: &ClusterIdentity) -> Result<Pid, Error> {
        if self.is_stopping() {
            return Err(Error::NotRunning);
        }
        let kind = self.inner.kinds.get(&identity.kind).ok_or_else(|| Error::UnknownKind {
            cluster: self.inner.config.name.clone(),
            kind: identity.kind.clone(),
        })?;
        if let Some(filter) = &kind.kind.filter
            && !filter(identity)
        {
            return Err(Error::IdentityBlocked { kind: identity.kind.clone(), identity: identity.identity.clone() });
        }
        let props = kind.props.clone().with_extension(identity.clone()).with_extension(self.clone());
        let _span = tracing::info_span!("activation", grain = %identity).entered();
        let pid = self.inner.system.root().spawn_prefix(props, &format!("{}/{}$", identity.kind, identity.identity));
        tracing::debug!(%pid, "activated");
        self.inner.activations.insert(identity.clone(), pid.clone());
        Ok(pid)
    }

    /// The activations living on this member.
    pub fn local_activations(&self) -> Vec<(ClusterIdentity, Pid)> {
        self.inner.activations.iter().map(|e| (e.key().clone(), e.value().clone())).collect()
    }

    pub(crate) fn forget_local_activation(&self, identity: &ClusterIdentity, pid: &Pid) {
        self.inner.activations.remove_if(identity, |_, p| p == pid);
    }

    /// True if this member hosts `kind`: its config lists the kind and it
    /// was not started as a client (a client hosts nothing).
    pub fn hosts_kind(&self, kind: &str) -> bool {
        !self.is_client() && self.inner.kinds.contains_key(kind)
    }

    /// Live activations per kind on this member.
    pub fn activation_counts(&self) -> HashMap<String, i64> {
        self.inner.kinds.iter().map(|(k, a)| (k.clone(), a.count.load(Ordering::Relaxed))).collect()
    }

    /// This member as providers register it: address, system id, kinds.
    pub fn self_member(&self) -> Member {
        let address = self.inner.system.address();
        let (host, port) = match address.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse::<u16>().unwrap_or(0)),
            None => (address.to_string(), 0),
        };
        let is_client = *self.inner.state.lock() == RunState::Client;
        let mut kinds: Vec<String> = if is_client { Vec::new() } else { self.inner.kinds.keys().cloned().collect() };
        kinds.sort();
        Member::new(host, port, self.id(), kinds)
    }

    /// The cluster name.
    pub fn name(&self) -> &str {
        &self.inner.config.name
    }

    /// This member's id (its actor system id).
    pub fn id(&self) -> &str {
        self.inner.system.id()
    }

    /// This member's remote address.
    pub fn address(&self) -> Arc<str> {
        self.inner.system.address()
    }

    pub(crate) fn is_stopping(&self) -> bool {
        matches!(*self.inner.state.lock(), RunState::Stopping | RunState::Stopped)
    }

    /// True if started as a client.
    pub fn is_client(&self) -> bool {
        *self.inner.state.lock() == RunState::Client
    }

    /// The actor system.
    pub fn system(&self) -> &ActorSystem {
        &self.inner.system
    }

    /// Remoting.
    pub fn remote(&self) -> &Remote {
        &self.inner.remote
    }

    /// The configuration.
    pub fn config(&self) -> &ClusterConfig {
        &self.inner.config
    }

    /// The membership.
    pub fn member_list(&self) -> &MemberList {
        &self.inner.member_list
    }

    /// The pid cache.
    pub fn pid_cache(&self) -> &PidCache {
        &self.inner.pid_cache
    }

    /// The gossip.
    pub fn gossip(&self) -> &Gossiper {
        &self.inner.gossip
    }
}

/// Whether an attempt is the first after a topology change.
#[derive(Clone, Copy)]
struct RecentChange(bool);

/// How long the pause after an attempt that followed a topology change may
/// be: the identity lookup may still be catching up with the change.
const SETTLE: Duration = Duration::from_millis(50);

impl RecentChange {
    /// Marks the current topology seen, and tells whether it changed since
    /// the previous attempt.
    fn observe(
        topology: &mut tokio::sync::watch::Receiver<Arc<crate::member_list::Topology>>,
        last_hash: &mut u64,
        attempt: u32,
    ) -> Self {
        let hash = topology.borrow_and_update().hash;
        let changed = attempt > 1 && hash != *last_hash;
        *last_hash = hash;
        RecentChange(changed)
    }

    fn pause(self, backoff: Duration) -> Duration {
        if self.0 { backoff.min(SETTLE) } else { backoff }
    }
}

/// False for the delivery failures that a retry meets again: the message
/// (its type, its size, its bytes) or the peer's cluster is wrong, not the
/// moment. A gone endpoint, a member that left, a full queue or a TLS
/// failure may be behind a grain that moves, so those are retried.
fn retry_can_help(failure: DeliveryFailureKind) -> bool {
    !matches!(
        failure,
        DeliveryFailureKind::UnknownType
            | DeliveryFailureKind::Decode
            | DeliveryFailureKind::TooLarge
            | DeliveryFailureKind::NotSerializable
            | DeliveryFailureKind::WrongCluster
    )
}

/// Sleeps out a retry's backoff, or less: a topology change since the last
/// attempt (a member died, left or joined) is what the retry waits for, so
/// the next attempt starts as soon as one is seen.
async fn backoff_or_topology_change(
    wait: Duration,
    topology: &mut tokio::sync::watch::Receiver<Arc<crate::member_list::Topology>>,
) {
    tokio::select! {
        () = tokio::time::sleep(wait) => {}
        changed = topology.changed() => {
            if changed.is_err() {
                // The member list is gone (shutting down): no change will come.
                tokio::time::sleep(wait).await;
            } else {
                tracing::debug!("topology changed; retrying without waiting out the backoff");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_failures_of_the_moment_are_retried() {
        for kind in DeliveryFailureKind::ALL {
            let retried = matches!(
                kind,
                DeliveryFailureKind::EndpointGone
                    | DeliveryFailureKind::BlockedMember
                    | DeliveryFailureKind::QueueFull
                    | DeliveryFailureKind::Tls
                    | DeliveryFailureKind::ShuttingDown
                    | DeliveryFailureKind::Other
            );
            assert_eq!(retry_can_help(kind), retried, "{kind:?}");
        }
    }
}
