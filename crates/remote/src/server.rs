//! The receiving side: the accept loop and each connection's HTTP/2 server
//! (one task per connection, see `drive`), and the gRPC service that accepts
//! a peer's stream, checks its handshake against the block list and delivers
//! its batches locally.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use protoactor_actor::{DeliveryFailure, DeliveryFailureKind, Envelope, Pid, SystemMessage};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::{Body, BoxFuture, Service, StdError, http};
use tonic::server::{NamedService, StreamingService};
use tonic::transport::server::TcpConnectInfo;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use crate::batch::WordHash;
use crate::codec::{InBatch, Inbound, Outbound, WireCodec};
use crate::conn::{Guarded, InboundBody};
use crate::drive::Driver;
use crate::endpoint::{Endpoint, OutboundStream};
use crate::proto::remote_message::MessageType;
use crate::proto::{ConnectResponse, RemoteMessage, connect_request};
use crate::remote::RemoteInner;
use crate::wire::{self, Delivery, UndeliveredRemoteMessage};

/// The gRPC service: `remote.Remoting/Receive`, with our own codec (the
/// bytes are those of `protos/remote.proto`).
#[derive(Clone)]
pub(crate) struct RemotingServer {
    pub(crate) remote: Arc<RemoteInner>,
}

pub(crate) const RECEIVE_PATH: &str = "/remote.Remoting/Receive";

type ResponseStream = Pin<Box<dyn Stream<Item = Result<Outbound, Status>> + Send>>;

impl NamedService for RemotingServer {
    const NAME: &'static str = "remote.Remoting";
}

impl<B> Service<http::Request<B>> for RemotingServer
where
    B: Body<Data = bytes::Bytes> + Unpin + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut std::task::Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() != RECEIVE_PATH {
            return Box::pin(async { Ok(Status::unimplemented("only remote.Remoting/Receive is served").into_http()) });
        }
        let max = self.remote.config.max_frame_size;
        let config = &self.remote.config;
        let peer = peer_of(request.extensions());
        let connections = &self.remote.connections;
        let request = request.map(|body| {
            InboundBody::new(body, config.max_handshake_size, config.stall_timeout).closing(connections, peer)
        });
        let mut grpc = tonic::server::Grpc::new(WireCodec).apply_max_message_size_config(Some(max), Some(max));
        let service = ReceiveService { remote: self.remote.clone() };
        Box::pin(async move { Ok(grpc.streaming(service, request).await) })
    }
}

/// The address a request came from (its connection's, TLS or not).
fn peer_of(extensions: &http::Extensions) -> Option<SocketAddr> {
    extensions.get::<TcpConnectInfo>().and_then(|i| i.remote_addr())
}

/// How the remote port serves its connections.
#[derive(Clone)]
pub(crate) struct Listening {
    pub(crate) service: RemotingServer,
    /// The TLS acceptor and how long a handshake may take.
    pub(crate) tls: Option<(tokio_rustls::TlsAcceptor, Duration)>,
    pub(crate) max_streams: u32,
    pub(crate) stall: Duration,
}

/// Serves every admitted connection until `shutdown`, then waits for them
/// to close (each is told to, and closes once its streams are done).
pub(crate) async fn serve(
    incoming: impl Stream<Item = Result<Guarded, std::io::Error>>,
    listening: Listening,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut incoming = std::pin::pin!(incoming);
    let mut connections = tokio::task::JoinSet::new();
    let told = shutdown.clone();
    loop {
        tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            next = incoming.next() => match next {
                Some(Ok(guarded)) => {
                    let span = tracing::debug_span!("remote.connection", peer = ?guarded.connect_info().remote_addr);
                    connections.spawn(serve_connection(guarded, listening.clone(), told.clone()).instrument(span));
                }
                Some(Err(error)) => tracing::warn!(%error, "accepting a connection failed"),
                None => break,
            },
        }
    }
    while connections.join_next().await.is_some() {}
}

/// One connection: TLS if configured, then HTTP/2 in one task with what it
/// serves (see `drive`).
async fn serve_connection(guarded: Guarded, listening: Listening, shutdown: tokio::sync::watch::Receiver<bool>) {
    let info = guarded.connect_info();
    let peer = info.remote_addr;
    match listening.tls.clone() {
        None => serve_http2(guarded, info, listening, shutdown).await,
        Some((acceptor, timeout)) => match tokio::time::timeout(timeout, acceptor.accept(guarded)).await {
            Ok(Ok(tls)) => serve_http2(tls, info, listening, shutdown).await,
            Ok(Err(error)) => tracing::debug!(?peer, %error, "TLS handshake failed"),
            Err(_) => tracing::debug!(?peer, ?timeout, "TLS handshake timed out"),
        },
    }
}

