//! The batch an endpoint is filling: a `MessageBatch` body written message
//! by message by the senders themselves, tables included. Protobuf keeps the
//! order of each repeated field however fields interleave, so a type name,
//! target or sender is written the first time a message needs it, and its
//! index is its rank among those entries. Sending a message is then one
//! encode and a few appends under the endpoint's lock; the connection ships
//! the body as one frame when it is ready for more.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use prost::Message as _;
use protoactor_actor::{MessageHeader, Pid};

use crate::codec::{
    LEN, delimited_len, int32_field_len, put_bytes, put_int32, put_key, put_uint32, put_varint, uint32_field_len,
};
use crate::wire::pid_to_wire;

/// Hashes keys that are already well spread (an address, a `TypeId`) with
/// one multiply per word instead of SipHash.
#[derive(Default, Clone, Copy)]
pub(crate) struct WordHasher(u64);

impl std::hash::Hasher for WordHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

pub(crate) type WordHash = std::hash::BuildHasherDefault<WordHasher>;

/// Type names are interned, so their address identifies them.
type PtrMap = HashMap<usize, i32, WordHash>;

/// One message to append.
pub(crate) struct Message<'a> {
    pub(crate) type_name: &'static str,
    pub(crate) serializer_id: i32,
    pub(crate) payload: &'a [u8],
    pub(crate) target: &'a Pid,
    pub(crate) sender: Option<&'a Pid>,
    pub(crate) header: Option<&'a MessageHeader>,
}

/// Bytes an envelope adds besides its payload, strings and header, at most.
const ENVELOPE_OVERHEAD: usize = 64;

impl Message<'_> {
    /// An upper bound of the bytes this message adds to any batch (tables
    /// included, nothing de-duplicated).
    pub(crate) fn cost(&self) -> usize {
        let mut c = self.payload.len() + ENVELOPE_OVERHEAD;
        c += self.type_name.len() + 8 + self.target.id().len() + 8;
        if let Some(s) = self.sender {
            c += s.id().len() + s.address().len() + 24;
        }
        if let Some(h) = self.header {
            c += h.iter().map(|(k, v)| k.len() + v.len() + 16).sum::<usize>();
        }
        c
    }
}

/// A `MessageBatch` body being written.
pub(crate) struct OpenBatch {
    local_address: Arc<str>,
    body: BytesMut,
    messages: usize,
    types: PtrMap,
    targets: HashMap<Arc<str>, i32, WordHash>,
    senders: HashMap<Pid, i32, WordHash>,
    /// The type and target of the last message: a run of messages of one
    /// type to one target skips the tables.
    last: Option<(usize, Arc<str>, i32, i32)>,
}

