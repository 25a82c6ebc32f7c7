//! The gRPC codec of the `Receive` stream. The bytes are exactly
//! `remote.RemoteMessage` of `protos/remote.proto`, so any protobuf peer can
//! talk to us, but batches skip the generated structs on our side:
//!
//! - outgoing, a batch is written message by message as senders send
//!   ([`OpenBatch`](crate::batch::OpenBatch)) and goes out as one frame;
//! - incoming, a batch is parsed in place: each message's bytes stay a slice
//!   of the received frame until the message is decoded for delivery.
//!
//! Control messages (handshake, disconnect) go through prost.

use std::ops::Range;

use bytes::{Buf, BufMut, Bytes};
use prost::Message as _;
use protoactor_actor::proto as actor_proto;
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

use crate::proto::{MessageHeader, RemoteMessage};

/// What one side writes on the stream.
pub(crate) enum Outbound {
    Control(RemoteMessage),
    /// The body of a `MessageBatch`.
    Batch(Bytes),
}

/// What one side reads from the stream.
#[derive(Debug)]
pub(crate) enum Inbound {
    Control(RemoteMessage),
    Batch(InBatch),
}

/// A received batch. Envelope payloads are ranges of `frame`.
#[derive(Debug, Default)]
pub(crate) struct InBatch {
    pub(crate) frame: Bytes,
    pub(crate) type_names: Vec<String>,
    pub(crate) targets: Vec<String>,
    pub(crate) senders: Vec<actor_proto::Pid>,
    pub(crate) envelopes: Vec<InEnvelope>,
}

/// One received envelope (fields as in `MessageEnvelope`).
#[derive(Debug, Default, Clone)]
pub(crate) struct InEnvelope {
    pub(crate) type_id: i32,
    pub(crate) data: Range<usize>,
    pub(crate) target: i32,
    pub(crate) sender: i32,
    pub(crate) serializer_id: i32,
    pub(crate) header: Option<MessageHeader>,
    pub(crate) target_request_id: u32,
    pub(crate) sender_request_id: u32,
}

impl InBatch {
    /// The encoded message of `envelope`.
    pub(crate) fn data(&self, envelope: &InEnvelope) -> &[u8] {
        &self.frame[envelope.data.clone()]
    }

    /// The encoded message of `envelope`, sharing the frame's buffer.
    pub(crate) fn data_bytes(&self, envelope: &InEnvelope) -> Bytes {
        self.frame.slice(envelope.data.clone())
    }
}

// ---------- lengths and writing ----------

pub(crate) const LEN: u32 = 2;
const VARINT: u32 = 0;

pub(crate) fn varint_len(v: u64) -> usize {
    ((64 - (v | 1).leading_zeros()) as usize).div_ceil(7)
}

pub(crate) fn put_varint(buf: &mut impl BufMut, mut v: u64) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

pub(crate) fn put_key(buf: &mut impl BufMut, field: u32, wire_type: u32) {
    put_varint(buf, u64::from(field << 3 | wire_type));
}

/// Bytes of a length-delimited field with a one-byte key.
pub(crate) fn delimited_len(len: usize) -> usize {
    1 + varint_len(len as u64) + len
}

/// proto3 int32: negative values are sign-extended to ten bytes.
pub(crate) fn int32_field_len(v: i32) -> usize {
    if v == 0 { 0 } else { 1 + varint_len(v as i64 as u64) }
}

pub(crate) fn uint32_field_len(v: u32) -> usize {
    if v == 0 { 0 } else { 1 + varint_len(u64::from(v)) }
}

pub(crate) fn put_int32(buf: &mut impl BufMut, field: u32, v: i32) {
    if v != 0 {
        put_key(buf, field, VARINT);
        put_varint(buf, v as i64 as u64);
    }
}

pub(crate) fn put_uint32(buf: &mut impl BufMut, field: u32, v: u32) {
    if v != 0 {
        put_key(buf, field, VARINT);
        put_varint(buf, u64::from(v));
    }
}

pub(crate) fn put_bytes(buf: &mut impl BufMut, field: u32, bytes: &[u8]) {
    put_key(buf, field, LEN);
    put_varint(buf, bytes.len() as u64);
    buf.put_slice(bytes);
}

// ---------- parsing ----------

/// Why a frame could not be parsed.
#[derive(Debug)]
pub(crate) struct ParseError(&'static str);

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed frame: {}", self.0)
    }
}

/// Reads protobuf fields from a slice of the frame.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