async fn serve_http2<I>(
    io: I,
    info: TcpConnectInfo,
    listening: Listening,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let mut driver = Driver::new();
    let io = hyper_util::rt::TokioIo::new(driver.cork(io));
    let peer = info.remote_addr;
    let service = ConnService { inner: listening.service, info };
    let mut builder = hyper::server::conn::http2::Builder::new(driver.exec());
    // One stream per peer and connection is all the protocol uses: a
    // stranger gets no room for many streams that each buffer a handshake.
    // A peer that answers no ping (frozen, or its half of the connection
    // lost) is closed (see `with_stall_timeout`).
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .max_concurrent_streams(listening.max_streams)
        .keep_alive_interval(listening.stall / 2)
        .keep_alive_timeout(listening.stall / 2);
    let mut connection = std::pin::pin!(builder.serve_connection(io, service));
    let served = driver
        .run(async {
            tokio::select! {
                done = connection.as_mut() => return done,
                _ = shutdown.wait_for(|stop| *stop) => {}
            }
            connection.as_mut().graceful_shutdown();
            connection.await
        })
        .await;
    if let Err(error) = served {
        tracing::debug!(?peer, %error, "connection ended");
    }
    // The pipes of its streams see it ended, and end.
    if tokio::time::timeout(Duration::from_secs(10), driver.finish()).await.is_err() {
        tracing::warn!(?peer, "a closed connection's streams did not end within 10 s; dropped");
    }
}

/// The service of one connection: the request carries the connection's address.
#[derive(Clone)]
struct ConnService {
    inner: RemotingServer,
    info: TcpConnectInfo,
}

impl hyper::service::Service<http::Request<hyper::body::Incoming>> for ConnService {
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn call(&self, mut request: http::Request<hyper::body::Incoming>) -> Self::Future {
        request.extensions_mut().insert(self.info.clone());
        self.inner.clone().call(request)
    }
}

struct ReceiveService {
    remote: Arc<RemoteInner>,
}

impl StreamingService<Inbound> for ReceiveService {
    type Response = Outbound;
    type ResponseStream = ResponseStream;
    type Future = BoxFuture<Response<ResponseStream>, Status>;

    fn call(&mut self, request: Request<Streaming<Inbound>>) -> Self::Future {
        let remote = self.remote.clone();
        Box::pin(async move { receive(remote, request) })
    }
}

fn receive(remote: Arc<RemoteInner>, request: Request<Streaming<Inbound>>) -> Result<Response<ResponseStream>, Status> {
    if remote.is_shutting_down() {
        return Err(Status::unavailable("this system is shutting down"));
    }
    let peer = request.remote_addr();
    let inbound = request.into_inner();
    // The response opens at once (a client may wait for it before its
    // first message); what it carries is decided by the handshake.
    let (decide, decision) = oneshot::channel::<ResponseStream>();
    // A task of its own: in the connection's (see `drive`) it would save a
    // wake-up per message, but under load it would hold back the replies
    // that the connection's task writes (a tenth fewer requests per second).
    let runtime = remote.system.runtime().clone();
    runtime.spawn(accept(remote, inbound, peer, decide));
    let response = futures_util::stream::once(decision).flat_map(|chosen| match chosen {
        Ok(stream) => stream,
        Err(_) => Box::pin(futures_util::stream::empty()),
    });
    Ok(Response::new(Box::pin(response)))
}

