//! [`ActorSystem`]: the registry, event stream, dead letters and root of a
//! set of actors. Several systems can live in one process.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use tokio::runtime::{Handle, Runtime};
use tokio::sync::Notify;

use crate::cell::{Incarnation, StartActor};
use crate::error::Error;
use crate::event_stream::EventStream;
use crate::future::ResponseFuture;
use crate::lane::Lanes;
use crate::message::{
    AnyMessage, DeadLetterResponse, Envelope, Failure, MessageHeader, SystemMessage, Terminated, TerminatedReason,
};
use crate::middleware::SpawnNext;
use crate::pid::{LOCAL_ADDRESS, Pid};
use crate::process::{AddressResolver, Process, ProcessRef};
use crate::props::Props;
use crate::registry::ProcessRegistry;
use crate::root::RootContext;
use crate::supervision::{OneForOneStrategy, Supervisor, SupervisorStrategy};
use crate::throttle::{Throttle, Valve};
use crate::timer::Scheduler;

/// Settings of an [`ActorSystem`].
#[derive(Clone)]
pub struct ActorSystemConfig {
    dead_letter_throttle_count: u64,
    dead_letter_throttle_interval: Duration,
    guardian_strategy: Arc<dyn SupervisorStrategy>,
    shutdown_timeout: Duration,
    runtime: Option<Handle>,
    request_spin: Duration,
}

impl fmt::Debug for ActorSystemConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActorSystemConfig")
            .field("dead_letter_throttle_count", &self.dead_letter_throttle_count)
            .field("dead_letter_throttle_interval", &self.dead_letter_throttle_interval)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("request_spin", &self.request_spin)
            .finish()
    }
}

impl Default for ActorSystemConfig {
    fn default() -> Self {
        ActorSystemConfig {
            dead_letter_throttle_count: 3,
            dead_letter_throttle_interval: Duration::from_secs(1),
            guardian_strategy: Arc::new(OneForOneStrategy::default()),
            shutdown_timeout: Duration::from_secs(10),
            runtime: None,
            request_spin: Duration::from_micros(100),
        }
    }
}

impl ActorSystemConfig {
    /// Logs at most `count` dead letters per `interval` (default 3 per second);
    /// every dead letter is still published on the event stream.
    pub fn with_dead_letter_throttle(mut self, count: u64, interval: Duration) -> Self {
        self.dead_letter_throttle_count = count;
        self.dead_letter_throttle_interval = interval;
        self
    }

    /// Supervises actors spawned from the root context (default: restart up
    /// to 10 times in 10 s, then stop).
    pub fn with_guardian_strategy(mut self, strategy: impl SupervisorStrategy) -> Self {
        self.guardian_strategy = Arc::new(strategy);
        self
    }

    /// How long [`ActorSystem::shutdown`] waits for actors to stop (default 10 s).
    pub fn with_shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// How long a request awaited outside tokio's tasks (in `block_on`,
    /// the body of `#[tokio::main]`) keeps its thread busy waiting for the
    /// reply before parking it (default 100 µs; `Duration::ZERO` turns it
    /// off).
    ///
    /// Waking a parked thread on an idle core costs tens of microseconds
    /// on most VMs, and a remote round trip from `main` took about 45 µs
    /// with the busy wait against about 80 µs without it (two processes,
    /// 2-core VM). It runs only outside tokio's tasks, on a multi-threaded
    /// runtime, on more than one core; it yields the core to other runnable
    /// threads and backs off on a thread whose replies keep coming after
    /// the bound. Futures polled by the same `block_on` (`join!`,
    /// `select!`, a `LocalSet`) wait for it like for any poll, up to the
    /// bound. Turn it off where a blocked thread must not use CPU while it
    /// waits.
    pub fn with_request_spin(mut self, bound: Duration) -> Self {
        self.request_spin = bound;
        self
    }

    /// The bound set by [`with_request_spin`](Self::with_request_spin).
    pub fn request_spin(&self) -> Duration {
        self.request_spin
    }

    /// Runs actors on this tokio runtime instead of the current one.
    pub fn with_runtime(mut self, handle: Handle) -> Self {
        self.runtime = Some(handle);
        self
    }
}

/// A dead letter: a message sent to a pid with no living process behind it.
#[derive(Debug)]
pub struct DeadLetterEvent {
    /// Where the message was sent.
    pub pid: Pid,
    /// The message.
    pub message: AnyMessage,
    /// Who sent it.
    pub sender: Option<Pid>,
    /// Its headers.
    pub header: Option<MessageHeader>,
}

/// Starts a value on a cache-line pair of its own (what x86 prefetches
/// together), so writes to it do not evict what other threads only read.
#[repr(align(128))]
struct CacheLine<T>(T);