enum Value {
    Varint(u64),
    Delimited(Range<usize>),
    Other,
}

impl Reader<'_> {
    #[inline]
    fn varint(&mut self) -> Result<u64, ParseError> {
        // Most varints here (tags, indices, short lengths) are one byte.
        if let Some(&b) = self.bytes.get(self.pos)
            && b < 0x80
        {
            self.pos += 1;
            return Ok(u64::from(b));
        }
        let mut v = 0u64;
        for i in 0..10 {
            let b = *self.bytes.get(self.pos).ok_or(ParseError("truncated varint"))?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(ParseError("varint longer than ten bytes"))
    }

    /// The next field, or `None` at the end.
    #[inline]
    fn field(&mut self) -> Result<Option<(u32, Value)>, ParseError> {
        if self.pos == self.bytes.len() {
            return Ok(None);
        }
        let (field, wire_type) = self.key()?;
        if wire_type == 4 {
            return Err(ParseError("end of a group that was not started"));
        }
        Ok(Some((field, self.value(field, wire_type, 0)?)))
    }

    #[inline]
    fn key(&mut self) -> Result<(u32, u64), ParseError> {
        let key = self.varint()?;
        let field = u32::try_from(key >> 3).map_err(|_| ParseError("field number out of range"))?;
        if field == 0 {
            return Err(ParseError("field number 0"));
        }
        Ok((field, key & 7))
    }

    fn value(&mut self, field: u32, wire_type: u64, depth: u32) -> Result<Value, ParseError> {
        let value = match wire_type {
            0 => Value::Varint(self.varint()?),
            1 => self.skip(8)?,
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| ParseError("length out of range"))?;
                let start = self.pos;
                self.skip(len)?;
                Value::Delimited(start..self.pos)
            }
            // A (deprecated) group: skipped, as protobuf decoders do.
            3 => {
                if depth >= 100 {
                    return Err(ParseError("groups nested too deep"));
                }
                loop {
                    if self.pos == self.bytes.len() {
                        return Err(ParseError("unterminated group"));
                    }
                    let (inner, wire_type) = self.key()?;
                    if wire_type == 4 {
                        if inner != field {
                            return Err(ParseError("group ends with another field number"));
                        }
                        break Value::Other;
                    }
                    self.value(inner, wire_type, depth + 1)?;
                }
            }
            5 => self.skip(4)?,
            _ => return Err(ParseError("unsupported wire type")),
        };
        Ok(value)
    }

    #[inline]
    fn skip(&mut self, n: usize) -> Result<Value, ParseError> {
        if self.bytes.len() - self.pos < n {
            return Err(ParseError("field runs past the end"));
        }
        self.pos += n;
        Ok(Value::Other)
    }
}

fn varint(v: Value) -> Result<u64, ParseError> {
    match v {
        Value::Varint(v) => Ok(v),
        _ => Err(ParseError("expected a varint field")),
    }
}

fn delimited(v: Value) -> Result<Range<usize>, ParseError> {
    match v {
        Value::Delimited(r) => Ok(r),
        _ => Err(ParseError("expected a length-delimited field")),
    }
}

fn string(bytes: &[u8], r: Range<usize>) -> Result<String, ParseError> {
    std::str::from_utf8(&bytes[r]).map(str::to_string).map_err(|_| ParseError("string is not UTF-8"))
}

/// Parses one `RemoteMessage` frame.
pub(crate) fn parse_frame(frame: Bytes) -> Result<Inbound, ParseError> {
    let mut reader = Reader { bytes: &frame, pos: 0 };
    // As in protobuf, the last member of the oneof wins; repeated
    // occurrences of the batch merge (their repeated fields append).
    let mut batch: Option<InBatch> = None;
    let mut control = false;
    while let Some((field, value)) = reader.field()? {
        match field {
            1 => {
                let r = delimited(value)?;
                control = false;
                parse_batch_into(&frame, r, batch.get_or_insert_with(InBatch::default))?;
            }
            2..=4 => {
                control = true;
                batch = None;
            }
            _ => {}
        }
    }
    match batch {
        Some(mut batch) if !control => {
            batch.frame = frame;
            Ok(Inbound::Batch(batch))
        }
        _ => RemoteMessage::decode(frame).map(Inbound::Control).map_err(|_| ParseError("invalid control message")),
    }
}