/// Reads the handshake, then serves the stream.
async fn accept(
    remote: Arc<RemoteInner>,
    mut inbound: Streaming<Inbound>,
    peer: Option<SocketAddr>,
    decide: oneshot::Sender<ResponseStream>,
) {
    let refuse = |decide: oneshot::Sender<ResponseStream>, status: Status| {
        let _ = decide.send(Box::pin(futures_util::stream::iter([Err(status)])));
    };
    let first = tokio::time::timeout(remote.config.handshake_timeout, inbound.message()).await;
    let connection = match first {
        Ok(Ok(Some(Inbound::Control(RemoteMessage { message_type: Some(MessageType::ConnectRequest(c)) })))) => {
            c.connection_type
        }
        other => {
            tracing::warn!(?peer, "refusing a stream that did not open with a ConnectRequest: {other:?}");
            return refuse(decide, Status::invalid_argument("the first message must be a ConnectRequest"));
        }
    };
    let (member_id, address, their_cluster) = match connection {
        Some(connect_request::ConnectionType::ServerConnection(s)) => {
            if s.block_list.iter().any(|id| id == remote.system.id()) {
                tracing::warn!(peer = %s.address, "the peer has blocked this system");
            }
            (s.member_id, s.address, s.cluster_name)
        }
        Some(connect_request::ConnectionType::ClientConnection(c)) => (c.member_id, String::new(), c.cluster_name),
        None => return refuse(decide, Status::invalid_argument("ConnectRequest without a connection type")),
    };
    let ours = &remote.config.cluster_name;
    let respond = |blocked| RemoteMessage {
        message_type: Some(MessageType::ConnectResponse(ConnectResponse {
            member_id: remote.system.id().to_string(),
            blocked,
            cluster_name: Some(ours.clone()),
        })),
    };
    let refused = |kind, reason: String| {
        let event = crate::remote::HandshakeRefused {
            member_id: member_id.clone(),
            address: address.clone(),
            peer,
            kind,
            reason,
        };
        remote.system.event_stream().publish(event);
    };
    if remote.is_blocked(&member_id) {
        tracing::info!(member = %member_id, %address, "refused a blocked system");
        refused(DeliveryFailureKind::BlockedMember, format!("the member {member_id} is blocked"));
        let _ = decide.send(Box::pin(futures_util::stream::iter([Ok(Outbound::Control(respond(true)))])));
        return;
    }
    // A peer from before cluster names says nothing and is not checked.
    if let Some(theirs) = their_cluster.filter(|theirs| theirs != ours) {
        let reason = crate::error::wrong_cluster(&member_id, &address, &theirs, ours);
        tracing::warn!(member = %member_id, %address, ?peer, "refused a system of another cluster: {reason}");
        refused(DeliveryFailureKind::WrongCluster, reason.clone());
        // The answer names our cluster (the peer reports WrongCluster); the
        // status ends the stream for a peer that would not read the name.
        let refusal = [Ok(Outbound::Control(respond(false))), Err(Status::failed_precondition(reason))];
        let _ = decide.send(Box::pin(futures_util::stream::iter(refusal)));
        return;
    }
    tracing::debug!(member = %member_id, %address, "inbound stream connected");
    remote.connections.handshaken(peer, &member_id);
    remote.learn_member(&member_id, &address);
    // Our messages to the peer may ride back on its connection, but only if
    // it really is at the address it claims: otherwise anyone could draw
    // another member's traffic to themselves.
    let attached = match peer {
        Some(peer) if !address.is_empty() && claims_own_address(peer, &address).await => {
            remote.attach_inbound(&address)
        }
        _ => None,
    };
    let shutdown = remote.shutdown.subscribe();
    let attached = match attached {
        Some((endpoint, generation)) => {
            let outbound = OutboundStream::new(endpoint.clone(), generation, respond(false), true);
            if decide.send(Box::pin(outbound.map(Ok))).is_err() {
                endpoint.detach(generation);
                return;
            }
            Attached::Endpoint(endpoint, generation)
        }
        None => {
            let (tx, rx) = mpsc::channel::<Result<Outbound, Status>>(4);
            let _ = tx.try_send(Ok(Outbound::Control(respond(false))));
            if decide.send(Box::pin(ReceiverStream::new(rx))).is_err() {
                return;
            }
            Attached::Control(tx)
        }
    };
    read_inbound(remote, inbound, address, member_id, shutdown, attached).await;
}

/// What carries our side of an inbound connection.
enum Attached {
    /// Our endpoint for the peer sends on it.
    Endpoint(Arc<Endpoint>, u64),
    /// Only the handshake answer and the goodbye.
    Control(mpsc::Sender<Result<Outbound, Status>>),
}

/// True if `address` (host:port) names the host `peer` connects from.
async fn claims_own_address(peer: SocketAddr, address: &str) -> bool {
    let ip = peer.ip().to_canonical();
    let Some((host, port)) = address.rsplit_once(':') else { return false };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(claimed) = host.parse::<IpAddr>() {
        return claimed.to_canonical() == ip;
    }
    let Ok(port) = port.parse::<u16>() else { return false };
    match tokio::time::timeout(Duration::from_secs(1), tokio::net::lookup_host((host, port))).await {
        Ok(Ok(mut addresses)) => addresses.any(|a| a.ip().to_canonical() == ip),
        _ => false,
    }
}