impl<T> std::ops::Deref for CacheLine<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// `align(128)`: the `Arc`'s reference counts, bumped by every actor
/// spawned and stopped, sit on their own line before these fields.
#[repr(align(128))]
pub(crate) struct SystemInner {
    id: String,
    /// Read on every spawn and remote delivery; a read lock writes its word,
    /// so it gets a line of its own.
    address: CacheLine<RwLock<Arc<str>>>,
    registry: ProcessRegistry,
    event_stream: EventStream,
    dead_letter: ProcessRef,
    dead_letter_throttle: Throttle,
    config: ActorSystemConfig,
    handle: Handle,
    own_runtime: Mutex<Option<Runtime>>,
    shutting_down: AtomicBool,
    /// Written on every spawn and stop, from any thread: kept off the lines
    /// of the fields every actor only reads.
    live_actors: CacheLine<AtomicUsize>,
    all_stopped: Notify,
    lanes: Lanes,
    /// The configured request spin, or zero where no reply can come while
    /// a thread waits (a current-thread runtime: see the `spin` module).
    request_spin: Duration,
}

impl Drop for SystemInner {
    fn drop(&mut self) {
        if let Some(rt) = self.own_runtime.get_mut().take() {
            rt.shutdown_background();
        }
    }
}

/// A set of actors with their registry, event stream and dead letters.
///
/// Cheap to clone (a handle). Created inside a tokio runtime it uses that
/// runtime; otherwise it starts its own multi-threaded one.
#[derive(Clone)]
pub struct ActorSystem(pub(crate) Arc<SystemInner>);

impl fmt::Debug for ActorSystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActorSystem").field("id", &self.0.id).field("address", &*self.0.address.read()).finish()
    }
}

impl Default for ActorSystem {
    fn default() -> Self {
        Self::new()
    }
}

struct DeadLetterProcess {
    system: Weak<SystemInner>,
}

impl Process for DeadLetterProcess {
    fn send_user_message(&self, pid: &Pid, envelope: Envelope) {
        if let Some(inner) = self.system.upgrade() {
            ActorSystem(inner).dead_letter(pid, envelope);
        }
    }

    fn send_system_message(&self, pid: &Pid, message: SystemMessage) {
        if let Some(inner) = self.system.upgrade() {
            ActorSystem(inner).dead_system_message(pid, message, TerminatedReason::NotFound);
        }
    }
}

impl ActorSystem {
    /// A system with the default configuration.
    pub fn new() -> Self {
        Self::with_config(ActorSystemConfig::default())
    }

    /// A system with the given configuration.
    pub fn with_config(config: ActorSystemConfig) -> Self {
        let (handle, own_runtime) = match config.runtime.clone().or_else(|| Handle::try_current().ok()) {
            Some(handle) => (handle, None),
            None => {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .thread_name("protoactor")
                    .build()
                    .unwrap_or_else(|e| panic!("could not start a tokio runtime for the actor system: {e}"));
                (rt.handle().clone(), Some(rt))
            }
        };
        let id = format!("{:016x}", fastrand::u64(..));
        let throttle = Throttle::new(config.dead_letter_throttle_count, config.dead_letter_throttle_interval);
        let lanes = Lanes::new(&handle);
        let request_spin = match handle.runtime_flavor() {
            tokio::runtime::RuntimeFlavor::MultiThread => config.request_spin,
            _ => Duration::ZERO,
        };
        let inner = Arc::new_cyclic(|weak: &Weak<SystemInner>| SystemInner {
            id,
            address: CacheLine(RwLock::new(Arc::from(LOCAL_ADDRESS))),
            registry: ProcessRegistry::new(),
            event_stream: EventStream::new(),
            dead_letter: Arc::new(DeadLetterProcess { system: weak.clone() }),
            dead_letter_throttle: throttle,
            config,
            handle,
            own_runtime: Mutex::new(own_runtime),
            shutting_down: AtomicBool::new(false),
            live_actors: CacheLine(AtomicUsize::new(0)),
            all_stopped: Notify::new(),
            lanes,
            request_spin,
        });
        tracing::debug!(system = %inner.id, "actor system started");
        ActorSystem(inner)
    }

    /// A random id, unique per system instance.
    pub fn id(&self) -> &str {
        &self.0.id
    }

    /// The address pids of this system carry ([`LOCAL_ADDRESS`] until remoting sets one).
    pub fn address(&self) -> Arc<str> {
        self.0.address.read().clone()
    }

    /// Sets the address (remoting does this when it binds).
    pub fn set_address(&self, address: &str) {
        *self.0.address.write() = Arc::from(address);
    }

    /// The root context: spawn and message actors from outside any actor.
    pub fn root(&self) -> RootContext {
        RootContext::new(self.clone())
    }

