//! Endpoints: one per remote address. An endpoint is the process every pid
//! at that address resolves to. A sender serializes its message straight
//! into the endpoint's open batch; the connection's outbound stream ships
//! whole batches as frames. The transport is our own connection to the peer,
//! or the response stream of the peer's connection to us. A writer task
//! dials when there is neither, watches the connection, reconnects with
//! backoff, and after too many failed attempts terminates the endpoint.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet, VecDeque};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures_util::Stream;

use bytes::Bytes;
use parking_lot::Mutex;
use protoactor_actor::{
    DeliveryFailure, DeliveryFailureKind, Envelope, Pid, Process, SystemMessage, Terminated, TerminatedReason,
};
use tonic::Streaming;

use crate::batch::{self, OpenBatch};
use crate::codec::{Inbound, Outbound, WireCodec};
use crate::error::{Error, FRAME_OVERHEAD};
use crate::proto::remote_message::MessageType;
use crate::proto::{ConnectRequest, RemoteMessage, ServerConnection, connect_request};
use crate::remote::{EndpointConnected, EndpointTerminated, EndpointUnreachable, RemoteInner};
use crate::wire::{self, UndeliveredRemoteMessage};

pub(crate) struct Endpoint {
    pub(crate) address: Arc<str>,
    /// This system's address, fixed once remoting started (endpoints exist only after that).
    local: Arc<str>,
    remote: Arc<RemoteInner>,
    /// What is waiting to be sent, and the state of the connection sending it.
    outbox: Mutex<Outbox>,
    terminated: AtomicBool,
    /// Why it terminated (set before `terminated`).
    termination: std::sync::OnceLock<Failed>,
    /// Wakes the writer when the endpoint is terminated from outside it.
    stop: tokio::sync::Notify,
    /// Signalled when the transport changes (attached, detached, drained).
    transport_changed: tokio::sync::Notify,
    /// Remote target id -> local watchers, to tell them if the address dies.
    watches: Mutex<HashMap<Arc<str>, Vec<Pid>>>,
    /// Local request futures waiting on an answer from this address.
    pending: Mutex<HashSet<Pid, crate::batch::WordHash>>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint").field("address", &self.address).finish()
    }
}