impl OpenBatch {
    pub(crate) fn new(local_address: Arc<str>) -> Self {
        OpenBatch {
            local_address,
            body: BytesMut::new(),
            messages: 0,
            types: PtrMap::default(),
            targets: HashMap::default(),
            senders: HashMap::default(),
            last: None,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.messages == 0
    }

    /// Messages in the batch.
    pub(crate) fn messages(&self) -> usize {
        self.messages
    }

    /// Bytes of the body so far.
    pub(crate) fn len(&self) -> usize {
        self.body.len()
    }

    pub(crate) fn push(&mut self, m: &Message<'_>) {
        let type_key = m.type_name.as_ptr() as usize;
        let target_id = m.target.id_arc();
        let (type_id, target) = match &self.last {
            Some((t, last_target, ti, gi))
                if *t == type_key && (Arc::ptr_eq(last_target, target_id) || **last_target == **target_id) =>
            {
                (*ti, *gi)
            }
            _ => {
                let type_id = self.type_index(m.type_name);
                let target = self.target_index(target_id);
                self.last = Some((type_key, target_id.clone(), type_id, target));
                (type_id, target)
            }
        };
        let sender = m.sender.map_or(0, |s| self.sender_index(s));
        let header = m.header.filter(|h| !h.is_empty()).map(|h| crate::proto::MessageHeader {
            header_data: h.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        });
        let target_request_id = m.target.request_id();
        let sender_request_id = m.sender.map_or(0, Pid::request_id);
        let payload = m.payload.len();
        let len = int32_field_len(type_id)
            + if payload == 0 { 0 } else { delimited_len(payload) }
            + int32_field_len(target)
            + int32_field_len(sender)
            + int32_field_len(m.serializer_id)
            + header.as_ref().map_or(0, |h| delimited_len(h.encoded_len()))
            + uint32_field_len(target_request_id)
            + uint32_field_len(sender_request_id);
        let body = &mut self.body;
        body.reserve(delimited_len(len));
        put_key(body, 3, LEN);
        put_varint(body, len as u64);
        put_int32(body, 1, type_id);
        if payload != 0 {
            put_bytes(body, 2, m.payload);
        }
        put_int32(body, 3, target);
        put_int32(body, 4, sender);
        put_int32(body, 5, m.serializer_id);
        if let Some(h) = &header {
            put_key(body, 6, LEN);
            put_varint(body, h.encoded_len() as u64);
            h.encode_raw(body);
        }
        put_uint32(body, 7, target_request_id);
        put_uint32(body, 8, sender_request_id);
        self.messages += 1;
    }

    fn type_index(&mut self, name: &'static str) -> i32 {
        let next = self.types.len() as i32;
        let body = &mut self.body;
        *self.types.entry(name.as_ptr() as usize).or_insert_with(|| {
            put_bytes(body, 1, name.as_bytes());
            next
        })
    }

    fn target_index(&mut self, id: &Arc<str>) -> i32 {
        if let Some(i) = self.targets.get(id) {
            return *i;
        }
        let i = self.targets.len() as i32;
        put_bytes(&mut self.body, 2, id.as_bytes());
        self.targets.insert(id.clone(), i);
        i
    }

    /// 1-based, as on the wire.
    fn sender_index(&mut self, pid: &Pid) -> i32 {
        if let Some(i) = self.senders.get(pid) {
            return *i;
        }
        let wire = pid_to_wire(pid, &self.local_address);
        put_key(&mut self.body, 4, LEN);
        put_varint(&mut self.body, wire.encoded_len() as u64);
        wire.encode_raw(&mut self.body);
        let i = self.senders.len() as i32 + 1;
        self.senders.insert(pid.clone(), i);
        i
    }

    /// The body written so far, and how many messages it holds; the batch
    /// starts over empty.
    pub(crate) fn take(&mut self) -> (Bytes, usize) {
        self.types.clear();
        self.targets.clear();
        self.senders.clear();
        self.last = None;
        let messages = std::mem::take(&mut self.messages);
        // A copy, so the buffer stays ours at its grown size: splitting it
        // off would make the next batch grow a fresh one by reallocation.
        let body = Bytes::copy_from_slice(&self.body);
        self.body.clear();
        if self.body.capacity() > 4 << 20 {
            self.body = BytesMut::new();
        }
        (body, messages)
    }
}

#[cfg(test)]
mod tests {
    use prost::Message as _;
    use protoactor_actor::proto as actor_proto;

    use super::*;
    use crate::codec::tests::{random_batch, to_prost};
    use crate::codec::{Inbound, parse_batch, parse_frame};
    use crate::proto::{MessageBatch, RemoteMessage, remote_message::MessageType};

    const LOCAL: &str = "127.0.0.1:7";

    fn read(body: Bytes) -> MessageBatch {
        let prost = MessageBatch::decode(body.clone()).expect("prost reads our batch");
        assert_eq!(to_prost(&parse_batch(body).expect("we read our batch")), prost, "both readers agree");
        prost
    }

