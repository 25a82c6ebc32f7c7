//! Endpoints: one per remote address. An endpoint is the process every pid
//! at that address resolves to. Sends are serialized on the sender's thread
//! and queued; a writer task connects, batches and writes them, reconnects
//! with backoff, and after too many failed attempts terminates the endpoint.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use protoactor_actor::{
    DeadLetterResponse, DeliveryFailure, Envelope, Pid, Process, SystemMessage, Terminated, TerminatedReason,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

use crate::error::Error;
use crate::proto::remote_message::MessageType;
use crate::proto::remoting_client::RemotingClient;
use crate::proto::{ConnectRequest, MessageBatch, RemoteMessage, ServerConnection, connect_request};
use crate::remote::{EndpointConnected, EndpointTerminated, RemoteInner};
use crate::wire::{self, BatchBuilder, Outgoing, UndeliveredRemoteMessage};

pub(crate) struct Endpoint {
    pub(crate) address: Arc<str>,
    /// This system's address, fixed once remoting started (endpoints exist only after that).
    local: Arc<str>,
    remote: Arc<RemoteInner>,
    normal: mpsc::Sender<Outgoing>,
    priority: mpsc::UnboundedSender<Outgoing>,
    terminated: AtomicBool,
    /// Wakes the writer when the endpoint is terminated from outside it.
    stop: tokio::sync::Notify,
    /// Remote target id -> local watchers, to tell them if the address dies.
    watches: Mutex<HashMap<Arc<str>, Vec<Pid>>>,
    /// Local request futures waiting on an answer from this address.
    pending: Mutex<HashSet<Pid>>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint").field("address", &self.address).finish()
    }
}

impl Endpoint {
    /// Creates the endpoint and starts its writer.
    pub(crate) fn start(remote: &Arc<RemoteInner>, address: Arc<str>) -> Arc<Endpoint> {
        let (normal, normal_rx) = mpsc::channel(remote.config.endpoint_queue_size);
        let (priority, priority_rx) = mpsc::unbounded_channel();
        let endpoint = Arc::new(Endpoint {
            address,
            local: remote.system.address(),
            remote: remote.clone(),
            normal,
            priority,
            terminated: AtomicBool::new(false),
            stop: tokio::sync::Notify::new(),
            watches: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashSet::new()),
        });
        let writer = Writer { endpoint: endpoint.clone(), normal: normal_rx, priority: priority_rx, stash: Vec::new() };
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

    /// A message that will not be delivered: a waiting request fails at once,
    /// anything else is published as a dead letter.
    fn undeliverable(&self, pid: &Pid, outgoing: Outgoing, reason: Option<String>) {
        let system = &self.remote.system;
        match (&outgoing.sender, reason) {
            (Some(sender), Some(reason)) => {
                system.send_user_message(sender, Envelope::new(DeliveryFailure { target: pid.clone(), reason }))
            }
            (Some(sender), None) => {
                system.send_user_message(sender, Envelope::new(DeadLetterResponse { target: pid.clone() }))
            }
            (None, reason) => {
                if let Some(reason) = reason {
                    tracing::warn!(target = %pid, message = %outgoing.type_name, %reason, "remote message not delivered");
                }
                let message =
                    UndeliveredRemoteMessage { type_name: outgoing.type_name.to_string(), data: outgoing.data };
                system.dead_letter(pid, Envelope::new(message))
            }
        }
    }

    fn enqueue(&self, pid: &Pid, outgoing: Outgoing, priority: bool) {
        if let Some(sender) = &outgoing.sender
            && sender.id().starts_with("future$")
        {
            self.pending.lock().insert(sender.clone());
        }
        let result = if priority {
            self.priority.send(outgoing).map_err(|e| (e.0, None))
        } else {
            self.normal.try_send(outgoing).map_err(|e| match e {
                mpsc::error::TrySendError::Full(o) => (
                    o,
                    Some(format!(
                        "the queue to {} is full ({} messages); the peer is slow or unreachable",
                        self.address, self.remote.config.endpoint_queue_size
                    )),
                ),
                mpsc::error::TrySendError::Closed(o) => (o, None),
            })
        };
        if let Err((outgoing, reason)) = result {
            self.undeliverable(pid, outgoing, reason);
        }
    }