impl Endpoint {
    /// Creates the endpoint and starts its writer. With `inbound`, the
    /// connection the peer just opened carries this endpoint's messages
    /// (generation 1) and nothing is dialed while it lasts.
    pub(crate) fn start(remote: &Arc<RemoteInner>, address: Arc<str>, inbound: bool) -> Arc<Endpoint> {
        let local = remote.system.address();
        let endpoint = Arc::new(Endpoint {
            address,
            local: local.clone(),
            remote: remote.clone(),
            outbox: Mutex::new(Outbox {
                normal: OpenBatch::new(local.clone()),
                priority: OpenBatch::new(local),
                sealed: VecDeque::new(),
                sealed_priority: VecDeque::new(),
                queued: 0,
                closed: false,
                generation: u64::from(inbound),
                phase: if inbound { Phase::Open } else { Phase::Idle },
                inbound,
                waker: None,
                sent_batches: 0,
            }),
            terminated: AtomicBool::new(false),
            termination: std::sync::OnceLock::new(),
            stop: tokio::sync::Notify::new(),
            transport_changed: tokio::sync::Notify::new(),
            watches: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashSet::default()),
        });
        let writer = Writer { endpoint: endpoint.clone() };
        let stopper = endpoint.clone();
        remote.system.runtime().spawn(async move {
            // Terminated from outside (a member left): drop the connection
            // now; anything still queued is for a peer that is gone.
            tokio::select! {
                () = writer.run() => {}
                () = stopper.stop.notified() => {}
            }
        });
        endpoint
    }

    /// A message that will not be delivered: a waiting request fails at once
    /// with the kind and reason, anything else is published as a dead letter
    /// (with its bytes and the reason, if it was encoded).
    fn undeliverable(&self, pid: &Pid, envelope: Envelope, failed: Failed, encoded: Option<(&str, &[u8])>) {
        let system = &self.remote.system;
        let (message, sender, _) = envelope.into_parts();
        let (kind, reason) = failed;
        match sender {
            Some(sender) => {
                system.send_user_message(&sender, Envelope::new(DeliveryFailure { target: pid.clone(), kind, reason }))
            }
            None => {
                tracing::debug!(target = %pid, message = message.type_name(), %kind, %reason, "remote message not delivered");
                let dead = match encoded {
                    Some((type_name, data)) => Envelope::new(UndeliveredRemoteMessage {
                        type_name: type_name.to_string(),
                        data: data.to_vec(),
                        kind,
                        reason,
                    }),
                    None => Envelope::from_boxed(message),
                };
                system.dead_letter(pid, dead)
            }
        }
    }

    /// Why this endpoint takes no more messages.
    fn termination(&self) -> Failed {
        self.termination.get().cloned().unwrap_or_else(|| {
            (DeliveryFailureKind::EndpointGone, format!("the connection to {} is closed", self.address))
        })
    }

    /// Appends `m` to its lane; the reason when it cannot be queued.
    fn enqueue(&self, m: &batch::Message<'_>, cost: usize, priority: bool) -> Result<(), Failed> {
        let config = &self.remote.config;
        if let Some(sender) = m.sender
            && sender.id().starts_with("future$")
        {
            self.pending.lock().insert(sender.clone());
        }
        // Room for the RemoteMessage key and length around the body.
        let max_body = config.max_frame_size.saturating_sub(16);
        let mut outbox = self.outbox.lock();
        if outbox.closed {
            drop(outbox);
            return Err(self.termination());
        }
        let Outbox { normal, priority: urgent, sealed, sealed_priority, queued, .. } = &mut *outbox;
        if priority {
            if !urgent.is_empty() && (urgent.len() + cost > max_body || urgent.messages() >= config.batch_size) {
                sealed_priority.push_back(urgent.take().0);
            }
            urgent.push(m);
        } else {
            if *queued >= config.endpoint_queue_size {
                return Err((
                    DeliveryFailureKind::QueueFull,
                    format!(
                        "the queue to {} is full ({} messages); the peer is slow or unreachable",
                        self.address, config.endpoint_queue_size
                    ),
                ));
            }
            if !normal.is_empty() && (normal.len() + cost > max_body || normal.messages() >= config.batch_size) {
                sealed.push_back(normal.take());
            }
            normal.push(m);
            *queued += 1;
        }
        let waker = outbox.waker.take();
        drop(outbox);
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    /// Watchers, pending requests and queued messages learn that the address is gone.
    pub(crate) fn terminate(&self, kind: DeliveryFailureKind, reason: &str) {
        let failed: Failed = (kind, format!("the endpoint for {} terminated: {reason}", self.address));
        let _ = self.termination.set(failed.clone());
        if self.terminated.swap(true, Ordering::AcqRel) {
            return;
        }
        let failed = self.termination.get().cloned().unwrap_or(failed);
        tracing::info!(address = %self.address, %kind, reason, "endpoint terminated");
        self.stop.notify_one();
        self.remote.endpoint_terminated(self, &failed);
        // Later sends find the outbox closed and fail at once.
        let queued = {
            let mut outbox = self.outbox.lock();
            outbox.closed = true;
            outbox.retire();
            let mut frames: Vec<Bytes> = outbox.sealed_priority.drain(..).collect();
            frames.push(outbox.priority.take().0);
            let sealed: Vec<Bytes> = outbox.sealed.drain(..).map(|(b, _)| b).collect();
            frames.extend(sealed);
            frames.push(outbox.normal.take().0);
            outbox.queued = 0;
            frames
        };
        for body in queued.into_iter().filter(|b| !b.is_empty()) {
            self.dead_letter_batch(body, &failed);
        }
        let system = &self.remote.system;
        let watches = std::mem::take(&mut *self.watches.lock());
        for (target, watchers) in watches {
            let who = Pid::new(self.address.clone(), target);
            for watcher in watchers {
                let t = Terminated { who: who.clone(), why: TerminatedReason::AddressTerminated };
                system.send_system_message(&watcher, SystemMessage::Terminated(t));
            }
        }
        let pending = std::mem::take(&mut *self.pending.lock());
        let gone = Pid::new(self.address.clone(), "");
        for future in pending {
            let failure = DeliveryFailure { target: gone.clone(), kind: failed.0, reason: failed.1.clone() };
            system.send_user_message(&future, Envelope::new(failure));
        }
        system.event_stream().publish(EndpointTerminated {
            address: self.address.to_string(),
            kind,
            reason: reason.to_string(),
        });
    }
}

impl Endpoint {
    /// Messages that were queued but will never be sent: requesters get a
    /// delivery failure, the rest are dead letters with their bytes.
    fn dead_letter_batch(&self, body: Bytes, (kind, reason): &Failed) {
        let Ok(batch) = crate::codec::parse_batch(body) else {
            tracing::error!(address = %self.address, "could not read back a queued batch");
            return;
        };
        let system = &self.remote.system;
        for e in &batch.envelopes {
            let target = usize::try_from(e.target).ok().and_then(|i| batch.targets.get(i));
            let target = Pid::new(self.address.clone(), target.map_or("", String::as_str));
            match wire::sender_index(e.sender).and_then(|i| batch.senders.get(i)) {
                Some(sender) => {
                    let sender = wire::pid_from_wire(sender, &self.local);
                    let failure = DeliveryFailure { target, kind: *kind, reason: reason.clone() };
                    system.send_user_message(&sender, Envelope::new(failure));
                }
                None => {
                    let type_name = usize::try_from(e.type_id).ok().and_then(|i| batch.type_names.get(i));
                    let message = UndeliveredRemoteMessage {
                        type_name: type_name.cloned().unwrap_or_default(),
                        data: batch.data(e).to_vec(),
                        kind: *kind,
                        reason: reason.clone(),
                    };
                    system.dead_letter(&target, Envelope::new(message));
                }
            }
        }
    }
}

