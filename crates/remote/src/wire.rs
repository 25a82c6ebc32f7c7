//! Between envelopes and the wire: encoding outgoing messages (user and
//! system), building de-duplicated batches, and decoding received ones.

use prost::Message as _;
use protoactor_actor::proto as actor_proto;
use protoactor_actor::{
    AnyMessage, DeadLetterResponse, DeliveryFailure, DeliveryFailureKind, Envelope, MessageHeader, Pid, PoisonPill,
    SystemMessage, Terminated, TerminatedReason,
};

use crate::codec::{InBatch, InEnvelope};
use crate::error::Error;
use crate::serialization::{PROTOBUF, Serialization};

/// Stands in for a message that was serialized for another system but never
/// delivered (published in the `DeadLetterEvent`).
#[derive(Debug, Clone)]
pub struct UndeliveredRemoteMessage {
    /// The wire type name.
    pub type_name: String,
    /// Its encoded bytes.
    pub data: Vec<u8>,
    /// Why it was not delivered.
    pub kind: DeliveryFailureKind,
    /// The reason in words (empty if there is nothing to add to `kind`).
    pub reason: String,
}

pub(crate) const WATCH: &str = "actor.Watch";
pub(crate) const UNWATCH: &str = "actor.Unwatch";
pub(crate) const TERMINATED: &str = "actor.Terminated";
pub(crate) const STOP: &str = "actor.Stop";
pub(crate) const POISON_PILL: &str = "actor.PoisonPill";
pub(crate) const DEAD_LETTER_RESPONSE: &str = "actor.DeadLetterResponse";
pub(crate) const DELIVERY_FAILURE: &str = "remote.DeliveryFailure";

/// Encodes a local pid for the wire: pids of this system travel with an empty
/// address, which the receiver fills with ours.
pub(crate) fn pid_to_wire(pid: &Pid, local_address: &str) -> actor_proto::Pid {
    let address = if pid.address() == local_address || pid.address() == protoactor_actor::LOCAL_ADDRESS {
        String::new()
    } else {
        pid.address().to_string()
    };
    actor_proto::Pid { address, id: pid.id().to_string(), request_id: pid.request_id() }
}

pub(crate) fn pid_from_wire(pid: &actor_proto::Pid, peer_address: &str) -> Pid {
    let address = if pid.address.is_empty() { peer_address } else { pid.address.as_str() };
    Pid::with_request_id(address, pid.id.as_str(), pid.request_id)
}

/// What a message was encoded as.
pub(crate) struct Encoded {
    pub(crate) type_name: &'static str,
    pub(crate) serializer_id: i32,
    /// Sent in the priority lane.
    pub(crate) priority: bool,
}

fn encode_proto(m: &impl prost::Message, into: &mut Vec<u8>) {
    into.clear();
    into.reserve(m.encoded_len());
    // Writing to a Vec only fails when it cannot grow, which aborts anyway.
    let _ = m.encode(into);
}

/// Encodes a user message's payload into `into`.
pub(crate) fn encode_user(
    serialization: &Serialization,
    local_address: &str,
    envelope: &Envelope,
    into: &mut Vec<u8>,
) -> Result<Encoded, Error> {
    // Registered types first: they are nearly all the traffic.
    if let Ok(entry) = serialization.entry(envelope.message()) {
        into.clear();
        serialization.encode_into(entry, envelope.message(), into)?;
        return Ok(Encoded { type_name: entry.name, serializer_id: entry.serializer_id, priority: entry.priority });
    }
    let type_name = if envelope.message_as::<PoisonPill>().is_some() {
        encode_proto(&actor_proto::PoisonPill {}, into);
        POISON_PILL
    } else if let Some(r) = envelope.message_as::<DeadLetterResponse>() {
        encode_proto(&actor_proto::DeadLetterResponse { target: Some(pid_to_wire(&r.target, local_address)) }, into);
        DEAD_LETTER_RESPONSE
    } else if let Some(r) = envelope.message_as::<DeliveryFailure>() {
        let m = crate::proto::DeliveryFailure {
            target: Some(pid_to_wire(&r.target, local_address)),
            kind: r.kind.code(),
            reason: r.reason.clone(),
        };
        encode_proto(&m, into);
        DELIVERY_FAILURE
    } else {
        return Err(Error::NotSerializable { type_name: envelope.type_name() });
    };
    Ok(Encoded { type_name, serializer_id: PROTOBUF, priority: false })
}

/// Encodes a system message into `into`; `None` for those that never cross the wire.
pub(crate) fn encode_system(
    local_address: &str,
    target: &Pid,
    message: &SystemMessage,
    into: &mut Vec<u8>,
) -> Option<&'static str> {
    let type_name = match message {
        SystemMessage::Watch(w) => {
            encode_proto(&actor_proto::Watch { watcher: Some(pid_to_wire(w, local_address)) }, into);
            WATCH
        }
        SystemMessage::Unwatch(w) => {
            encode_proto(&actor_proto::Unwatch { watcher: Some(pid_to_wire(w, local_address)) }, into);
            UNWATCH
        }
        SystemMessage::Terminated(t) => {
            let m = actor_proto::Terminated { who: Some(pid_to_wire(&t.who, local_address)), why: t.why as i32 };
            encode_proto(&m, into);
            TERMINATED
        }
        SystemMessage::Stop => {
            encode_proto(&actor_proto::Stop {}, into);
            STOP
        }
        other => {
            tracing::debug!(?other, %target, "system message not sent across the wire");
            return None;
        }
    };
    Some(type_name)
}

/// The 0-based slot of a 1-based wire sender index (0 = none; any i32 is safe).
pub(crate) fn sender_index(wire_index: i32) -> Option<usize> {
    wire_index.checked_sub(1).and_then(|i| usize::try_from(i).ok())
}

