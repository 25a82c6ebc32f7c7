//! Between envelopes and the wire: encoding outgoing messages (user and
//! system), building de-duplicated batches, and decoding received ones.

use std::collections::HashMap;
use std::sync::Arc;

use prost::Message as _;
use protoactor_actor::proto as actor_proto;
use protoactor_actor::{
    AnyMessage, DeadLetterResponse, DeliveryFailure, Envelope, MessageHeader, Pid, PoisonPill, SystemMessage,
    Terminated, TerminatedReason,
};

use crate::codec::{InBatch, InEnvelope, OutBatch, OutEnvelope, delimited_len};
use crate::error::Error;
use crate::serialization::{EncodeFn, PROTOBUF, Serialization};

/// One message ready for the wire.
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub(crate) target: TargetId,
    pub(crate) target_request_id: u32,
    pub(crate) sender: Option<Pid>,
    pub(crate) type_name: &'static str,
    pub(crate) serializer_id: i32,
    pub(crate) payload: Payload,
    pub(crate) header: Option<MessageHeader>,
}

/// A target pid's id, copied when short (most are) so that queueing a
/// message does not touch a reference count every sender to that pid shares.
#[derive(Clone)]
pub(crate) enum TargetId {
    Inline(u8, [u8; INLINE_ID]),
    Shared(Arc<str>),
}

const INLINE_ID: usize = 22;

impl TargetId {
    pub(crate) fn new(id: &Arc<str>) -> Self {
        let bytes = id.as_bytes();
        if bytes.len() <= INLINE_ID {
            let mut inline = [0u8; INLINE_ID];
            inline[..bytes.len()].copy_from_slice(bytes);
            TargetId::Inline(bytes.len() as u8, inline)
        } else {
            TargetId::Shared(id.clone())
        }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        match self {
            TargetId::Inline(len, bytes) => &bytes[..usize::from(*len)],
            TargetId::Shared(s) => s.as_bytes(),
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        // Always valid: copied whole from a `str`.
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }

    pub(crate) fn len(&self) -> usize {
        self.as_bytes().len()
    }
}

impl std::fmt::Debug for TargetId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A message's bytes, or the message itself when its encoded length is
/// known without encoding it (protobuf): it is then serialized straight
/// into the frame that carries it.
pub(crate) enum Payload {
    Bytes(Vec<u8>),
    Message { message: AnyMessage, encode: EncodeFn, len: usize },
}

impl Payload {
    pub(crate) fn len(&self) -> usize {
        match self {
            Payload::Bytes(b) => b.len(),
            Payload::Message { len, .. } => *len,
        }
    }
}

impl std::fmt::Debug for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Payload::Bytes(b) => write!(f, "{} bytes", b.len()),
            Payload::Message { message, len, .. } => write!(f, "{} ({len} bytes)", message.type_name()),
        }
    }
}

/// Stands in for a message that was serialized for another system but never
/// delivered (published in the `DeadLetterEvent`).
#[derive(Debug, Clone)]
pub struct UndeliveredRemoteMessage {
    /// The wire type name.
    pub type_name: String,
    /// Its encoded bytes.
    pub data: Vec<u8>,
}

pub(crate) const WATCH: &str = "actor.Watch";
pub(crate) const UNWATCH: &str = "actor.Unwatch";
pub(crate) const TERMINATED: &str = "actor.Terminated";
pub(crate) const STOP: &str = "actor.Stop";
pub(crate) const POISON_PILL: &str = "actor.PoisonPill";
pub(crate) const DEAD_LETTER_RESPONSE: &str = "actor.DeadLetterResponse";

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

fn encode_proto(m: &impl prost::Message) -> Payload {
    Payload::Bytes(m.encode_to_vec())
}