thread_local! {
    /// Where messages are encoded before being appended under the lock.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's scratch buffer (a fresh one if a dead-letter
/// subscriber sends from inside `f`).
fn with_scratch<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut scratch) => {
            let out = f(&mut scratch);
            if scratch.capacity() > 64 * 1024 {
                *scratch = Vec::new();
            }
            out
        }
        Err(_) => f(&mut Vec::new()),
    })
}

impl Process for Endpoint {
    fn send_user_message(&self, pid: &Pid, envelope: Envelope) {
        let remote = &self.remote;
        with_scratch(|scratch| {
            let encoded = match wire::encode_user(&remote.serialization, &self.local, &envelope, scratch) {
                Ok(e) => e,
                Err(error) => {
                    tracing::warn!(target = %pid, %error, "message not sent");
                    return self.undeliverable(pid, envelope, (error.delivery_kind(), error.to_string()), None);
                }
            };
            let m = batch::Message {
                type_name: encoded.type_name,
                serializer_id: encoded.serializer_id,
                payload: scratch,
                target: pid,
                sender: envelope.sender(),
                header: envelope.header(),
            };
            let bytes = Some((encoded.type_name, scratch.as_slice()));
            // The whole envelope (payload, headers, ids) must fit one frame
            // with room for the batch's own framing.
            let max = remote.config.max_frame_size;
            let size = m.cost();
            if size > max.saturating_sub(FRAME_OVERHEAD) {
                let error = Error::MessageTooLarge { type_name: encoded.type_name.to_string(), size, max };
                return self.undeliverable(pid, envelope, (error.delivery_kind(), error.to_string()), bytes);
            }
            if self.terminated.load(Ordering::Acquire) {
                return self.undeliverable(pid, envelope, self.termination(), bytes);
            }
            if let Err(reason) = self.enqueue(&m, size, encoded.priority) {
                self.undeliverable(pid, envelope, reason, bytes);
            }
        })
    }

    fn send_system_message(&self, pid: &Pid, message: SystemMessage) {
        let system = &self.remote.system;
        if self.terminated.load(Ordering::Acquire) {
            if let SystemMessage::Watch(watcher) = message {
                let t = Terminated { who: pid.clone(), why: TerminatedReason::AddressTerminated };
                system.send_system_message(&watcher, SystemMessage::Terminated(t));
            }
            return;
        }
        match &message {
            SystemMessage::Watch(watcher) => {
                let mut watches = self.watches.lock();
                let list = watches.entry(pid.id_arc().clone()).or_default();
                if !list.contains(watcher) {
                    list.push(watcher.clone());
                }
            }
            SystemMessage::Unwatch(watcher) => {
                let mut watches = self.watches.lock();
                if let Some(list) = watches.get_mut(pid.id()) {
                    list.retain(|w| w != watcher);
                    if list.is_empty() {
                        watches.remove(pid.id());
                    }
                }
            }
            _ => {}
        }
        with_scratch(|scratch| {
            if let Some(type_name) = wire::encode_system(&self.local, pid, &message, scratch) {
                let m = batch::Message {
                    type_name,
                    serializer_id: crate::serialization::PROTOBUF,
                    payload: scratch,
                    target: pid,
                    sender: None,
                    header: None,
                };
                // Only a terminated endpoint refuses, and then the watch is answered above.
                let _ = self.enqueue(&m, m.cost(), true);
            }
        })
    }

    fn is_dead(&self) -> bool {
        self.terminated.load(Ordering::Acquire)
    }
}

impl Endpoint {
    /// A `Terminated` arrived from the remote system: the watch is over.
    pub(crate) fn remote_terminated(&self, who: &Pid, watcher: &Pid) {
        let mut watches = self.watches.lock();
        if let Some(list) = watches.get_mut(who.id()) {
            list.retain(|w| w != watcher);
            if list.is_empty() {
                watches.remove(who.id());
            }
        }
    }

    /// Forgets pending requests that have completed, so the set stays small.
    pub(crate) fn prune_pending(&self) {
        let system = &self.remote.system;
        self.pending.lock().retain(|p| system.is_registered(p));
    }
}

impl Endpoint {
    /// Lets the connection the peer opened to us carry this endpoint's
    /// messages too (one stream per pair of systems), unless this endpoint
    /// already has a connection. Returns the transport's generation.
    pub(crate) fn attach_inbound(&self) -> Option<u64> {
        if self.terminated.load(Ordering::Acquire) {
            return None;
        }
        let mut outbox = self.outbox.lock();
        if outbox.phase != Phase::Idle {
            return None;
        }
        outbox.generation += 1;
        outbox.phase = Phase::Open;
        outbox.inbound = true;
        let generation = outbox.generation;
        drop(outbox);
        self.transport_changed.notify_waiters();
        Some(generation)
    }

    /// The transport of `generation` is gone; what it had not taken stays
    /// queued for the next one.
    pub(crate) fn detach(&self, generation: u64) {
        let mut outbox = self.outbox.lock();
        if outbox.generation != generation {
            return;
        }
        outbox.retire();
        drop(outbox);
        self.transport_changed.notify_waiters();
    }