/// A decoded envelope, ready to deliver locally.
pub(crate) enum Delivery {
    User { target: usize, envelope: Envelope },
    System { target: usize, message: SystemMessage },
}

/// What a batch's type name stands for, resolved once per batch.
pub(crate) enum TypeSlot<'a> {
    Builtin,
    Registered(&'a crate::serialization::NameEntry),
    Unknown,
}

/// Resolves every type name of `batch` against the registry.
pub(crate) fn type_slots<'a>(serialization: &'a Serialization, batch: &InBatch) -> Vec<TypeSlot<'a>> {
    let mut slots = Vec::with_capacity(batch.type_names.len());
    type_slots_into(serialization, batch, &mut slots);
    slots
}

/// [`type_slots`] into a buffer the caller reuses (cleared first).
pub(crate) fn type_slots_into<'a>(serialization: &'a Serialization, batch: &InBatch, slots: &mut Vec<TypeSlot<'a>>) {
    slots.clear();
    slots.extend(batch.type_names.iter().map(|name| match name.as_str() {
        WATCH | UNWATCH | TERMINATED | STOP | POISON_PILL | DEAD_LETTER_RESPONSE | DELIVERY_FAILURE => {
            TypeSlot::Builtin
        }
        other => serialization.lookup(other).map(|e| TypeSlot::Registered(e)).unwrap_or(TypeSlot::Unknown),
    }));
}

/// Decodes one envelope of `batch`; the target is an index into `batch.targets`.
pub(crate) fn decode_envelope(
    slots: &[TypeSlot<'_>],
    batch: &InBatch,
    envelope: &InEnvelope,
    senders: &[Pid],
    peer_address: &str,
) -> Result<Delivery, Error> {
    let bad = |what: &str| Error::Deserialize { type_name: "<batch>".into(), reason: what.to_string() };
    let type_index = usize::try_from(envelope.type_id).ok().filter(|i| *i < batch.type_names.len());
    let type_index = type_index.ok_or_else(|| bad("type index out of range"))?;
    let type_name = &batch.type_names[type_index];
    let target = usize::try_from(envelope.target)
        .ok()
        .filter(|i| *i < batch.targets.len())
        .ok_or_else(|| bad("target index out of range"))?;
    let sender = match envelope.sender {
        0 => None,
        i => Some(
            sender_index(i).and_then(|i| senders.get(i)).cloned().ok_or_else(|| bad("sender index out of range"))?,
        ),
    };
    let proto_err = |e: prost::DecodeError| Error::Deserialize { type_name: type_name.clone(), reason: e.to_string() };
    let data = batch.data(envelope);
    let system = |message| Ok(Delivery::System { target, message });
    let registered = match slots.get(type_index) {
        Some(TypeSlot::Registered(entry)) => Some(*entry),
        Some(TypeSlot::Unknown) | None => return Err(Error::UnknownTypeName(type_name.clone())),
        Some(TypeSlot::Builtin) => None,
    };
    if let Some(entry) = registered {
        let data = batch.data_bytes(envelope);
        let message = crate::serialization::decode_with(entry, type_name, envelope.serializer_id, data)?;
        let out = with_header(Envelope::from_boxed(message).with_sender(sender), envelope);
        return Ok(Delivery::User { target, envelope: out });
    }
    match type_name.as_str() {
        WATCH => {
            let m = actor_proto::Watch::decode(data).map_err(proto_err)?;
            let w = m.watcher.ok_or_else(|| bad("Watch without watcher"))?;
            return system(SystemMessage::Watch(pid_from_wire(&w, peer_address)));
        }
        UNWATCH => {
            let m = actor_proto::Unwatch::decode(data).map_err(proto_err)?;
            let w = m.watcher.ok_or_else(|| bad("Unwatch without watcher"))?;
            return system(SystemMessage::Unwatch(pid_from_wire(&w, peer_address)));
        }
        TERMINATED => {
            let m = actor_proto::Terminated::decode(data).map_err(proto_err)?;
            let who = m.who.ok_or_else(|| bad("Terminated without who"))?;
            let why = TerminatedReason::try_from(m.why).unwrap_or(TerminatedReason::Stopped);
            return system(SystemMessage::Terminated(Terminated { who: pid_from_wire(&who, peer_address), why }));
        }
        STOP => return system(SystemMessage::Stop),
        _ => {}
    }
    let message = match type_name.as_str() {
        POISON_PILL => AnyMessage::new(PoisonPill),
        DEAD_LETTER_RESPONSE => {
            let m = actor_proto::DeadLetterResponse::decode(data).map_err(proto_err)?;
            let t = m.target.ok_or_else(|| bad("DeadLetterResponse without target"))?;
            AnyMessage::new(DeadLetterResponse { target: pid_from_wire(&t, peer_address) })
        }
        DELIVERY_FAILURE => {
            let m = crate::proto::DeliveryFailure::decode(data).map_err(proto_err)?;
            let t = m.target.ok_or_else(|| bad("DeliveryFailure without target"))?;
            let kind = DeliveryFailureKind::from_code(m.kind);
            AnyMessage::new(DeliveryFailure { target: pid_from_wire(&t, peer_address), kind, reason: m.reason })
        }
        other => return Err(Error::UnknownTypeName(other.to_string())),
    };
    Ok(Delivery::User { target, envelope: with_header(Envelope::from_boxed(message).with_sender(sender), envelope) })
}

fn with_header(out: Envelope, envelope: &InEnvelope) -> Envelope {
    match &envelope.header {
        Some(h) if !h.header_data.is_empty() => {
            let mut header = MessageHeader::new();
            for (k, v) in &h.header_data {
                header.set(k.clone(), v.clone());
            }
            out.with_header(header)
        }
        _ => out,
    }
}