/// Encodes a user message for `target` on the wire.
pub(crate) fn encode_user(
    serialization: &Serialization,
    local_address: &str,
    target: &Pid,
    envelope: Envelope,
) -> Result<(Outgoing, bool), Box<(Error, Envelope)>> {
    // Registered types first: they are nearly all the traffic.
    if let Ok(entry) = serialization.entry(envelope.message()) {
        let (name, serializer_id, priority) = (entry.name, entry.serializer_id, entry.priority);
        let payload = match entry.encoded_len {
            Some(encoded_len) => {
                let len = encoded_len(envelope.message());
                let encode = entry.encode;
                let (message, sender, header) = envelope.into_parts();
                let payload = Payload::Message { message, encode, len };
                return Ok((outgoing(target, sender, name, serializer_id, payload, header), priority));
            }
            None => match serialization.encode_with(entry, envelope.message()) {
                Ok(bytes) => Payload::Bytes(bytes),
                Err(e) => return Err(Box::new((e, envelope))),
            },
        };
        let (_, sender, header) = envelope.into_parts();
        return Ok((outgoing(target, sender, name, serializer_id, payload, header), priority));
    }
    let (type_name, payload) = if envelope.message_as::<PoisonPill>().is_some() {
        (POISON_PILL, encode_proto(&actor_proto::PoisonPill {}))
    } else if let Some(r) = envelope.message_as::<DeadLetterResponse>() {
        let m = actor_proto::DeadLetterResponse { target: Some(pid_to_wire(&r.target, local_address)) };
        (DEAD_LETTER_RESPONSE, encode_proto(&m))
    } else if let Some(r) = envelope.message_as::<DeliveryFailure>() {
        // The wire has no failure reason; the remote requester fails fast as a dead letter.
        let m = actor_proto::DeadLetterResponse { target: Some(pid_to_wire(&r.target, local_address)) };
        (DEAD_LETTER_RESPONSE, encode_proto(&m))
    } else {
        return Err(Box::new((Error::NotSerializable { type_name: envelope.type_name() }, envelope)));
    };
    let (serializer_id, priority) = (PROTOBUF, false);
    let (_, sender, header) = envelope.into_parts();
    Ok((outgoing(target, sender, type_name, serializer_id, payload, header), priority))
}

fn outgoing(
    target: &Pid,
    sender: Option<Pid>,
    type_name: &'static str,
    serializer_id: i32,
    payload: Payload,
    header: Option<MessageHeader>,
) -> Outgoing {
    Outgoing {
        target: TargetId::new(target.id_arc()),
        target_request_id: target.request_id(),
        sender,
        type_name,
        serializer_id,
        payload,
        header: header.filter(|h| !h.is_empty()),
    }
}

/// Encodes a system message; `None` for those that never cross the wire.
pub(crate) fn encode_system(local_address: &str, target: &Pid, message: SystemMessage) -> Option<Outgoing> {
    let (type_name, payload) = match message {
        SystemMessage::Watch(w) => {
            (WATCH, encode_proto(&actor_proto::Watch { watcher: Some(pid_to_wire(&w, local_address)) }))
        }
        SystemMessage::Unwatch(w) => {
            (UNWATCH, encode_proto(&actor_proto::Unwatch { watcher: Some(pid_to_wire(&w, local_address)) }))
        }
        SystemMessage::Terminated(t) => (
            TERMINATED,
            encode_proto(&actor_proto::Terminated { who: Some(pid_to_wire(&t.who, local_address)), why: t.why as i32 }),
        ),
        SystemMessage::Stop => (STOP, encode_proto(&actor_proto::Stop {})),
        other => {
            tracing::debug!(?other, %target, "system message not sent across the wire");
            return None;
        }
    };
    Some(outgoing(target, None, type_name, PROTOBUF, payload, None))
}

/// Hashes a pointer-sized key with one multiply: the de-dup tables below are
/// keyed by the address of the shared string, so a message costs no string hashing.
#[derive(Default, Clone, Copy)]
pub(crate) struct PtrHasher(u64);

