//! [`Remote`]: starts the server, resolves pids at other addresses to
//! endpoints, and offers remote spawn.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use parking_lot::Mutex;
use protoactor_actor::{
    ActorSystem, AddressResolver, DeliveryFailure, DeliveryFailureKind, Envelope, Pid, Process, ProcessRef, Props,
    SystemMessage, Terminated, TerminatedReason,
};
use tokio::sync::watch;

use crate::activator::{ACTIVATOR, Activator};
use crate::config::RemoteConfig;
use crate::conn::{ConnectionStats, Connections};
use crate::endpoint::{Endpoint, Failed};
use crate::error::Error;
use crate::proto::{ActorPidRequest, ActorPidResponse, ResponseStatusCode};
use crate::serialization::Serialization;
use crate::server::RemotingServer;
use crate::throttle_log::LogThrottle;

/// Streams one inbound connection may carry at once (the protocol uses one).
const MAX_STREAMS_PER_CONNECTION: u32 = 16;

/// How long a graceful shutdown waits for peers to hang up before it closes
/// their connections.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// Published when an endpoint gives up on an address: its watchers got
/// `Terminated(AddressTerminated)` and its pending requests failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointTerminated {
    /// The address that is gone.
    pub address: String,
    /// Why, as a kind: what requests and messages to it fail with from now on.
    pub kind: DeliveryFailureKind,
    /// Why, in words.
    pub reason: String,
}

/// Published when a peer refused our connection because this system's id is
/// on its block list. A cluster member that sees this has been declared dead
/// by the others and shuts itself down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockedByPeer {
    /// The peer that refused.
    pub address: String,
}

/// Published by the accepting side when it refuses a handshake: who tried,
/// and why ([`BlockedMember`](DeliveryFailureKind::BlockedMember) or
/// [`WrongCluster`](DeliveryFailureKind::WrongCluster)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeRefused {
    /// The system id the peer gave.
    pub member_id: String,
    /// The address the peer gave (empty for a client connection).
    pub address: String,
    /// Where the connection came from.
    pub peer: Option<SocketAddr>,
    /// Why, as a kind.
    pub kind: DeliveryFailureKind,
    /// Why, in words.
    pub reason: String,
}

/// Published each time a connection attempt to `address` is refused: nothing
/// listens there any more, which on a reachable host means the process that
/// did is gone (a crash or kill, not a slow or partitioned peer: those time
/// out and are not reported here). A cluster uses it to suspect a member at
/// once instead of waiting for its provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointUnreachable {
    /// The address that refused.
    pub address: String,
    /// The connection error, in words.
    pub reason: String,
}

/// Published when an outbound connection completed its handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointConnected {
    /// The peer's address.
    pub address: String,
    /// The peer's system id.
    pub member_id: String,
}

pub(crate) struct RemoteInner {
    pub(crate) system: ActorSystem,
    pub(crate) config: RemoteConfig,
    pub(crate) serialization: Serialization,
    endpoints: DashMap<Arc<str>, Arc<Endpoint>>,
    /// Addresses whose endpoint terminated recently, when, and why.
    terminated: DashMap<Arc<str>, (Instant, Failed)>,
    blocked: Mutex<HashMap<String, Instant>>,
    /// Some member was ever blocked: only then is each batch checked.
    any_blocked: AtomicBool,
    /// Member id -> address, as learnt from handshakes both ways.
    members: DashMap<String, Arc<str>>,
    pub(crate) connections: Arc<Connections>,
    pub(crate) shutdown: watch::Sender<bool>,
    started: AtomicBool,
    shutting_down: AtomicBool,
    decode_errors: LogThrottle,
}

impl RemoteInner {
    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    pub(crate) fn is_blocked(&self, member_id: &str) -> bool {
        self.any_blocked.load(Ordering::Acquire) && self.blocked.lock().contains_key(member_id)
    }

    /// A handshake told us that `member_id` is at `address`.
    pub(crate) fn learn_member(&self, member_id: &str, address: &str) {
        if !member_id.is_empty() && !address.is_empty() {
            self.members.insert(member_id.to_string(), Arc::from(address));
        }
    }

    pub(crate) fn blocked_members(&self) -> Vec<String> {
        self.blocked.lock().keys().cloned().collect()
    }