/// Parses a bare `MessageBatch` (the fuzzing entry point).
pub(crate) fn parse_batch(bytes: Bytes) -> Result<InBatch, ParseError> {
    let mut batch = InBatch::default();
    parse_batch_into(&bytes, 0..bytes.len(), &mut batch)?;
    batch.frame = bytes;
    Ok(batch)
}

fn parse_batch_into(frame: &[u8], range: Range<usize>, batch: &mut InBatch) -> Result<(), ParseError> {
    let base = range.start;
    // Small messages take about 40 bytes each: one allocation, mostly.
    batch.envelopes.reserve(range.len() / 40);
    let mut reader = Reader { bytes: &frame[range], pos: 0 };
    let at = |r: Range<usize>| r.start + base..r.end + base;
    while let Some((field, value)) = reader.field()? {
        match field {
            1 => batch.type_names.push(string(frame, at(delimited(value)?))?),
            2 => batch.targets.push(string(frame, at(delimited(value)?))?),
            3 => batch.envelopes.push(parse_envelope(frame, at(delimited(value)?))?),
            4 => {
                let r = at(delimited(value)?);
                let pid = actor_proto::Pid::decode(&frame[r]).map_err(|_| ParseError("invalid sender pid"))?;
                batch.senders.push(pid);
            }
            _ => {}
        }
    }
    Ok(())
}

fn parse_envelope(frame: &[u8], range: Range<usize>) -> Result<InEnvelope, ParseError> {
    let base = range.start;
    let mut reader = Reader { bytes: &frame[range.clone()], pos: 0 };
    let mut e = InEnvelope { data: range.start..range.start, ..Default::default() };
    while let Some((field, value)) = reader.field()? {
        match field {
            // int32 fields keep the low 32 bits, as protobuf decoders do.
            1 => e.type_id = varint(value)? as i32,
            2 => {
                let r = delimited(value)?;
                e.data = r.start + base..r.end + base;
            }
            3 => e.target = varint(value)? as i32,
            4 => e.sender = varint(value)? as i32,
            5 => e.serializer_id = varint(value)? as i32,
            6 => {
                let r = delimited(value)?;
                let header = MessageHeader::decode(&frame[r.start + base..r.end + base])
                    .map_err(|_| ParseError("invalid message header"))?;
                e.header = Some(header);
            }
            7 => e.target_request_id = varint(value)? as u32,
            8 => e.sender_request_id = varint(value)? as u32,
            _ => {}
        }
    }
    Ok(e)
}

// ---------- tonic ----------

/// The codec of both directions of the `Receive` stream.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct WireCodec;

impl Codec for WireCodec {
    type Encode = Outbound;
    type Decode = Inbound;
    type Encoder = WireEncoder;
    type Decoder = WireDecoder;

    fn encoder(&mut self) -> WireEncoder {
        WireEncoder
    }

    fn decoder(&mut self) -> WireDecoder {
        WireDecoder
    }
}

#[derive(Debug)]
pub(crate) struct WireEncoder;

impl Encoder for WireEncoder {
    type Item = Outbound;
    type Error = Status;

    fn encode(&mut self, item: Outbound, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        match item {
            Outbound::Control(m) => m.encode(dst).map_err(|e| Status::internal(e.to_string())),
            // RemoteMessage { message_batch = 1 }.
            Outbound::Batch(body) => {
                dst.reserve(delimited_len(body.len()));
                put_key(dst, 1, LEN);
                put_varint(dst, body.len() as u64);
                dst.put_slice(&body);
                Ok(())
            }
        }
    }
}

#[derive(Debug)]
pub(crate) struct WireDecoder;