impl std::hash::Hasher for PtrHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_usize(&mut self, n: usize) {
        self.0 = (n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type PtrMap = HashMap<usize, i32, std::hash::BuildHasherDefault<PtrHasher>>;

/// Packs outgoing messages into batches under the frame size.
///
/// Type names are de-duplicated by the identity of their interned strings,
/// targets by their text.
pub(crate) struct BatchBuilder {
    local_address: Arc<str>,
    max_frame: usize,
    batch: OutBatch,
    types: PtrMap,
    targets: HashMap<Vec<u8>, i32>,
    /// The last type and target pushed: a run of messages of one type to
    /// one target skips the tables.
    last: Option<(usize, i32, i32)>,
    senders: HashMap<Pid, i32>,
}

/// Room for the `RemoteMessage` key and length around a batch.
const FRAME_OVERHEAD: usize = 16;

impl BatchBuilder {
    pub(crate) fn new(local_address: Arc<str>, max_frame: usize) -> Self {
        BatchBuilder {
            local_address,
            max_frame: max_frame.saturating_sub(FRAME_OVERHEAD),
            batch: OutBatch::default(),
            types: PtrMap::default(),
            targets: HashMap::new(),
            last: None,
            senders: HashMap::new(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.batch.envelopes.is_empty()
    }

    /// Makes room for `n` more envelopes in one allocation.
    pub(crate) fn reserve(&mut self, n: usize) {
        self.batch.envelopes.reserve(n);
    }

    /// True if `o` fits in the current batch (an empty batch takes anything:
    /// the sender already refused messages that cannot fit a frame alone).
    pub(crate) fn fits(&self, o: &Outgoing) -> bool {
        self.is_empty() || self.batch.body_len + envelope_cost(o) <= self.max_frame
    }

    pub(crate) fn push(&mut self, o: Outgoing) {
        let type_key = o.type_name.as_ptr() as usize;
        let (type_id, target) = match self.last {
            Some((t, ti, gi)) if t == type_key && self.batch.targets[gi as usize].as_bytes() == o.target.as_bytes() => {
                (ti, gi)
            }
            _ => {
                let type_id = self.index_of_type(o.type_name);
                let target = self.index_of_target(o.target);
                self.last = Some((type_key, type_id, target));
                (type_id, target)
            }
        };
        let sender = match &o.sender {
            None => 0,
            Some(pid) => match self.senders.get(pid) {
                Some(i) => *i,
                None => {
                    let wire = pid_to_wire(pid, &self.local_address);
                    self.batch.body_len += delimited_len(prost::Message::encoded_len(&wire));
                    self.batch.senders.push(wire);
                    let i = self.batch.senders.len() as i32;
                    self.senders.insert(pid.clone(), i);
                    i
                }
            },
        };
        let header = o.header.map(|h| crate::proto::MessageHeader {
            header_data: h.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        });
        let mut envelope = OutEnvelope {
            type_id,
            payload: o.payload,
            target,
            sender,
            serializer_id: o.serializer_id,
            header,
            target_request_id: o.target_request_id,
            sender_request_id: o.sender.as_ref().map(|s| s.request_id()).unwrap_or(0),
            len: 0,
        };
        envelope.len = envelope.encoded_len();
        self.batch.body_len += delimited_len(envelope.len);
        self.batch.envelopes.push(envelope);
    }

    fn index_of_type(&mut self, s: &'static str) -> i32 {
        let OutBatch { type_names, body_len, .. } = &mut self.batch;
        *self.types.entry(s.as_ptr() as usize).or_insert_with(|| {
            *body_len += delimited_len(s.len());
            type_names.push(s);
            (type_names.len() - 1) as i32
        })
    }

    fn index_of_target(&mut self, target: TargetId) -> i32 {
        if let Some(i) = self.targets.get(target.as_bytes()) {
            return *i;
        }
        let OutBatch { targets, body_len, .. } = &mut self.batch;
        *body_len += delimited_len(target.len());
        let i = targets.len() as i32;
        self.targets.insert(target.as_bytes().to_vec(), i);
        targets.push(target);
        i
    }

    pub(crate) fn take(&mut self) -> OutBatch {
        self.types.clear();
        self.targets.clear();
        self.senders.clear();
        self.last = None;
        std::mem::take(&mut self.batch)
    }
}

/// The 0-based slot of a 1-based wire sender index (0 = none; any i32 is safe).
pub(crate) fn sender_index(wire_index: i32) -> Option<usize> {
    wire_index.checked_sub(1).and_then(|i| usize::try_from(i).ok())
}

/// Bytes an envelope adds besides its payload, at most (indices, ids, tags, lengths).
const ENVELOPE_OVERHEAD: usize = 64;

/// Upper bound of the bytes `o` adds to any batch (nothing de-duplicated).
pub(crate) fn envelope_cost(o: &Outgoing) -> usize {
    let mut c = o.payload.len() + ENVELOPE_OVERHEAD + o.type_name.len() + 4 + o.target.len() + 4;
    if let Some(s) = &o.sender {
        c += s.id().len() + s.address().len() + 8;
    }
    if let Some(h) = &o.header {
        c += h.iter().map(|(k, v)| k.len() + v.len() + 8).sum::<usize>();
    }
    c
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
    batch
        .type_names
        .iter()
        .map(|name| match name.as_str() {
            WATCH | UNWATCH | TERMINATED | STOP | POISON_PILL | DEAD_LETTER_RESPONSE => TypeSlot::Builtin,
            other => serialization.lookup(other).map(|e| TypeSlot::Registered(e)).unwrap_or(TypeSlot::Unknown),
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn outgoing(target: &Arc<str>, type_name: &'static str) -> Outgoing {
        Outgoing {
            target: TargetId::new(target),
            target_request_id: 0,
            sender: None,
            type_name,
            serializer_id: PROTOBUF,
            payload: Payload::Bytes(vec![1, 2, 3]),
            header: None,
        }
    }

    fn written(batch: &OutBatch) -> crate::proto::MessageBatch {
        use crate::proto::remote_message::MessageType;
        use prost::Message as _;
        let mut bytes = Vec::new();
        batch.write(&mut bytes, &mut Vec::new());
        assert_eq!(bytes.len(), batch.frame_len(), "declared length");
        match crate::proto::RemoteMessage::decode(bytes.as_slice()).expect("prost reads our frame").message_type {
            Some(MessageType::MessageBatch(b)) => b,
            other => panic!("not a batch: {other:?}"),
        }
    }

    #[test]
    fn tables_are_deduplicated_and_indices_stay_right() {
        let t = "test.T";
        let mut builder = BatchBuilder::new("127.0.0.1:1".into(), 1 << 20);
        let a: Arc<str> = Arc::from("a");
        builder.push(outgoing(&a, t));
        builder.push(outgoing(&a, t));
        // Ids made and dropped per message: a freed address may come back for another id.
        for i in 0..100 {
            let id: Arc<str> = Arc::from(format!("x{i}").as_str());
            builder.push(outgoing(&id, t));
        }
        let batch = written(&builder.take());
        assert_eq!(batch.type_names, vec!["test.T".to_string()]);
        assert_eq!(batch.envelopes.len(), 102);
        assert_eq!(batch.targets[batch.envelopes[0].target as usize], "a");
        assert_eq!(batch.envelopes[0].target, batch.envelopes[1].target);
        for (i, e) in batch.envelopes[2..].iter().enumerate() {
            assert_eq!(batch.targets[e.target as usize], format!("x{i}"));
        }
    }

    #[test]
    fn batches_split_under_the_frame_size() {
        let t = "test.T";
        let a: Arc<str> = Arc::from("a");
        let mut builder = BatchBuilder::new("127.0.0.1:1".into(), 4096);
        let mut batches = 0;
        for _ in 0..100 {
            let mut o = outgoing(&a, t);
            o.payload = Payload::Bytes(vec![0; 1000]);
            if !builder.fits(&o) {
                let b = builder.take();
                assert!(b.frame_len() <= 4096, "{} bytes", b.frame_len());
                assert_eq!(written(&b).envelopes.len(), b.envelopes.len());
                batches += 1;
            }
            builder.push(o);
        }
        assert!(batches >= 20, "{batches} batches");
    }

    #[test]
    fn messages_are_serialized_into_the_frame_with_senders_and_headers() {
        let mut serialization = Serialization::new();
        serialization.register_protobuf_named::<actor_proto::Pid>("actor.PID");
        let local = "127.0.0.1:7";
        let target = Pid::new("127.0.0.1:8", "echo");
        let sender = Pid::with_request_id(local, "future$1", 9);
        let mut builder = BatchBuilder::new(local.into(), 1 << 20);
        let mut expected = Vec::new();
        for i in 0..5u32 {
            let message = actor_proto::Pid { address: "x".into(), id: format!("m{i}"), request_id: i };
            expected.push(message.clone());
            let mut envelope = Envelope::new(message).with_sender(Some(sender.clone()));
            if i == 2 {
                envelope = envelope.with_header(MessageHeader::new().with("k", "v"));
            }
            let (o, _) = encode_user(&serialization, local, &target, envelope).expect("registered");
            assert!(matches!(o.payload, Payload::Message { .. }), "protobuf is deferred");
            builder.push(o);
        }
        let batch = written(&builder.take());
        assert_eq!(batch.type_names, vec!["actor.PID".to_string()]);
        assert_eq!(batch.targets, vec!["echo".to_string()]);
        assert_eq!(batch.senders.len(), 1, "one sender table entry");
        assert_eq!(batch.senders[0].address, "", "local senders travel without an address");
        for (e, m) in batch.envelopes.iter().zip(&expected) {
            use prost::Message as _;
            assert_eq!(&actor_proto::Pid::decode(e.message_data.as_slice()).expect("payload"), m);
            assert_eq!((e.sender, e.sender_request_id), (1, 9));
        }
        let headers: Vec<_> = batch.envelopes.iter().map(|e| e.message_header.is_some()).collect();
        assert_eq!(headers, vec![false, false, true, false, false]);
    }
}