    pub(crate) fn log_decode_error(&self, peer: &str, member: &str, error: &Error) {
        if self.decode_errors.allow() {
            tracing::warn!(%peer, %member, %error, "received message dead-lettered; its sender is told why");
        }
    }

    /// The endpoint for `address`, made on first use.
    fn endpoint(self: &Arc<Self>, address: &str) -> ProcessRef {
        if let Some(e) = self.endpoints.get(address) {
            return e.value().clone();
        }
        if let Some(entry) = self.terminated.get(address)
            && entry.0.elapsed() < self.config.terminated_address_block
        {
            return Arc::new(TerminatedAddress { system: self.system.clone(), failed: entry.1.clone() });
        }
        self.terminated.remove(address);
        if self.is_shutting_down() {
            let failed = (DeliveryFailureKind::ShuttingDown, "remoting is shutting down on this system".to_string());
            return Arc::new(TerminatedAddress { system: self.system.clone(), failed });
        }
        let address: Arc<str> = Arc::from(address);
        self.endpoints.entry(address.clone()).or_insert_with(|| Endpoint::start(self, address, false)).value().clone()
    }

    /// Lets a connection the peer at `address` opened carry our messages to
    /// it as well, if our endpoint for it has no connection of its own.
    pub(crate) fn attach_inbound(self: &Arc<Self>, address: &str) -> Option<(Arc<Endpoint>, u64)> {
        if self.is_shutting_down() || address == &*self.system.address() {
            return None;
        }
        if let Some(entry) = self.terminated.get(address)
            && entry.0.elapsed() < self.config.terminated_address_block
        {
            return None;
        }
        let mut created = false;
        let endpoint = self
            .endpoints
            .entry(Arc::from(address))
            .or_insert_with(|| {
                created = true;
                self.terminated.remove(address);
                Endpoint::start(self, Arc::from(address), true)
            })
            .value()
            .clone();
        let generation = if created { Some(1) } else { endpoint.attach_inbound() };
        generation.map(|g| (endpoint, g))
    }

    /// Closes the inbound connections of the members known to be at `address`.
    pub(crate) fn close_inbound(&self, address: &str) -> usize {
        let members: Vec<String> =
            self.members.iter().filter(|m| &**m.value() == address).map(|m| m.key().clone()).collect();
        members.iter().map(|m| self.connections.close_member(m)).sum()
    }

    pub(crate) fn endpoint_terminated(&self, endpoint: &Endpoint, failed: &Failed) {
        self.endpoints.remove_if(&endpoint.address, |_, e| std::ptr::eq(Arc::as_ptr(e), endpoint));
        self.terminated.insert(endpoint.address.clone(), (Instant::now(), failed.clone()));
    }

    /// A watched remote actor terminated: forget the watch on its endpoint.
    pub(crate) fn remote_terminated(&self, peer: &str, who: &Pid, watcher: &Pid) {
        if let Some(e) = self.endpoints.get(peer) {
            e.remote_terminated(who, watcher);
        }
    }
}

/// Stands in for an address whose endpoint terminated moments ago: sends fail
/// fast instead of storming a dead peer with reconnects.
struct TerminatedAddress {
    system: ActorSystem,
    failed: Failed,
}

impl Process for TerminatedAddress {
    fn send_user_message(&self, pid: &Pid, envelope: Envelope) {
        match envelope.sender() {
            Some(sender) => {
                let (kind, reason) = self.failed.clone();
                let failure = DeliveryFailure { target: pid.clone(), kind, reason };
                self.system.send_user_message(sender, Envelope::new(failure));
            }
            None => self.system.dead_letter(pid, envelope),
        }
    }

    fn send_system_message(&self, pid: &Pid, message: SystemMessage) {
        if let SystemMessage::Watch(watcher) = message {
            let t = Terminated { who: pid.clone(), why: TerminatedReason::AddressTerminated };
            self.system.send_system_message(&watcher, SystemMessage::Terminated(t));
        }
    }

    fn is_dead(&self) -> bool {
        true
    }
}

struct Resolver(Arc<RemoteInner>);

impl AddressResolver for Resolver {
    fn resolve(&self, pid: &Pid) -> Option<ProcessRef> {
        if pid.address().is_empty() {
            return None;
        }
        Some(self.0.endpoint(pid.address()))
    }
}