    /// A reply address for requests sent by hand; see [`ResponseFuture`].
    pub fn response_future<R: Send + 'static>(&self) -> ResponseFuture<R> {
        ResponseFuture::new(self)
    }

    /// The event stream.
    pub fn event_stream(&self) -> &EventStream {
        &self.0.event_stream
    }

    /// Timers that send messages later or repeatedly.
    pub fn scheduler(&self) -> Scheduler {
        Scheduler::new(self.clone())
    }

    /// The tokio runtime the actors run on.
    pub fn runtime(&self) -> &Handle {
        &self.0.handle
    }

    /// How long a request awaited outside tokio's tasks may busy-wait for
    /// its reply (zero on a current-thread runtime).
    pub(crate) fn request_spin(&self) -> Duration {
        self.0.request_spin
    }

    /// The configuration.
    pub fn config(&self) -> &ActorSystemConfig {
        &self.0.config
    }

    pub(crate) fn registry(&self) -> &ProcessRegistry {
        &self.0.registry
    }

    #[inline]
    pub(crate) fn key(&self) -> usize {
        Arc::as_ptr(&self.0) as usize
    }

    /// The pid of the dead-letter sink.
    pub fn dead_letter_pid(&self) -> Pid {
        Pid::resolved(self.address(), Arc::from("deadletter"), self.key(), self.0.dead_letter.clone())
    }

    /// Number of actors alive in this system.
    pub fn actor_count(&self) -> usize {
        self.0.live_actors.load(Ordering::Acquire)
    }

    /// True once [`shutdown`](Self::shutdown) has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.0.shutting_down.load(Ordering::Acquire)
    }

    /// Starts a new actor on one of the system's lanes (see [`crate::lane`]).
    pub(crate) fn start_actor(&self, process: Arc<dyn StartActor>, incarnation: Incarnation) {
        self.0.lanes.start(process, incarnation);
    }

    pub(crate) fn spawn_task<F>(&self, future: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.0.handle.spawn(future)
    }

    // ----- processes -----

    /// Registers a process under `id` (extension crates: remote endpoints,
    /// cluster services). Fails if the id is taken.
    pub fn register_process(&self, id: &str, process: ProcessRef) -> Result<Pid, Error> {
        let id: Arc<str> = Arc::from(id);
        if !self.0.registry.try_add(&id, process.clone()) {
            return Err(Error::NameExists(id.to_string()));
        }
        Ok(Pid::resolved(self.address(), id, self.key(), process))
    }

    /// Registers a process under `prefix` plus a generated suffix.
    pub(crate) fn register_generated(&self, prefix: &str, process: ProcessRef) -> Pid {
        loop {
            let id = crate::registry::joined(prefix, self.0.registry.next_id().as_str());
            if self.0.registry.try_add(&id, process.clone()) {
                return Pid::resolved(self.address(), id, self.key(), process);
            }
        }
    }

    /// True if a process is registered locally under `pid`'s id.
    pub fn is_registered(&self, pid: &Pid) -> bool {
        self.0.registry.get_local(pid.id()).is_some()
    }

    /// Removes a registered process.
    pub fn remove_process(&self, pid: &Pid) {
        self.0.registry.remove(pid.id());
    }

    /// Adds a resolver for pids at other addresses (remoting).
    pub fn add_address_resolver(&self, resolver: Arc<dyn AddressResolver>) {
        self.0.registry.add_resolver(resolver);
    }

    /// True if `address` names this system.
    pub fn is_local_address(&self, address: &str) -> bool {
        address == LOCAL_ADDRESS || address == &**self.0.address.read()
    }

    /// The process behind `pid`: a local actor, a remote endpoint, or dead letters.
    pub fn resolve(&self, pid: &Pid) -> ProcessRef {
        if let Some(p) = pid.cached_for(self.key()) {
            return p.clone();
        }
        self.resolve_slow(pid)
    }

    #[cold]
    fn resolve_slow(&self, pid: &Pid) -> ProcessRef {
        let found = if self.is_local_address(pid.address()) {
            self.0.registry.get_local(pid.id())
        } else {
            self.0.registry.resolve_remote(pid)
        };
        match found {
            Some(p) => {
                pid.cache(self.key(), &p);
                p
            }
            None => self.0.dead_letter.clone(),
        }
    }

    /// Delivers a user message to `pid` (no sender middleware).
    #[inline]
    pub fn send_user_message(&self, pid: &Pid, envelope: Envelope) {
        match pid.cached_for(self.key()) {
            Some(p) => p.send_user_message(pid, envelope),
            None => self.resolve_slow(pid).send_user_message(pid, envelope),
        }
    }

    /// Delivers several user messages to `pid` in order, leaving `envelopes`
    /// empty (no sender middleware).
    pub fn send_user_messages(&self, pid: &Pid, envelopes: &mut Vec<Envelope>) {
        match pid.cached_for(self.key()) {
            Some(p) => p.send_user_messages(pid, envelopes),
            None => self.resolve_slow(pid).send_user_messages(pid, envelopes),
        }
    }

    /// Delivers a system message to `pid`.
    pub fn send_system_message(&self, pid: &Pid, message: SystemMessage) {
        self.resolve(pid).send_system_message(pid, message);
    }

    /// Stops `pid`.
    pub fn stop(&self, pid: &Pid) {
        self.resolve(pid).stop(pid);
    }

    // ----- dead letters -----

    /// Hands a message for `pid` to dead letters: published as a
    /// [`DeadLetterEvent`], logged (throttled), and answered with a
    /// [`DeadLetterResponse`] when it carried a sender so a waiting request
    /// fails at once.
    pub fn dead_letter(&self, pid: &Pid, envelope: Envelope) {
        let (message, sender, header) = envelope.into_parts();
        let type_name = message.type_name();
        match self.0.dead_letter_throttle.check() {
            (Valve::Open, held) | (Valve::Closing, held) => {
                if held > 0 {
                    tracing::info!(system = %self.0.id, held_back = held, "more dead letters were not logged");
                }
                tracing::info!(system = %self.0.id, target = %pid, message = type_name, sender = ?sender, "dead letter");
            }
            (Valve::Closed, _) => {}
        }
        let is_response = message.is::<DeadLetterResponse>() || message.is::<crate::message::DeliveryFailure>();
        let reply_to = if is_response { None } else { sender.clone() };
        self.0.event_stream.publish(DeadLetterEvent { pid: pid.clone(), message, sender, header });
        if let Some(sender) = reply_to {
            self.send_user_message(&sender, Envelope::new(DeadLetterResponse { target: pid.clone() }));
        }
    }

    /// A system message for a process that is gone: a watch is answered at once.
    pub(crate) fn dead_system_message(&self, pid: &Pid, message: SystemMessage, why: TerminatedReason) {
        if let SystemMessage::Watch(watcher) = message {
            self.send_system_message(&watcher, SystemMessage::Terminated(Terminated { who: pid.clone(), why }));
        }
    }

    // ----- spawning -----

    pub(crate) fn spawn_with_id(&self, props: &Props, id: &str, parent: Option<&Pid>) -> Result<Pid, Error> {
        if self.is_shutting_down() {
            return Err(Error::ShuttingDown);
        }
        let _span = tracing::debug_span!("spawn", id = %id).entered();
        SpawnNext { rest: &props.inner().spawn_middleware, system: self }.spawn(id, props, parent)
    }

    pub(crate) fn actor_started(&self) {
        self.0.live_actors.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn actor_stopped(&self) {
        if self.0.live_actors.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.all_stopped.notify_waiters();
        }
    }

    /// Failure of an actor without a parent: the guardian strategy decides.
    pub(crate) fn handle_root_failure(&self, failure: Failure) {
        let strategy = self.0.config.guardian_strategy.clone();
        strategy.handle_failure(&RootSupervisor { system: self, child: failure.who.clone() }, &failure);
    }

    /// Stops every actor and waits (up to the configured shutdown timeout)
    /// until they have all terminated. New spawns fail from now on.
    pub async fn shutdown(&self) {
        self.0.shutting_down.store(true, Ordering::Release);
        tracing::debug!(system = %self.0.id, actors = self.actor_count(), "actor system shutting down");
        let address = self.address();
        for (id, process) in self.0.registry.all() {
            process.stop(&Pid::new(address.clone(), id.as_str()));
        }
        let wait = async {
            loop {
                let notified = self.0.all_stopped.notified();
                if self.actor_count() == 0 {
                    return;
                }
                notified.await;
            }
        };
        if tokio::time::timeout(self.0.config.shutdown_timeout, wait).await.is_err() {
            tracing::warn!(system = %self.0.id, remaining = self.actor_count(), "shutdown timed out with actors still running");
        }
    }
}

struct RootSupervisor<'a> {
    system: &'a ActorSystem,
    child: Pid,
}

impl Supervisor for RootSupervisor<'_> {
    fn children(&self) -> Vec<Pid> {
        vec![self.child.clone()]
    }

    fn restart_children(&self, pids: &[Pid]) {
        for pid in pids {
            self.system.send_system_message(pid, SystemMessage::Restart);
        }
    }

    fn stop_children(&self, pids: &[Pid]) {
        for pid in pids {
            self.system.stop(pid);
        }
    }

    fn resume_children(&self, pids: &[Pid]) {
        for pid in pids {
            self.system.send_system_message(pid, SystemMessage::Resume);
        }
    }

    fn escalate_failure(&self, failure: &Failure) {
        tracing::warn!(child = %failure.who, reason = %failure.reason, "failure escalated past the root; stopping the actor");
        self.system.stop(&failure.who);
    }

    fn system(&self) -> &ActorSystem {
        self.system
    }
}