    fn message<'a>(type_name: &'static str, payload: &'a [u8], target: &'a Pid) -> Message<'a> {
        Message { type_name, serializer_id: 1, payload, target, sender: None, header: None }
    }

    #[test]
    fn tables_are_written_once_and_indices_stay_right() {
        let mut batch = OpenBatch::new(LOCAL.into());
        let a = Pid::new("127.0.0.1:8", "a");
        batch.push(&message("test.T", b"1", &a));
        batch.push(&message("test.T", b"2", &a));
        // Ids made and dropped per message: equal text, different allocations.
        for i in 0..100 {
            let pid = Pid::new("127.0.0.1:8", format!("x{}", i % 10).as_str());
            batch.push(&message("test.U", b"", &pid));
        }
        let (body, messages) = batch.take();
        assert_eq!(messages, 102);
        let b = read(body);
        assert_eq!(b.type_names, vec!["test.T".to_string(), "test.U".to_string()]);
        assert_eq!(b.targets.len(), 11, "one slot per distinct id: {:?}", b.targets);
        assert_eq!(b.targets[b.envelopes[0].target as usize], "a");
        assert_eq!(b.envelopes[0].target, b.envelopes[1].target);
        assert_eq!(b.envelopes[1].message_data, b"2");
        for (i, e) in b.envelopes[2..].iter().enumerate() {
            assert_eq!(b.targets[e.target as usize], format!("x{}", i % 10));
            assert_eq!(b.type_names[e.type_id as usize], "test.U");
        }
        assert!(batch.is_empty() && batch.take().0.is_empty(), "starts over empty");
    }

    #[test]
    fn senders_headers_and_request_ids_travel() {
        let mut batch = OpenBatch::new(LOCAL.into());
        let target = Pid::with_request_id("127.0.0.1:8", "echo", 3);
        let local = Pid::with_request_id(LOCAL, "future$1", 9);
        let remote = Pid::new("127.0.0.1:9", "other");
        let header = MessageHeader::new().with("k", "v");
        for i in 0..4 {
            let sender = if i % 2 == 0 { &local } else { &remote };
            let m = Message {
                type_name: "test.T",
                serializer_id: 0,
                payload: b"x",
                target: &target,
                sender: Some(sender),
                header: (i == 2).then_some(&header),
            };
            batch.push(&m);
        }
        let b = read(batch.take().0);
        assert_eq!(b.senders.len(), 2);
        assert_eq!(b.senders[0], actor_proto::Pid { address: String::new(), id: "future$1".into(), request_id: 9 });
        assert_eq!(b.senders[1].address, "127.0.0.1:9", "other systems' pids keep their address");
        let senders: Vec<_> = b.envelopes.iter().map(|e| (e.sender, e.sender_request_id)).collect();
        assert_eq!(senders, vec![(1, 9), (2, 0), (1, 9), (2, 0)]);
        assert!(b.envelopes.iter().all(|e| e.target_request_id == 3));
        let headers: Vec<_> = b.envelopes.iter().map(|e| e.message_header.is_some()).collect();
        assert_eq!(headers, vec![false, false, true, false]);
    }

    #[test]
    fn cost_bounds_what_a_message_adds() {
        for _ in 0..300 {
            let mut batch = OpenBatch::new(LOCAL.into());
            let id: String = (0..fastrand::usize(1..40)).map(|_| fastrand::alphanumeric()).collect();
            let target = Pid::with_request_id("127.0.0.1:8", id.as_str(), fastrand::u32(..));
            let sender = Pid::with_request_id("127.0.0.1:99", "some$sender", fastrand::u32(..));
            let payload: Vec<u8> = (0..fastrand::usize(0..500)).map(|_| fastrand::u8(..)).collect();
            let header = MessageHeader::new().with("key", "value");
            let m = Message {
                type_name: "some.Type",
                serializer_id: 1,
                payload: &payload,
                target: &target,
                sender: fastrand::bool().then_some(&sender),
                header: fastrand::bool().then_some(&header),
            };
            batch.push(&m);
            assert!(batch.len() <= m.cost(), "{} > {}", batch.len(), m.cost());
        }
    }

    #[test]
    fn the_frame_is_a_remote_message_prost_reads() {
        let _ = random_batch; // the parser's own tests cover arbitrary prost batches
        let mut batch = OpenBatch::new(LOCAL.into());
        let t = Pid::new("127.0.0.1:8", "t");
        batch.push(&message("test.T", b"payload", &t));
        let (body, _) = batch.take();
        let mut frame = Vec::new();
        put_key(&mut frame, 1, LEN);
        put_varint(&mut frame, body.len() as u64);
        frame.extend_from_slice(&body);
        match RemoteMessage::decode(frame.as_slice()).expect("prost").message_type {
            Some(MessageType::MessageBatch(b)) => assert_eq!(b.envelopes[0].message_data, b"payload"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(parse_frame(Bytes::from(frame)), Ok(Inbound::Batch(_))));
    }
}
