//! The receiving side: the gRPC service that accepts a peer's stream, checks
//! its handshake against the block list and delivers its batches locally.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::Stream;
use protoactor_actor::{Envelope, Pid, SystemMessage};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::proto::remote_message::MessageType;
use crate::proto::remoting_server::Remoting;
use crate::proto::{ConnectResponse, MessageBatch, RemoteMessage, connect_request};
use crate::remote::RemoteInner;
use crate::wire::{self, Delivery, UndeliveredRemoteMessage};

pub(crate) struct RemotingService {
    pub(crate) remote: Arc<RemoteInner>,
}

type ResponseStream = Pin<Box<dyn Stream<Item = Result<RemoteMessage, Status>> + Send>>;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[tonic::async_trait]
impl Remoting for RemotingService {
    type ReceiveStream = ResponseStream;

    async fn receive(
        &self,
        request: Request<Streaming<RemoteMessage>>,
    ) -> Result<Response<Self::ReceiveStream>, Status> {
        if self.remote.is_shutting_down() {
            return Err(Status::unavailable("this system is shutting down"));
        }
        let peer = request.remote_addr();
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel::<Result<RemoteMessage, Status>>(4);
        let remote = self.remote.clone();
        let mut shutdown = remote.shutdown.subscribe();
        let runtime = remote.system.runtime().clone();
        runtime.spawn(async move {
            let first = tokio::time::timeout(HANDSHAKE_TIMEOUT, inbound.message()).await;
            let connection = match first {
                Ok(Ok(Some(RemoteMessage { message_type: Some(MessageType::ConnectRequest(c)) }))) => c.connection_type,
                other => {
                    tracing::warn!(?peer, "refusing a stream that did not open with a ConnectRequest: {other:?}");
                    let _ = tx.send(Err(Status::invalid_argument("the first message must be a ConnectRequest"))).await;
                    return;
                }
            };
            let (member_id, address) = match connection {
                Some(connect_request::ConnectionType::ServerConnection(s)) => {
                    if s.block_list.iter().any(|id| id == remote.system.id()) {
                        tracing::warn!(peer = %s.address, "the peer has blocked this system");
                    }
                    (s.member_id, s.address)
                }
                Some(connect_request::ConnectionType::ClientConnection(c)) => (c.member_id, String::new()),
                None => {
                    let _ = tx.send(Err(Status::invalid_argument("ConnectRequest without a connection type"))).await;
                    return;
                }
            };
            if remote.is_blocked(&member_id) {
                tracing::info!(member = %member_id, %address, "refused a blocked system");
                let refusal = ConnectResponse { member_id: remote.system.id().to_string(), blocked: true };
                let _ = tx.send(Ok(RemoteMessage { message_type: Some(MessageType::ConnectResponse(refusal)) })).await;
                return;
            }
            let welcome = ConnectResponse { member_id: remote.system.id().to_string(), blocked: false };
            if tx.send(Ok(RemoteMessage { message_type: Some(MessageType::ConnectResponse(welcome)) })).await.is_err() {
                return;
            }
            tracing::debug!(member = %member_id, %address, "inbound stream connected");
            loop {
                let next = tokio::select! {
                    m = inbound.message() => m,
                    _ = shutdown.changed() => {
                        let bye = RemoteMessage { message_type: Some(MessageType::DisconnectRequest(Default::default())) };
                        let _ = tx.send(Ok(bye)).await;
                        return;
                    }
                };
                match next {
                    Ok(Some(RemoteMessage { message_type: Some(MessageType::MessageBatch(batch)) })) => {
                        deliver_batch(&remote, &batch, &address);
                    }
                    Ok(Some(RemoteMessage { message_type: Some(MessageType::DisconnectRequest(_)) })) | Ok(None) => return,
                    Ok(Some(other)) => tracing::debug!(%address, "ignoring unexpected message on an inbound stream: {other:?}"),
                    Err(status) => {
                        tracing::warn!(%address, %status, "inbound stream failed; the peer will reconnect");
                        let _ = tx.send(Err(status)).await;
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// Delivers every envelope of a batch; a bad envelope is logged and skipped,
/// never the whole stream.
pub(crate) fn deliver_batch(remote: &RemoteInner, batch: &MessageBatch, peer_address: &str) {
    let system = &remote.system;
    let local = system.address();
    let _span = tracing::trace_span!("remote.receive", peer = peer_address, messages = batch.envelopes.len()).entered();
    let senders: Vec<Pid> = batch.senders.iter().map(|p| wire::pid_from_wire(p, peer_address)).collect();
    // Resolved once per batch; the pid caches the process for the rest.
    let mut targets: Vec<Option<Pid>> = vec![None; batch.targets.len()];
    let slots = wire::type_slots(&remote.serialization, batch);
    for envelope in &batch.envelopes {
        match wire::decode_envelope(&slots, batch, envelope, &senders, peer_address) {
            Ok(Delivery::User { target, envelope }) => {
                let pid =
                    targets[target].get_or_insert_with(|| Pid::new(local.clone(), batch.targets[target].as_str()));
                system.send_user_message(pid, envelope);
            }
            Ok(Delivery::System { target, message }) => {
                let pid =
                    targets[target].get_or_insert_with(|| Pid::new(local.clone(), batch.targets[target].as_str()));
                if let SystemMessage::Terminated(t) = &message {
                    remote.remote_terminated(peer_address, &t.who, pid);
                }
                system.send_system_message(pid, message);
            }
            Err(error) => {
                remote.log_decode_error(peer_address, &error);
                let type_name = usize::try_from(envelope.type_id)
                    .ok()
                    .and_then(|i| batch.type_names.get(i))
                    .cloned()
                    .unwrap_or_default();
                let target = usize::try_from(envelope.target)
                    .ok()
                    .and_then(|i| batch.targets.get(i))
                    .map(|t| Pid::new(local.clone(), t.as_str()))
                    .unwrap_or_else(|| system.dead_letter_pid());
                let undelivered = UndeliveredRemoteMessage { type_name, data: envelope.message_data.clone() };
                // With its sender, so a waiting request fails at once instead of timing out.
                let sender = wire::sender_index(envelope.sender).and_then(|i| senders.get(i)).cloned();
                system.dead_letter(&target, Envelope::new(undelivered).with_sender(sender));
            }
        }
    }
}