/// Remoting for one actor system.
///
/// ```no_run
/// # use protoactor_actor::ActorSystem;
/// # use protoactor_remote::{Remote, RemoteConfig};
/// # async fn demo() -> Result<(), protoactor_remote::Error> {
/// let system = ActorSystem::new();
/// let remote = Remote::new(&system, RemoteConfig::bind("127.0.0.1", 0));
/// let address = remote.start().await?;
/// println!("listening on {address}");
/// remote.shutdown(true).await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Remote {
    inner: Arc<RemoteInner>,
    server: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote").field("address", &self.inner.system.address()).finish()
    }
}

impl Remote {
    /// Remoting for `system` with `config`; nothing listens until [`start`](Self::start).
    pub fn new(system: &ActorSystem, config: RemoteConfig) -> Self {
        let now = Instant::now();
        let blocked: HashMap<String, Instant> = config.blocked_members.iter().map(|m| (m.clone(), now)).collect();
        let any_blocked = AtomicBool::new(!blocked.is_empty());
        let connections = Connections::new(config.max_pending_connections, config.handshake_timeout);
        let (shutdown, _) = watch::channel(false);
        let mut serialization = config.serialization.clone();
        serialization.register_protobuf_named::<ActorPidRequest>("remote.ActorPidRequest");
        serialization.register_protobuf_named::<ActorPidResponse>("remote.ActorPidResponse");
        let inner = Arc::new(RemoteInner {
            system: system.clone(),
            serialization,
            config,
            endpoints: DashMap::new(),
            terminated: DashMap::new(),
            blocked: Mutex::new(blocked),
            any_blocked,
            members: DashMap::new(),
            connections,
            shutdown,
            started: AtomicBool::new(false),
            shutting_down: AtomicBool::new(false),
            decode_errors: LogThrottle::new(10, Duration::from_secs(1)),
        });
        Remote { inner, server: Arc::new(Mutex::new(None)) }
    }

    /// Binds, sets the system's address to the bound (or advertised) one,
    /// and starts serving. Returns the address.
    pub async fn start(&self) -> Result<String, Error> {
        if self.inner.started.swap(true, Ordering::AcqRel) {
            return Err(Error::AlreadyStarted);
        }
        let config = &self.inner.config;
        let requested = format!("{}:{}", config.host, config.port);
        let listener = tokio::net::TcpListener::bind(&requested)
            .await
            .map_err(|e| Error::Bind { address: requested.clone(), reason: e.to_string() })?;
        let bound: SocketAddr =
            listener.local_addr().map_err(|e| Error::Bind { address: requested.clone(), reason: e.to_string() })?;
        let host = config.advertised_host.clone().unwrap_or_else(|| config.host.clone());
        let address = format!("{host}:{}", bound.port());
        let system = &self.inner.system;
        system.set_address(&address);
        system.add_address_resolver(Arc::new(Resolver(self.inner.clone())));
        let kinds = Arc::new(config.kinds.clone());
        system
            .root()
            .spawn_named(Props::from_producer(move || Activator { kinds: kinds.clone() }), ACTIVATOR)
            .map_err(|e| Error::Transport(format!("could not start the activator: {e}")))?;

        let service = RemotingServer { remote: self.inner.clone() };
        let shutdown = self.inner.shutdown.subscribe();
        // Our own accept loop: it caps connections that have not shaken
        // hands, closes them at their deadline, and closes a blocked
        // member's connections (see `conn`).
        let incoming =
            self.inner.connections.clone().incoming(listener, config.tls.as_ref().map(|tls| tls.handshake_timeout()));
        let tls = match &config.tls {
            Some(tls) => Some((tokio_rustls::TlsAcceptor::from(tls.server_config()?), tls.handshake_timeout())),
            None => None,
        };
        let listening = crate::server::Listening {
            service,
            tls,
            max_streams: MAX_STREAMS_PER_CONNECTION,
            stall: config.stall_timeout,
        };
        let task = system.runtime().spawn(crate::server::serve(incoming, listening, shutdown));
        *self.server.lock() = Some(task);
        tracing::info!(%address, system = %system.id(), "remoting started");
        Ok(address)
    }