    /// Watchers, pending requests and queued messages learn that the address is gone.
    pub(crate) fn terminate(&self, reason: &str) {
        if self.terminated.swap(true, Ordering::AcqRel) {
            return;
        }
        tracing::info!(address = %self.address, reason, "endpoint terminated");
        self.stop.notify_one();
        self.remote.endpoint_terminated(self);
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
            system.send_user_message(&future, Envelope::new(DeadLetterResponse { target: gone.clone() }));
        }
        system
            .event_stream()
            .publish(EndpointTerminated { address: self.address.to_string(), reason: reason.to_string() });
    }
}

impl Process for Endpoint {
    fn send_user_message(&self, pid: &Pid, envelope: Envelope) {
        let remote = &self.remote;
        let local = &self.local;
        let (outgoing, priority) = match wire::encode_user(&remote.serialization, &remote.names, local, pid, envelope) {
            Ok(o) => o,
            Err(failed) => {
                let (error, envelope) = *failed;
                tracing::warn!(target = %pid, %error, "message not sent");
                let (message, sender, _) = envelope.into_parts();
                match sender {
                    Some(sender) => remote.system.send_user_message(
                        &sender,
                        Envelope::new(DeliveryFailure { target: pid.clone(), reason: error.to_string() }),
                    ),
                    None => remote.system.dead_letter(pid, Envelope::from_boxed(message)),
                }
                return;
            }
        };
        // The whole envelope (payload, headers, ids) must fit one frame with room
        // for the batch's own framing; otherwise its batch could not be written.
        let max = remote.config.max_frame_size.saturating_sub(1024);
        let size = wire::envelope_cost(&outgoing);
        if size > max {
            let error = Error::MessageTooLarge { type_name: outgoing.type_name.to_string(), size, max };
            return self.undeliverable(pid, outgoing, Some(error.to_string()));
        }
        if self.terminated.load(Ordering::Acquire) {
            return self.undeliverable(pid, outgoing, None);
        }
        self.enqueue(pid, outgoing, priority);
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
        let local = &self.local;
        if let Some(outgoing) = wire::encode_system(&self.remote.names, local, pid, message) {
            self.enqueue(pid, outgoing, true);
        }
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

struct Connection {
    tx: mpsc::Sender<RemoteMessage>,
    inbound: Streaming<RemoteMessage>,
}

enum ConnectError {
    Blocked,
    Failed(String),
}

enum Exit {
    Broken(String),
    Shutdown,
}

struct Writer {
    endpoint: Arc<Endpoint>,
    normal: mpsc::Receiver<Outgoing>,
    priority: mpsc::UnboundedReceiver<Outgoing>,
    /// Batches whose write failed, re-sent first after reconnecting.
    stash: Vec<MessageBatch>,
}

impl Writer {
    async fn run(mut self) {
        let remote = self.endpoint.remote.clone();
        let mut shutdown = remote.shutdown.subscribe();
        let mut failures = 0u32;
        loop {
            if *shutdown.borrow() {
                return self.finish("remoting shut down");
            }
            let attempt = tokio::select! {
                r = self.connect() => r,
                _ = shutdown.changed() => return self.finish("remoting shut down"),
            };
            match attempt {
                Ok(connection) => {
                    failures = 0;
                    match self.pump(connection, &mut shutdown).await {
                        Exit::Shutdown => return self.finish("remoting shut down"),
                        Exit::Broken(reason) => {
                            tracing::debug!(address = %self.endpoint.address, %reason, "connection lost; reconnecting");
                        }
                    }
                }
                Err(ConnectError::Blocked) => {
                    return self.finish("the peer refused the connection: this system is on its block list");
                }
                Err(ConnectError::Failed(reason)) => {
                    failures += 1;
                    tracing::debug!(address = %self.endpoint.address, failures, %reason, "connect failed");
                    if failures > remote.config.max_retries {
                        return self.finish(&format!("{failures} connection attempts failed; last: {reason}"));
                    }
                }
            }
            let base = remote.config.retry_backoff.saturating_mul(1 << failures.min(10));
            let delay = base + Duration::from_millis(fastrand::u64(0..=base.as_millis().min(500) as u64));
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.changed() => return self.finish("remoting shut down"),
            }
        }
    }

    async fn connect(&self) -> Result<Connection, ConnectError> {
        let remote = &self.endpoint.remote;
        let config = &remote.config;
        let failed = |e: &dyn std::fmt::Display| ConnectError::Failed(e.to_string());
        let scheme = if config.tls.is_some() { "https" } else { "http" };
        let mut endpoint = tonic::transport::Endpoint::from_shared(format!("{scheme}://{}", self.endpoint.address))
            .map_err(|e| failed(&e))?
            .connect_timeout(config.connect_timeout)
            .tcp_nodelay(true);
        if let Some(tls) = &config.tls {
            endpoint = endpoint.tls_config(tls.client()).map_err(|e| failed(&crate::config::error_chain(&e)))?;
        }
        // The source chain says why (refused, certificate not trusted...).
        let channel = endpoint.connect().await.map_err(|e| failed(&crate::config::error_chain(&e)))?;
        let mut client = RemotingClient::new(channel)
            .max_decoding_message_size(config.max_frame_size)
            .max_encoding_message_size(config.max_frame_size);
        let (tx, rx) = mpsc::channel::<RemoteMessage>(4);
        let hello = RemoteMessage {
            message_type: Some(MessageType::ConnectRequest(ConnectRequest {
                connection_type: Some(connect_request::ConnectionType::ServerConnection(ServerConnection {
                    member_id: remote.system.id().to_string(),
                    address: remote.system.address().to_string(),
                    block_list: remote.blocked_members(),
                })),
            })),
        };
        tx.send(hello).await.map_err(|e| failed(&e))?;
        let handshake = async {
            let response = client.receive(ReceiverStream::new(rx)).await.map_err(|e| failed(&e))?;
            let mut inbound = response.into_inner();
            match inbound.message().await.map_err(|e| failed(&e))? {
                Some(RemoteMessage { message_type: Some(MessageType::ConnectResponse(r)) }) => {
                    if r.blocked {
                        let address = self.endpoint.address.to_string();
                        remote.system.event_stream().publish(crate::remote::BlockedByPeer { address });
                        return Err(ConnectError::Blocked);
                    }
                    remote.system.event_stream().publish(EndpointConnected {
                        address: self.endpoint.address.to_string(),
                        member_id: r.member_id,
                    });
                    Ok(inbound)
                }
                other => Err(ConnectError::Failed(format!("expected a ConnectResponse, got {other:?}"))),
            }
        };
        let inbound = tokio::time::timeout(config.connect_timeout, handshake)
            .await
            .map_err(|_| ConnectError::Failed("handshake timed out".into()))??;
        Ok(Connection { tx, inbound })
    }

    async fn pump(&mut self, mut connection: Connection, shutdown: &mut tokio::sync::watch::Receiver<bool>) -> Exit {
        let remote = self.endpoint.remote.clone();
        let batch_size = remote.config.batch_size;
        let local = remote.system.address();
        for batch in std::mem::take(&mut self.stash) {
            if connection.tx.send(batch_message(batch.clone())).await.is_err() {
                self.stash.push(batch);
                return Exit::Broken("stream closed while resending".into());
            }
        }
        let mut items: Vec<Outgoing> = Vec::with_capacity(batch_size);
        let mut urgent: Vec<Outgoing> = Vec::new();
        let mut sent_batches = 0u64;
        loop {
            tokio::select! {
                biased;
                _ = shutdown.changed() => {
                    self.flush(connection, &local).await;
                    return Exit::Shutdown;
                }
                n = self.priority.recv_many(&mut urgent, batch_size) => if n == 0 { return Exit::Shutdown },
                n = self.normal.recv_many(&mut items, batch_size) => if n == 0 { return Exit::Shutdown },
                m = connection.inbound.message() => {
                    return Exit::Broken(match m {
                        Ok(Some(RemoteMessage { message_type: Some(MessageType::DisconnectRequest(_)) })) => "peer disconnected".into(),
                        Ok(_) => "peer closed the stream".into(),
                        Err(e) => e.to_string(),
                    });
                }
            }
            // Priority messages (watch, terminated, stop) go first in the batch.
            while let Ok(o) = self.priority.try_recv() {
                urgent.push(o);
            }
            let mut builder = BatchBuilder::new(&local, remote.config.max_frame_size);
            let mut ready = Vec::new();
            for o in urgent.drain(..).chain(items.drain(..)) {
                if !builder.fits(&o) {
                    ready.push(builder.take());
                }
                builder.push(o);
            }
            if !builder.is_empty() {
                ready.push(builder.take());
            }
            let mut ready = ready.into_iter();
            while let Some(batch) = ready.next() {
                tracing::trace!(address = %self.endpoint.address, messages = batch.envelopes.len(), "remote.send");
                if let Err(e) = connection.tx.send(batch_message(batch)).await {
                    if let Some(RemoteMessage { message_type: Some(MessageType::MessageBatch(b)) }) = Some(e.0) {
                        self.stash.push(b);
                    }
                    self.stash.extend(ready);
                    return Exit::Broken("stream closed".into());
                }
            }
            sent_batches += 1;
            if sent_batches.is_multiple_of(1024) {
                self.endpoint.prune_pending();
            }
        }
    }

    /// Sends what is queued right now (graceful shutdown), within a bounded time.
    async fn flush(&mut self, connection: Connection, local: &str) {
        let Connection { tx, mut inbound } = connection;
        let max_frame = self.endpoint.remote.config.max_frame_size;
        let mut builder = BatchBuilder::new(local, max_frame);
        let mut batches = Vec::new();
        while let Ok(o) = self.priority.try_recv().or_else(|_| self.normal.try_recv()) {
            if !builder.fits(&o) {
                batches.push(builder.take());
            }
            builder.push(o);
        }
        if !builder.is_empty() {
            batches.push(builder.take());
        }
        let send_all = async {
            for batch in batches {
                if tx.send(batch_message(batch)).await.is_err() {
                    return;
                }
            }
            // Ending our side lets the peer read everything, then close; wait for that.
            drop(tx);
            while let Ok(Some(_)) = inbound.message().await {}
        };
        if tokio::time::timeout(Duration::from_secs(2), send_all).await.is_err() {
            tracing::warn!(address = %self.endpoint.address, "could not flush queued messages before shutdown");
        }
    }

    /// Terminates the endpoint and hands everything still queued to dead letters.
    fn finish(mut self, reason: &str) {
        self.endpoint.terminate(reason);
        self.normal.close();
        self.priority.close();
        let address = self.endpoint.address.clone();
        let mut dead = Vec::new();
        while let Ok(o) = self.priority.try_recv() {
            dead.push(o);
        }
        while let Ok(o) = self.normal.try_recv() {
            dead.push(o);
        }
        for o in dead {
            let pid = Pid::new(address.clone(), o.target.clone());
            self.endpoint.undeliverable(&pid, o, None);
        }
        let peer = address.to_string();
        for batch in std::mem::take(&mut self.stash) {
            for e in &batch.envelopes {
                let target = usize::try_from(e.target).ok().and_then(|i| batch.targets.get(i));
                let sender = wire::sender_index(e.sender).and_then(|i| batch.senders.get(i));
                if let (Some(target), Some(sender)) = (target, sender) {
                    let sender = wire::pid_from_wire(sender, &self.endpoint.local);
                    let target = Pid::new(peer.as_str(), target.as_str());
                    self.endpoint
                        .remote
                        .system
                        .send_user_message(&sender, Envelope::new(DeadLetterResponse { target }));
                }
            }
        }
    }
}

fn batch_message(batch: MessageBatch) -> RemoteMessage {
    RemoteMessage { message_type: Some(MessageType::MessageBatch(batch)) }
}