impl Decoder for WireDecoder {
    type Item = Inbound;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Inbound>, Status> {
        let frame = src.copy_to_bytes(src.remaining());
        parse_frame(frame).map(Some).map_err(|e| Status::invalid_argument(e.to_string()))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use prost::Message as _;

    use super::*;
    use crate::proto::{MessageBatch, MessageEnvelope, remote_message::MessageType};

    fn random_string() -> String {
        (0..fastrand::usize(0..12)).map(|_| fastrand::alphanumeric()).collect()
    }

    fn random_i32() -> i32 {
        match fastrand::u8(0..4) {
            0 => 0,
            1 => fastrand::i32(..),
            2 => fastrand::i32(-3..3),
            _ => fastrand::i32(0..300),
        }
    }

    fn random_header() -> Option<MessageHeader> {
        fastrand::bool().then(|| MessageHeader {
            header_data: (0..fastrand::usize(1..4)).map(|_| (random_string(), random_string())).collect(),
        })
    }

    fn random_pid() -> actor_proto::Pid {
        actor_proto::Pid { address: random_string(), id: random_string(), request_id: fastrand::u32(..) }
    }

    /// A random batch, every field exercised.
    pub(crate) fn random_batch() -> MessageBatch {
        let envelopes = (0..fastrand::usize(0..6))
            .map(|_| MessageEnvelope {
                type_id: random_i32(),
                message_data: (0..fastrand::usize(0..300)).map(|_| fastrand::u8(..)).collect(),
                target: random_i32(),
                sender: random_i32(),
                serializer_id: random_i32(),
                message_header: random_header(),
                target_request_id: fastrand::u32(..),
                sender_request_id: if fastrand::bool() { 0 } else { fastrand::u32(..) },
            })
            .collect();
        MessageBatch {
            type_names: (0..fastrand::usize(0..4)).map(|_| random_string()).collect(),
            targets: (0..fastrand::usize(0..4)).map(|_| random_string()).collect(),
            envelopes,
            senders: (0..fastrand::usize(0..3)).map(|_| random_pid()).collect(),
        }
    }

    pub(crate) fn to_prost(batch: &InBatch) -> MessageBatch {
        MessageBatch {
            type_names: batch.type_names.clone(),
            targets: batch.targets.clone(),
            senders: batch.senders.clone(),
            envelopes: batch
                .envelopes
                .iter()
                .map(|e| MessageEnvelope {
                    type_id: e.type_id,
                    message_data: batch.data(e).to_vec(),
                    target: e.target,
                    sender: e.sender,
                    serializer_id: e.serializer_id,
                    message_header: e.header.clone(),
                    target_request_id: e.target_request_id,
                    sender_request_id: e.sender_request_id,
                })
                .collect(),
        }
    }

    #[test]
    fn prost_frames_parse_to_the_same_batch() {
        for _ in 0..500 {
            let expected = random_batch();
            let frame = RemoteMessage { message_type: Some(MessageType::MessageBatch(expected.clone())) };
            match parse_frame(Bytes::from(frame.encode_to_vec())).expect("parses") {
                Inbound::Batch(b) => assert_eq!(to_prost(&b), expected),
                other => panic!("expected a batch, got {other:?}"),
            }
        }
    }

    #[test]
    fn control_messages_and_the_last_oneof_member_win() {
        let hello = RemoteMessage {
            message_type: Some(MessageType::ConnectResponse(crate::proto::ConnectResponse {
                member_id: "m".into(),
                blocked: true,
                cluster_name: Some("c".into()),
            })),
        };
        let mut bytes = hello.encode_to_vec();
        assert!(matches!(parse_frame(Bytes::from(bytes.clone())), Ok(Inbound::Control(m)) if m == hello));
        // A batch after the control member: the batch wins, as in prost.
        let batch = random_batch();
        let as_batch = RemoteMessage { message_type: Some(MessageType::MessageBatch(batch.clone())) };
        bytes.extend(as_batch.encode_to_vec());
        match parse_frame(Bytes::from(bytes)).expect("parses") {
            Inbound::Batch(b) => assert_eq!(to_prost(&b), batch),
            other => panic!("expected the batch, got {other:?}"),
        }
        assert!(matches!(parse_frame(Bytes::new()), Ok(Inbound::Control(RemoteMessage { message_type: None }))));
    }

    #[test]
    fn malformed_frames_are_errors_not_panics() {
        for _ in 0..20_000 {
            let len = fastrand::usize(0..64);
            let bytes: Vec<u8> = (0..len).map(|_| fastrand::u8(..)).collect();
            let ours = parse_frame(Bytes::from(bytes.clone()));
            // Whatever prost accepts as a batch, we accept identically.
            if let Ok(RemoteMessage { message_type: Some(MessageType::MessageBatch(b)) }) =
                RemoteMessage::decode(bytes.as_slice())
            {
                match ours {
                    Ok(Inbound::Batch(ours)) => assert_eq!(to_prost(&ours), b),
                    other => panic!("prost read a batch from {bytes:?}, we got {other:?}"),
                }
            }
        }
        for bad in [&[0x0a, 0x05, 0x0a][..], &[0x0a, 0x80], &[0x0b], &[0x0a, 0x02, 0x0a, 0x01, 0xff]] {
            assert!(parse_frame(Bytes::copy_from_slice(bad)).is_err(), "{bad:?}");
        }
    }
}