    /// Asks the transport of `generation` to send what is queued and end
    /// (graceful shutdown), and waits for that within `within`.
    pub(crate) async fn drain(&self, generation: u64, within: Duration) -> bool {
        let wait = async {
            loop {
                let changed = self.transport_changed.notified();
                tokio::pin!(changed);
                changed.as_mut().enable();
                {
                    let mut outbox = self.outbox.lock();
                    if outbox.generation != generation || outbox.phase == Phase::Drained {
                        return;
                    }
                    if outbox.phase != Phase::Closing {
                        outbox.set_phase(Phase::Closing);
                    }
                }
                changed.await;
            }
        };
        tokio::time::timeout(within, wait).await.is_ok()
    }
}

/// What an endpoint has to send, in two lanes (priority first), and the
/// state of the transport that sends it.
struct Outbox {
    normal: OpenBatch,
    priority: OpenBatch,
    /// Full batches waiting for the transport, oldest first, with their
    /// message counts.
    sealed: VecDeque<(Bytes, usize)>,
    sealed_priority: VecDeque<Bytes>,
    /// Normal-lane messages not handed to a transport yet (the queue bound).
    queued: usize,
    /// Terminated: nothing more is accepted.
    closed: bool,
    /// Which transport may drain; the stream of an older one ends.
    generation: u64,
    phase: Phase,
    /// The transport is the response stream of a connection the peer opened.
    inbound: bool,
    /// The current stream's task, woken when the phase changes.
    waker: Option<Waker>,
    sent_batches: u64,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    /// No transport: the writer dials, or waits for the peer to connect.
    Idle,
    /// Only the ConnectRequest goes out until the peer accepts it: messages
    /// for a peer that refuses us stay queued and are dead-lettered, not lost.
    Handshake,
    Open,
    /// Send what is queued, then end the stream (graceful shutdown).
    Closing,
    /// The stream ended after `Closing`.
    Drained,
}

impl Outbox {
    fn set_phase(&mut self, phase: Phase) {
        self.phase = phase;
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    /// Ends the current transport's stream.
    fn retire(&mut self) {
        self.generation += 1;
        self.inbound = false;
        self.set_phase(Phase::Idle);
    }

    fn park(&mut self, cx: &Context<'_>) {
        match &self.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => self.waker = Some(cx.waker().clone()),
        }
    }
}

/// The outgoing half of one transport: our request body when we dialed,
/// our response body when the peer did. It yields the opening message,
/// then the batches senders have filled, one frame each; tonic encodes what
/// it yields until nothing is ready.
pub(crate) struct OutboundStream {
    endpoint: Arc<Endpoint>,
    generation: u64,
    opening: Option<RemoteMessage>,
    /// Ends a drained stream with a DisconnectRequest (the accepting side).
    farewell: bool,
}

impl OutboundStream {
    pub(crate) fn new(endpoint: Arc<Endpoint>, generation: u64, opening: RemoteMessage, farewell: bool) -> Self {
        OutboundStream { endpoint, generation, opening: Some(opening), farewell }
    }
}

impl Stream for OutboundStream {
    type Item = Outbound;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Outbound>> {
        let this = self.get_mut();
        if let Some(opening) = this.opening.take() {
            return Poll::Ready(Some(Outbound::Control(opening)));
        }
        let endpoint = &this.endpoint;
        let mut outbox = endpoint.outbox.lock();
        if outbox.generation != this.generation {
            return Poll::Ready(None);
        }
        let closing = match outbox.phase {
            Phase::Open => false,
            Phase::Closing => true,
            Phase::Handshake => {
                outbox.park(cx);
                return Poll::Pending;
            }
            Phase::Idle | Phase::Drained => return Poll::Ready(None),
        };
        let next = if let Some(b) = outbox.sealed_priority.pop_front() {
            Some(b)
        } else if !outbox.priority.is_empty() {
            Some(outbox.priority.take().0)
        } else if let Some((b, n)) = outbox.sealed.pop_front() {
            outbox.queued -= n;
            Some(b)
        } else if !outbox.normal.is_empty() {
            let (b, n) = outbox.normal.take();
            outbox.queued -= n;
            Some(b)
        } else {
            None
        };
        let Some(body) = next else {
            if !closing {
                outbox.park(cx);
                return Poll::Pending;
            }
            outbox.phase = Phase::Drained;
            drop(outbox);
            endpoint.transport_changed.notify_waiters();
            if std::mem::take(&mut this.farewell) {
                return Poll::Ready(Some(Outbound::Control(RemoteMessage {
                    message_type: Some(MessageType::DisconnectRequest(Default::default())),
                })));
            }
            return Poll::Ready(None);
        };
        outbox.sent_batches += 1;
        let prune = outbox.sent_batches.is_multiple_of(1024);
        drop(outbox);
        if prune {
            endpoint.prune_pending();
        }
        tracing::trace!(address = %endpoint.address, bytes = body.len(), "remote.send");
        Poll::Ready(Some(Outbound::Batch(body)))
    }
}