    /// Stops serving and closes every endpoint. Graceful: peers are told to
    /// disconnect and queued messages get a short time to flush.
    pub async fn shutdown(&self, graceful: bool) {
        if self.inner.shutting_down.swap(true, Ordering::AcqRel) {
            return;
        }
        if graceful {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = self.inner.shutdown.send(true);
        let server = self.server.lock().take();
        if let Some(mut task) = server {
            // Peers are told to disconnect; one that does not (frozen, or
            // gone without a word) is cut off after the grace period rather
            // than holding the server's graceful shutdown for its full wait.
            let grace = if graceful { SHUTDOWN_GRACE } else { Duration::ZERO };
            if tokio::time::timeout(grace, &mut task).await.is_err() {
                self.inner.connections.close_all();
                if tokio::time::timeout(Duration::from_secs(1), task).await.is_err() {
                    tracing::warn!("remoting server did not stop in time");
                }
            }
        }
        tracing::info!(address = %self.inner.system.address(), "remoting stopped");
    }

    /// The actor system.
    pub fn system(&self) -> &ActorSystem {
        &self.inner.system
    }

    /// This system's address (after `start`).
    pub fn address(&self) -> Arc<str> {
        self.inner.system.address()
    }

    /// The types this system can send and receive.
    pub fn serialization(&self) -> &Serialization {
        &self.inner.serialization
    }

    /// Blocks `member_id`: it is heard no more. Its connections to this
    /// system are closed now and new ones are refused at the handshake;
    /// anything still arriving from it is dead-lettered with that reason;
    /// the endpoint to it terminates (requests to it fail as
    /// [`DeliveryFailureKind::BlockedMember`]).
    pub fn block(&self, member_id: &str) {
        let inner = &self.inner;
        if inner.blocked.lock().insert(member_id.to_string(), Instant::now()).is_some() {
            return;
        }
        inner.any_blocked.store(true, Ordering::Release);
        let closed = inner.connections.close_member(member_id);
        let address = inner.members.get(member_id).map(|a| a.value().clone());
        tracing::info!(member = member_id, ?address, closed, "member blocked");
        if let Some(address) = address
            && let Some(endpoint) = inner.endpoints.get(&*address).map(|e| e.value().clone())
        {
            endpoint.terminate(DeliveryFailureKind::BlockedMember, &format!("the member {member_id} is blocked"));
        }
    }

    /// How many inbound connections are open, and how many of them have not
    /// completed a handshake.
    pub fn connection_stats(&self) -> ConnectionStats {
        self.inner.connections.stats()
    }

    /// True if `member_id` is blocked.
    pub fn is_blocked(&self, member_id: &str) -> bool {
        self.inner.is_blocked(member_id)
    }

    /// Closes the connection to `address` now, as if it had failed: watchers
    /// get `Terminated`, pending requests fail fast and queued messages go
    /// to dead letters. The cluster calls it for members that left, rather
    /// than waiting for connection retries to run out.
    pub fn terminate_endpoint(&self, address: &str, reason: &str) {
        let endpoint = self.inner.endpoints.get(address).map(|e| e.value().clone());
        if let Some(endpoint) = endpoint {
            endpoint.terminate(DeliveryFailureKind::EndpointGone, reason);
        }
    }

    /// Spawns an actor of `kind` named `name` on the system at `address`.
    pub async fn spawn_named(&self, address: &str, name: &str, kind: &str, timeout: Duration) -> Result<Pid, Error> {
        let activator = Pid::new(address, ACTIVATOR);
        let request = ActorPidRequest { name: name.to_string(), kind: kind.to_string() };
        let response: ActorPidResponse = self.inner.system.root().request_future(&activator, request, timeout).await?;
        let pid = response.pid.as_ref().map(|p| crate::wire::pid_from_wire(p, address));
        match (ResponseStatusCode::try_from(response.status_code), pid) {
            (Ok(ResponseStatusCode::Ok), Some(pid)) => Ok(pid),
            (Ok(ResponseStatusCode::ProcessNameAlreadyExist), Some(existing)) => {
                Err(Error::NameTaken { name: name.to_string(), address: address.to_string(), existing })
            }
            (Ok(ResponseStatusCode::UnknownKind), _) => {
                Err(Error::UnknownKind { kind: kind.to_string(), address: address.to_string() })
            }
            _ => {
                Err(Error::SpawnFailed { kind: kind.to_string(), address: address.to_string(), reason: response.error })
            }
        }
    }

    /// Spawns an actor of `kind` with a generated name on the system at `address`.
    pub async fn spawn(&self, address: &str, kind: &str, timeout: Duration) -> Result<Pid, Error> {
        self.spawn_named(address, "", kind, timeout).await
    }
}