/// Delivers what the peer sends until it disconnects; at shutdown the peer
/// gets what is queued for it, then a DisconnectRequest.
async fn read_inbound(
    remote: Arc<RemoteInner>,
    mut inbound: Streaming<Inbound>,
    address: String,
    member_id: String,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    attached: Attached,
) {
    let mut deadline = None;
    let mut receiving = Receiving::new(&remote, &address);
    // One waiter for the whole stream, not a new one per batch.
    let mut stopping = std::pin::pin!(shutdown.changed());
    loop {
        let next = tokio::select! {
            m = inbound.message() => m,
            _ = &mut stopping, if deadline.is_none() => {
                match &attached {
                    Attached::Control(tx) => {
                        let bye = RemoteMessage { message_type: Some(MessageType::DisconnectRequest(Default::default())) };
                        let _ = tx.send(Ok(Outbound::Control(bye))).await;
                        return;
                    }
                    // The endpoint's writer drains our side; keep reading
                    // until the peer hangs up, for a bounded time.
                    Attached::Endpoint(..) => deadline = Some(tokio::time::Instant::now() + Duration::from_secs(3)),
                }
                continue;
            }
            // select! builds every branch's future on each pass, so this one
            // must not read the clock or create a timer while there is no deadline.
            _ = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            }, if deadline.is_some() => break,
        };
        match next {
            Ok(Some(Inbound::Batch(batch))) => {
                if remote.is_blocked(&member_id) {
                    refuse_batch(&remote, &batch, &address, &member_id);
                    break;
                }
                deliver(&remote, &batch, &member_id, &mut receiving)
            }
            Ok(Some(Inbound::Control(RemoteMessage { message_type: Some(MessageType::DisconnectRequest(_)) })))
            | Ok(None) => break,
            Ok(Some(other)) => tracing::debug!(%address, "ignoring unexpected message on an inbound stream: {other:?}"),
            Err(status) => {
                tracing::warn!(%address, %status, "inbound stream failed; the peer will reconnect");
                if let Attached::Control(tx) = &attached {
                    let _ = tx.send(Err(status)).await;
                }
                break;
            }
        }
    }
    if let Attached::Endpoint(endpoint, generation) = attached {
        endpoint.detach(generation);
    }
}

/// What a stream's reader keeps from one batch to the next: the buffers
/// delivering a batch needs, and the pids of the targets it delivered to
/// lately, resolved once instead of once per batch (a round trip is one
/// batch each way).
pub(crate) struct Receiving<'a> {
    /// The peer's address, shared by the pids of its senders.
    peer: Arc<str>,
    local: Arc<str>,
    slots: Vec<wire::TypeSlot<'a>>,
    senders: Vec<Pid>,
    targets: Vec<Pid>,
    pending: Vec<Envelope>,
    known: HashMap<String, Pid, WordHash>,
}

/// Targets remembered per stream before the memory starts over.
const KNOWN_TARGETS: usize = 1024;

impl Receiving<'_> {
    pub(crate) fn new(remote: &RemoteInner, peer_address: &str) -> Self {
        Receiving {
            peer: Arc::from(peer_address),
            local: remote.system.address(),
            slots: Vec::new(),
            senders: Vec::new(),
            targets: Vec::new(),
            pending: Vec::new(),
            known: HashMap::default(),
        }
    }

    fn target(&mut self, id: &str) -> Pid {
        if let Some(pid) = self.known.get(id) {
            return pid.clone();
        }
        let pid = Pid::new(self.local.clone(), id);
        // A request's future answers once: remembering it would only evict others.
        if !id.starts_with("future$") {
            if self.known.len() >= KNOWN_TARGETS {
                self.known.clear();
            }
            self.known.insert(id.to_string(), pid.clone());
        }
        pid
    }
}

/// [`deliver_batch`] from a connection's reader task. A lone message (a
/// request waiting for its answer, most likely) is handled on this task by
/// the actor it wakes, one task hop less on its way (see
/// [`protoactor_actor::deliver_inline`]); a larger batch leaves the actors
/// to their lanes, so the reader goes on reading while they work.
pub(crate) fn deliver<'a>(remote: &'a RemoteInner, batch: &InBatch, peer_member: &str, receiving: &mut Receiving<'a>) {
    if batch.envelopes.len() == 1 {
        protoactor_actor::deliver_inline(|| deliver_batch(remote, batch, peer_member, receiving));
    } else {
        deliver_batch(remote, batch, peer_member, receiving);
    }
}