/// A connection whose handshake the peer accepted.
struct Connected {
    inbound: Streaming<Inbound>,
    member: String,
    dial: Arc<crate::dial::DialState>,
}

enum ConnectError {
    Blocked,
    /// The peer belongs to another cluster (the reason names both).
    WrongCluster(String),
    /// Nothing listens at the address (the peer process is gone).
    Refused(String),
    /// The connection was reset before the handshake was done: the listener
    /// went away with the connection in its queue (a process killed a moment
    /// ago closes its connections before its listener), or it sheds surplus.
    Reset(String),
    Failed(DeliveryFailureKind, String),
}

/// True if `error` or one of its sources is a refused TCP connection.
fn is_refused(error: &(dyn std::error::Error + 'static)) -> bool {
    has_io_error(error, std::io::ErrorKind::ConnectionRefused)
}

/// True if `error` or one of its sources is a reset TCP connection.
fn is_reset(error: &(dyn std::error::Error + 'static)) -> bool {
    has_io_error(error, std::io::ErrorKind::ConnectionReset)
}

/// True if `error` or one of its sources is an I/O error of `kind`.
fn has_io_error(error: &(dyn std::error::Error + 'static), kind: std::io::ErrorKind) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == kind) {
            return true;
        }
        next = e.source();
    }
    false
}

/// Why a message was not delivered.
pub(crate) type Failed = (DeliveryFailureKind, String);

/// The kind of a failed connection attempt: TLS when the connection layer
/// saw a TLS failure (`dial`) or a rustls error is among the error's
/// sources; otherwise the peer is gone (refused, unreachable, hung up).
fn connect_failure(dial: &crate::dial::DialState, error: &(dyn std::error::Error + 'static)) -> ConnectError {
    let chain = crate::config::error_chain(error);
    if let Some(reason) = dial.tls_failure() {
        return ConnectError::Failed(DeliveryFailureKind::Tls, format!("{reason} ({chain})"));
    }
    if crate::error::has_tls_source(error) {
        return ConnectError::Failed(DeliveryFailureKind::Tls, chain);
    }
    if is_reset(error) {
        return ConnectError::Reset(chain);
    }
    ConnectError::Failed(DeliveryFailureKind::EndpointGone, chain)
}

/// What the connection's watchdog looks at, each tick.
struct Watchdog<'a> {
    ticker: &'a mut tokio::time::Interval,
    progress: &'a mut Progress,
    dial: Arc<crate::dial::DialState>,
}

enum Exit {
    Broken(String),
    /// The peer stalled: it took none of what is queued, or nothing came
    /// from it, for the stall timeout.
    Stalled(String),
    Shutdown,
}

/// The write watchdog's memory: what the transport had taken at the last
/// look, and since when messages have waited without it taking any.
struct Progress {
    sent: u64,
    waiting_since: Option<std::time::Instant>,
}

/// The read watchdog's memory, for a connection we dialed: reads at the last
/// look, and since when there has been none. HTTP/2 pings a silent peer after
/// half the stall timeout, so a live one is never silent for the whole of it.
struct Heard {
    reads: u64,
    since: std::time::Instant,
}

impl Heard {
    fn new(dial: &crate::dial::DialState) -> Self {
        Heard { reads: dial.reads(), since: std::time::Instant::now() }
    }

    /// How long the peer has been silent, if that is `timeout` or longer.
    fn silent(&mut self, dial: &crate::dial::DialState, timeout: Duration) -> Option<Duration> {
        let reads = dial.reads();
        if reads != self.reads {
            *self = Heard { reads, since: std::time::Instant::now() };
            return None;
        }
        let silent = self.since.elapsed();
        (silent >= timeout).then_some(silent)
    }
}

impl Endpoint {
    /// How long messages have waited for an open transport that takes none
    /// of them, if that is the stall timeout or longer. Counts batches (no
    /// clock on the send path): looked at a few times per timeout.
    fn write_stalled(&self, progress: &mut Progress) -> Option<Duration> {
        let outbox = self.outbox.lock();
        let waiting = matches!(outbox.phase, Phase::Open | Phase::Closing)
            && (outbox.queued > 0 || !outbox.priority.is_empty() || !outbox.sealed_priority.is_empty());
        if !waiting || outbox.sent_batches != progress.sent {
            progress.sent = outbox.sent_batches;
            progress.waiting_since = waiting.then(std::time::Instant::now);
            return None;
        }
        drop(outbox);
        let waited = progress.waiting_since.get_or_insert_with(std::time::Instant::now).elapsed();
        (waited >= self.remote.config.stall_timeout).then_some(waited)
    }

    fn stall_reason(&self, waited: Duration) -> String {
        format!(
            "the peer stalled: it took none of the messages queued for it for {waited:?} \
             (RemoteConfig::with_stall_timeout is {:?}); its connection is closed",
            self.remote.config.stall_timeout
        )
    }

    /// How often the write watchdog looks.
    fn stall_ticker(&self) -> tokio::time::Interval {
        let period = (self.remote.config.stall_timeout / 4).max(Duration::from_millis(5));
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker
    }
}

/// Keeps the endpoint connected: waits while a connection from the peer
/// carries its messages, otherwise dials, watches the connection and
/// redials with backoff. Messages never pass through it.
struct Writer {
    endpoint: Arc<Endpoint>,
}

impl Writer {
    async fn run(self) {
        let endpoint = &self.endpoint;
        let remote = endpoint.remote.clone();
        let mut shutdown = remote.shutdown.subscribe();
        let mut failures = 0u32;
        // The last connection broke after a good while and this is its redial.
        let mut after_break = false;
        let mut ticker = endpoint.stall_ticker();
        let mut progress = Progress { sent: 0, waiting_since: None };
        loop {
            if *shutdown.borrow() {
                return self.shut_down().await;
            }
            let changed = endpoint.transport_changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let claimed = {
                let mut outbox = endpoint.outbox.lock();
                if outbox.phase == Phase::Idle {
                    outbox.generation += 1;
                    outbox.inbound = false;
                    outbox.phase = Phase::Handshake;
                    Some(outbox.generation)
                } else {
                    None
                }
            };
            let Some(generation) = claimed else {
                // The peer's connection carries our messages; dial when it ends.
                tokio::select! {
                    () = &mut changed => continue,
                    _ = shutdown.changed() => return self.shut_down().await,
                    _ = ticker.tick() => {
                        if let Some(waited) = endpoint.write_stalled(&mut progress) {
                            let reason = endpoint.stall_reason(waited);
                            let closed = remote.close_inbound(&endpoint.address);
                            tracing::warn!(address = %endpoint.address, closed, %reason, "closing a stalled peer's connection");
                            return endpoint.terminate(DeliveryFailureKind::EndpointGone, &reason);
                        }
                        continue;
                    }
                }
            };
            let attempt = tokio::select! {
                r = self.connect(generation) => r,
                _ = shutdown.changed() => return self.shut_down().await,
            };
            let redialed_after_break = std::mem::take(&mut after_break);
            if let Err(ConnectError::Reset(reason)) = &attempt
                && redialed_after_break
            {
                // The peer's connection broke an instant ago and its listener
                // reset us: a killed process closes its connections before its
                // listener. Look once more, shortly, for the refusal that tells
                // the cluster it is gone, rather than waiting out a backoff.
                tracing::debug!(address = %endpoint.address, %reason, "reset right after a break; redialing once more");
                endpoint.detach(generation);
                tokio::select! {
                    _ = tokio::time::sleep(RESET_REDIAL_DELAY) => {}
                    _ = shutdown.changed() => return self.shut_down().await,
                }
                continue;
            }
            // A refusal is reported, then retried as any other failure.
            let attempt = attempt.map_err(|e| match e {
                ConnectError::Refused(reason) => {
                    remote
                        .system
                        .event_stream()
                        .publish(EndpointUnreachable { address: endpoint.address.to_string(), reason: reason.clone() });
                    ConnectError::Failed(DeliveryFailureKind::EndpointGone, reason)
                }
                ConnectError::Reset(reason) => ConnectError::Failed(DeliveryFailureKind::EndpointGone, reason),
                other => other,
            });
            let mut redial_now = false;
            match attempt {
                Ok(Connected { inbound, member, dial }) => {
                    failures = 0;
                    let opened = tokio::time::Instant::now();
                    let watchdog = Watchdog { ticker: &mut ticker, progress: &mut progress, dial };
                    match self.watch(inbound, &member, &mut shutdown, watchdog).await {
                        Exit::Shutdown => return self.shut_down().await,
                        Exit::Stalled(reason) => {
                            tracing::warn!(address = %endpoint.address, %reason, "closing a stalled peer's connection");
                            return endpoint.terminate(DeliveryFailureKind::EndpointGone, &reason);
                        }
                        Exit::Broken(reason) => {
                            tracing::debug!(address = %endpoint.address, %reason, "connection lost; reconnecting");
                            // A connection that had been up for a while is
                            // redialed at once: if the peer died, the refusal
                            // tells the cluster now rather than after a
                            // backoff. One that keeps breaking backs off.
                            redial_now = opened.elapsed() >= IMMEDIATE_REDIAL_UPTIME;
                        }
                    }
                }
                Err(ConnectError::Blocked) => {
                    return endpoint.terminate(
                        DeliveryFailureKind::BlockedMember,
                        "the peer refused the connection: this system is on its block list",
                    );
                }
                Err(ConnectError::WrongCluster(reason)) => {
                    tracing::warn!(address = %endpoint.address, %reason, "the peer belongs to another cluster");
                    return endpoint.terminate(DeliveryFailureKind::WrongCluster, &reason);
                }
                Err(ConnectError::Failed(kind, reason)) => {
                    failures += 1;
                    tracing::debug!(address = %endpoint.address, failures, %reason, "connect failed");
                    if failures > remote.config.max_retries {
                        let why = format!("{failures} connection attempts failed; last: {reason}");
                        return endpoint.terminate(kind, &why);
                    }
                }
                Err(ConnectError::Refused(_) | ConnectError::Reset(_)) => {}
            }
            // Whatever the old stream had not taken stays queued for the next one.
            endpoint.detach(generation);
            if redial_now {
                after_break = true;
                continue;
            }
            let base = remote.config.retry_backoff.saturating_mul(1 << failures.min(10));
            let delay = base + Duration::from_millis(fastrand::u64(0..=base.as_millis().min(500) as u64));
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.changed() => return self.shut_down().await,
            }
        }
    }

    /// Remoting is shutting down: a peer's connection that carries our
    /// messages gets what is queued first (our own connection was flushed
    /// by `watch`); then the endpoint terminates.
    async fn shut_down(&self) {
        let endpoint = &self.endpoint;
        let inbound = {
            let outbox = endpoint.outbox.lock();
            (outbox.inbound && matches!(outbox.phase, Phase::Open | Phase::Closing)).then_some(outbox.generation)
        };
        if let Some(generation) = inbound
            && !endpoint.drain(generation, FLUSH_TIMEOUT).await
        {
            tracing::warn!(address = %endpoint.address, "could not flush queued messages before shutdown");
        }
        endpoint.terminate(DeliveryFailureKind::ShuttingDown, "remoting shut down");
    }

    /// Opens the stream and completes the handshake; the outbound stream
    /// starts draining the queues once the peer has accepted us.
    async fn connect(&self, generation: u64) -> Result<Connected, ConnectError> {
        let remote = &self.endpoint.remote;
        let config = &remote.config;
        let dialer = crate::dial::Dialer::new(config.tls.as_ref().and_then(|tls| tls.client()));
        let dial = dialer.state();
        let failed = |e: &(dyn std::error::Error + 'static)| connect_failure(&dial, e);
        // TLS, if configured, is the dialer's (see `dial`), so the scheme is http.
        let origin: tonic::codegen::http::Uri =
            format!("http://{}", self.endpoint.address).parse().map_err(|e| failed(&e))?;
        let stall = config.stall_timeout;
        let mut builder = hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new());
        builder
            .timer(hyper_util::rt::TokioTimer::new())
            // A peer that answers no ping is closed (see `with_stall_timeout`;
            // later than the write watchdog, which can say why).
            .keep_alive_interval(stall / 2)
            .keep_alive_timeout(stall)
            .keep_alive_while_idle(true);
        let opened = async {
            // A refusal is told apart (the cluster suspects the member at
            // once); the source chain says why for the rest.
            let io = dialer.dial(&origin).await.map_err(|e| {
                if is_refused(&e) { ConnectError::Refused(crate::config::error_chain(&e)) } else { failed(&e) }
            })?;
            let io = hyper_util::rt::TokioIo::new(io);
            builder.handshake::<_, tonic::body::Body>(io).await.map_err(|e| failed(&e))
        };
        let connect_timeout = config.connect_timeout;
        let (sender, connection) = tokio::time::timeout(connect_timeout, opened).await.map_err(|_| {
            ConnectError::Failed(
                DeliveryFailureKind::EndpointGone,
                format!("connecting took longer than {connect_timeout:?} (RemoteConfig::with_connect_timeout)"),
            )
        })??;
        let address = self.endpoint.address.clone();
        // It ends once our streams on it have ended and `sender` is dropped.
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%address, %error, "connection ended");
            }
        });
        let h2 = crate::dial::H2Client { sender, first_limit: config.max_handshake_size, stall };
        let mut client = tonic::client::Grpc::with_origin(h2, origin)
            .max_decoding_message_size(config.max_frame_size)
            .max_encoding_message_size(config.max_frame_size);
        let hello = RemoteMessage {
            message_type: Some(MessageType::ConnectRequest(ConnectRequest {
                connection_type: Some(connect_request::ConnectionType::ServerConnection(ServerConnection {
                    member_id: remote.system.id().to_string(),
                    address: remote.system.address().to_string(),
                    block_list: remote.blocked_members(),
                    cluster_name: Some(config.cluster_name.clone()),
                })),
            })),
        };
        let outbound = OutboundStream::new(self.endpoint.clone(), generation, hello, false);
        let handshake = async {
            client.ready().await.map_err(|e| failed(&e))?;
            let path = tonic::codegen::http::uri::PathAndQuery::from_static(crate::server::RECEIVE_PATH);
            let response =
                client.streaming(tonic::Request::new(outbound), path, WireCodec).await.map_err(|e| failed(&e))?;
            let mut inbound = response.into_inner();
            match inbound.message().await.map_err(|e| failed(&e))? {
                Some(Inbound::Control(RemoteMessage { message_type: Some(MessageType::ConnectResponse(r)) })) => {
                    if r.blocked {
                        let address = self.endpoint.address.to_string();
                        remote.system.event_stream().publish(crate::remote::BlockedByPeer { address });
                        return Err(ConnectError::Blocked);
                    }
                    // A peer from before cluster names says nothing and is not checked.
                    if let Some(theirs) = r.cluster_name.as_ref().filter(|theirs| **theirs != config.cluster_name) {
                        let address = &self.endpoint.address;
                        let reason = crate::error::wrong_cluster(&r.member_id, address, theirs, &config.cluster_name);
                        return Err(ConnectError::WrongCluster(reason));
                    }
                    remote.learn_member(&r.member_id, &self.endpoint.address);
                    remote.system.event_stream().publish(EndpointConnected {
                        address: self.endpoint.address.to_string(),
                        member_id: r.member_id.clone(),
                    });
                    Ok((inbound, r.member_id))
                }
                other => Err(match dial.tls_failure() {
                    Some(reason) => ConnectError::Failed(DeliveryFailureKind::Tls, reason),
                    None => ConnectError::Failed(
                        DeliveryFailureKind::EndpointGone,
                        format!("expected a ConnectResponse, got {other:?}"),
                    ),
                }),
            }
        };
        let (inbound, member) = tokio::time::timeout(config.connect_timeout, handshake)
            .await
            .map_err(|_| ConnectError::Failed(DeliveryFailureKind::EndpointGone, "handshake timed out".into()))??;
        let mut outbox = self.endpoint.outbox.lock();
        if outbox.generation == generation {
            outbox.set_phase(Phase::Open);
        }
        Ok(Connected { inbound, member, dial })
    }

    /// Delivers what the peer sends back on our connection until it breaks
    /// or remoting shuts down (then flushes what is queued).
    async fn watch(
        &self,
        mut inbound: Streaming<Inbound>,
        member: &str,
        shutdown: &mut tokio::sync::watch::Receiver<bool>,
        watchdog: Watchdog<'_>,
    ) -> Exit {
        let Watchdog { ticker, progress, dial } = watchdog;
        let mut heard = Heard::new(&dial);
        let stall = self.endpoint.remote.config.stall_timeout;
        let remote = &self.endpoint.remote;
        let peer = &self.endpoint.address;
        let mut receiving = crate::server::Receiving::new(remote, peer);
        // One waiter for the whole connection, not a new one per batch.
        let mut stopping = std::pin::pin!(shutdown.changed());
        loop {
            let message = tokio::select! {
                biased;
                _ = &mut stopping => {
                    self.flush(inbound, member).await;
                    return Exit::Shutdown;
                }
                m = inbound.message() => m,
                _ = ticker.tick() => {
                    if let Some(waited) = self.endpoint.write_stalled(progress) {
                        return Exit::Stalled(self.endpoint.stall_reason(waited));
                    }
                    if let Some(silent) = heard.silent(&dial, stall) {
                        return Exit::Stalled(format!(
                            "the peer stalled: nothing came from it for {silent:?}, not even the answer to a ping \
                             (RemoteConfig::with_stall_timeout is {stall:?}); its connection is closed"
                        ));
                    }
                    continue;
                }
            };
            match message {
                Ok(Some(Inbound::Batch(batch))) => {
                    if remote.is_blocked(member) {
                        crate::server::refuse_batch(remote, &batch, peer, member);
                        return Exit::Broken(format!("the member {member} is blocked"));
                    }
                    crate::server::deliver(remote, &batch, member, &mut receiving)
                }
                Ok(Some(Inbound::Control(RemoteMessage { message_type: Some(MessageType::DisconnectRequest(_)) }))) => {
                    return Exit::Broken("peer disconnected".into());
                }
                Ok(Some(other)) => tracing::debug!(%peer, "ignoring unexpected message: {other:?}"),
                Ok(None) => return Exit::Broken("peer closed the stream".into()),
                Err(e) => {
                    if let Some(stall) = crate::conn::MidMessageStall::in_chain(&e) {
                        return Exit::Stalled(stall.to_string());
                    }
                    return Exit::Broken(e.to_string());
                }
            }
        }
    }

    /// Sends what is queued right now (graceful shutdown), within a bounded time.
    async fn flush(&self, mut inbound: Streaming<Inbound>, member: &str) {
        let remote = &self.endpoint.remote;
        let peer = &self.endpoint.address;
        {
            let mut outbox = self.endpoint.outbox.lock();
            if outbox.phase == Phase::Open {
                outbox.set_phase(Phase::Closing);
            }
        }
        // Our stream ends once the queues are empty; the peer then reads
        // everything and closes its side. Until then its messages still count.
        let drained = async {
            let mut receiving = crate::server::Receiving::new(remote, peer);
            while let Ok(Some(m)) = inbound.message().await {
                if let Inbound::Batch(batch) = m {
                    crate::server::deliver_batch(remote, &batch, member, &mut receiving);
                }
            }
        };
        if tokio::time::timeout(FLUSH_TIMEOUT, drained).await.is_err() {
            tracing::warn!(address = %self.endpoint.address, "could not flush queued messages before shutdown");
        }
    }
}

/// A broken connection that had been up at least this long is redialed
/// without a backoff (at most one immediate redial per this period).
const IMMEDIATE_REDIAL_UPTIME: Duration = Duration::from_secs(1);

/// How long the redial after a reset waits (see `ConnectError::Reset`).
const RESET_REDIAL_DELAY: Duration = Duration::from_millis(20);

/// How long a graceful shutdown waits for queued messages to be written.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);