/// Delivers every envelope of a batch; a bad envelope is logged and skipped,
/// never the whole stream.
pub(crate) fn deliver_batch<'a>(
    remote: &'a RemoteInner,
    batch: &InBatch,
    peer_member: &str,
    receiving: &mut Receiving<'a>,
) {
    let system = &remote.system;
    let peer = receiving.peer.clone();
    let peer_address: &str = &peer;
    let local = receiving.local.clone();
    let _span = tracing::trace_span!("remote.receive", peer = peer_address, messages = batch.envelopes.len()).entered();
    let mut senders = std::mem::take(&mut receiving.senders);
    senders.clear();
    senders.extend(batch.senders.iter().map(|p| {
        let address = if p.address.is_empty() { receiving.peer.clone() } else { Arc::from(p.address.as_str()) };
        Pid::with_request_id(address, p.id.as_str(), p.request_id)
    }));
    let mut targets = std::mem::take(&mut receiving.targets);
    targets.clear();
    for t in &batch.targets {
        targets.push(receiving.target(t));
    }
    let mut slots = std::mem::take(&mut receiving.slots);
    wire::type_slots_into(&remote.serialization, batch, &mut slots);
    // Consecutive messages to one target go to its mailbox together.
    let mut run: Option<usize> = None;
    let mut pending = std::mem::take(&mut receiving.pending);
    pending.clear();
    let flush = |run: Option<usize>, pending: &mut Vec<Envelope>| {
        if let Some(target) = run
            && !pending.is_empty()
        {
            system.send_user_messages(&targets[target], pending);
        }
    };
    for envelope in &batch.envelopes {
        match wire::decode_envelope(&slots, batch, envelope, &senders, peer_address) {
            Ok(Delivery::User { target, envelope }) => {
                if run != Some(target) {
                    flush(run, &mut pending);
                    run = Some(target);
                }
                pending.push(envelope);
            }
            Ok(Delivery::System { target, message }) => {
                flush(run, &mut pending);
                let pid = &targets[target];
                if let SystemMessage::Terminated(t) = &message {
                    remote.remote_terminated(peer_address, &t.who, pid);
                }
                system.send_system_message(pid, message);
            }
            Err(error) => {
                remote.log_decode_error(peer_address, peer_member, &error);
                let type_name = usize::try_from(envelope.type_id)
                    .ok()
                    .and_then(|i| batch.type_names.get(i))
                    .cloned()
                    .unwrap_or_default();
                let target = usize::try_from(envelope.target)
                    .ok()
                    .and_then(|i| targets.get(i))
                    .cloned()
                    .unwrap_or_else(|| system.dead_letter_pid());
                let kind = error.delivery_kind();
                let reason = match &error {
                    crate::Error::UnknownTypeName(name) => format!(
                        "the receiving system {local} does not know the message type `{name}`: register it there too \
                         (`RemoteConfig::with_protobuf` / `with_json`)"
                    ),
                    other => format!("the receiving system {local} could not read the message: {other}"),
                };
                let data = batch.data(envelope).to_vec();
                let undelivered = UndeliveredRemoteMessage { type_name, data, kind, reason: reason.clone() };
                flush(run, &mut pending);
                // The sender learns why at once (a waiting request fails with
                // this kind instead of timing out); the dead letter keeps the bytes.
                if let Some(sender) = wire::sender_index(envelope.sender).and_then(|i| senders.get(i)) {
                    let failure = DeliveryFailure { target: target.clone(), kind, reason };
                    system.send_user_message(sender, Envelope::new(failure));
                }
                system.dead_letter(&target, Envelope::new(undelivered));
            }
        }
    }
    flush(run, &mut pending);
    // Emptied, but keeping their capacity for the next batch.
    senders.clear();
    targets.clear();
    slots.clear();
    receiving.senders = senders;
    receiving.targets = targets;
    receiving.slots = slots;
    receiving.pending = pending;
}

/// A batch from a member that is blocked: nothing of it is delivered; each
/// message is a dead letter saying why.
pub(crate) fn refuse_batch(remote: &RemoteInner, batch: &InBatch, peer_address: &str, peer_member: &str) {
    let system = &remote.system;
    let local = system.address();
    tracing::info!(
        member = peer_member,
        peer = peer_address,
        messages = batch.envelopes.len(),
        "refused a batch from a blocked member"
    );
    let reason = format!("the sending member {peer_member} ({peer_address}) is blocked");
    for envelope in &batch.envelopes {
        let type_name =
            usize::try_from(envelope.type_id).ok().and_then(|i| batch.type_names.get(i)).cloned().unwrap_or_default();
        let target = usize::try_from(envelope.target)
            .ok()
            .and_then(|i| batch.targets.get(i))
            .map_or_else(|| system.dead_letter_pid(), |t| Pid::new(local.clone(), t.as_str()));
        let undelivered = UndeliveredRemoteMessage {
            type_name,
            data: batch.data(envelope).to_vec(),
            kind: protoactor_actor::DeliveryFailureKind::BlockedMember,
            reason: reason.clone(),
        };
        system.dead_letter(&target, Envelope::new(undelivered));
    }
}
