//! The serialization registry: which message types may cross the wire, under
//! which name, and how they are encoded.
//!
//! Protobuf (prost) types are registered by their full protobuf name; serde
//! types travel as JSON under a name you choose. Each type is registered once,
//! on every system that sends or receives it.

use std::any::TypeId;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use protoactor_actor::{AnyMessage, Message};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Error;

/// Serializer id of protobuf on the wire.
pub const PROTOBUF: i32 = 0;
/// Serializer id of JSON on the wire.
pub const JSON: i32 = 1;

type EncodeFn = fn(&AnyMessage, &mut Vec<u8>) -> Result<(), String>;
/// Takes the bytes as a slice of the received frame: protobuf `bytes` fields
/// then decode with one copy at most (none for `Bytes` fields).
type DecodeFn = fn(Bytes) -> Result<AnyMessage, String>;

/// Interns a wire type name for the life of the program, so messages carry
/// it as a plain reference: no reference count shared by every sender.
/// Bounded by the distinct names a program registers.
fn intern(name: &str) -> &'static str {
    static NAMES: std::sync::OnceLock<parking_lot::Mutex<std::collections::HashSet<&'static str>>> =
        std::sync::OnceLock::new();
    let mut names = NAMES.get_or_init(Default::default).lock();
    match names.get(name) {
        Some(interned) => interned,
        None => {
            let interned: &'static str = Box::leak(name.to_string().into_boxed_str());
            names.insert(interned);
            interned
        }
    }
}

/// How one local type is written.
#[derive(Clone)]
pub(crate) struct TypeEntry {
    pub(crate) name: &'static str,
    pub(crate) serializer_id: i32,
    /// Sent in the priority lane, ahead of queued user traffic.
    pub(crate) priority: bool,
    encode: EncodeFn,
}

/// How one wire name is read.
pub(crate) struct NameEntry {
    serializer_id: i32,
    decode: DecodeFn,
}

/// Registered message types, shared by all endpoints of a system.
#[derive(Default, Clone)]
pub struct Serialization {
    // A TypeId is already a hash; the registry is looked up for every message sent.
    by_type: HashMap<TypeId, Arc<TypeEntry>, crate::batch::WordHash>,
    by_name: HashMap<String, Arc<NameEntry>>,
}

impl fmt::Debug for Serialization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&String> = self.by_name.keys().collect();
        names.sort();
        f.debug_struct("Serialization").field("types", &names).finish()
    }
}

fn encode_prost<T: prost::Message + 'static>(message: &AnyMessage, buf: &mut Vec<u8>) -> Result<(), String> {
    let m = message.downcast_ref::<T>().ok_or("registered type does not match")?;
    buf.reserve(m.encoded_len());
    m.encode(buf).map_err(|e| e.to_string())
}

fn decode_prost<T: prost::Message + Default + Send + 'static>(data: Bytes) -> Result<AnyMessage, String> {
    T::decode(data).map(AnyMessage::new).map_err(|e| e.to_string())
}

fn encode_json<T: Serialize + 'static>(message: &AnyMessage, buf: &mut Vec<u8>) -> Result<(), String> {
    let m = message.downcast_ref::<T>().ok_or("registered type does not match")?;
    serde_json::to_writer(buf, m).map_err(|e| e.to_string())
}

fn decode_json<T: DeserializeOwned + Send + 'static>(data: Bytes) -> Result<AnyMessage, String> {
    serde_json::from_slice::<T>(&data).map(AnyMessage::new).map_err(|e| e.to_string())
}

impl Serialization {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    fn add<T: Message>(&mut self, name: &str, serializer_id: i32, encode: EncodeFn, decode: DecodeFn) {
        let name = intern(name);
        let entry = TypeEntry { name, serializer_id, priority: false, encode };
        self.by_type.insert(TypeId::of::<T>(), Arc::new(entry));
        self.by_name.insert(name.to_string(), Arc::new(NameEntry { serializer_id, decode }));
    }

    /// Registers a prost message under its full protobuf name (`package.Type`).
    pub fn register_protobuf<T>(&mut self)
    where
        T: prost::Message + prost::Name + Default + Send + 'static,
    {
        self.add::<T>(&T::full_name(), PROTOBUF, encode_prost::<T>, decode_prost::<T>);
    }

    /// Registers a prost message under an explicit name (for types generated
    /// without `prost::Name`).
    pub fn register_protobuf_named<T>(&mut self, name: &str)
    where
        T: prost::Message + Default + Send + 'static,
    {
        self.add::<T>(name, PROTOBUF, encode_prost::<T>, decode_prost::<T>);
    }

    /// Registers a serde type to travel as JSON under `name`.
    pub fn register_json<T>(&mut self, name: &str)
    where
        T: Serialize + DeserializeOwned + Send + 'static,
    {
        self.add::<T>(name, JSON, encode_json::<T>, decode_json::<T>);
    }

    /// Registers a prost message like [`register_protobuf`](Self::register_protobuf)
    /// and sends it in the priority lane: ahead of queued user messages and
    /// never refused by a full queue. For small control traffic (gossip,
    /// heartbeats, membership), not for bulk data.
    pub fn register_protobuf_priority<T>(&mut self)
    where
        T: prost::Message + prost::Name + Default + Send + 'static,
    {
        self.register_protobuf::<T>();
        if let Some(entry) = self.by_type.get_mut(&TypeId::of::<T>()) {
            Arc::make_mut(entry).priority = true;
        }
    }

    /// True if `T` may be sent.
    pub fn is_registered<T: 'static>(&self) -> bool {
        self.by_type.contains_key(&TypeId::of::<T>())
    }

    /// The entry for the message's type.
    pub(crate) fn entry(&self, message: &AnyMessage) -> Result<&Arc<TypeEntry>, Error> {
        self.by_type.get(&message.message_type_id()).ok_or(Error::NotSerializable { type_name: message.type_name() })
    }

    /// Encodes `message` with its registered serializer.
    #[cfg(test)]
    pub(crate) fn encode(&self, message: &AnyMessage) -> Result<(Arc<TypeEntry>, Vec<u8>), Error> {
        let entry = self.entry(message)?;
        let mut buf = Vec::new();
        self.encode_into(entry, message, &mut buf)?;
        Ok((entry.clone(), buf))
    }

    /// Appends `message`, encoded with `entry`, to `buf`.
    pub(crate) fn encode_into(&self, entry: &TypeEntry, message: &AnyMessage, buf: &mut Vec<u8>) -> Result<(), Error> {
        (entry.encode)(message, buf).map_err(|reason| Error::Serialize { type_name: entry.name.to_string(), reason })
    }

    /// The reader for a wire type name.
    pub(crate) fn lookup(&self, type_name: &str) -> Option<&Arc<NameEntry>> {
        self.by_name.get(type_name)
    }

    /// Decodes a message received under `type_name` with `serializer_id`.
    pub fn decode(&self, type_name: &str, serializer_id: i32, data: &[u8]) -> Result<AnyMessage, Error> {
        let entry = self.by_name.get(type_name).ok_or_else(|| Error::UnknownTypeName(type_name.to_string()))?;
        decode_with(entry, type_name, serializer_id, Bytes::copy_from_slice(data))
    }
}

/// Decodes with an entry found earlier (once per batch).
pub(crate) fn decode_with(
    entry: &NameEntry,
    type_name: &str,
    serializer_id: i32,
    data: Bytes,
) -> Result<AnyMessage, Error> {
    {
        if entry.serializer_id != serializer_id {
            return Err(Error::Deserialize {
                type_name: type_name.to_string(),
                reason: format!(
                    "sent with serializer {serializer_id} but registered here with serializer {}",
                    entry.serializer_id
                ),
            });
        }
        (entry.decode)(data).map_err(|reason| Error::Deserialize { type_name: type_name.to_string(), reason })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Hello {
        name: String,
    }

    #[test]
    fn json_round_trip_and_errors() {
        let mut s = Serialization::new();
        s.register_json::<Hello>("test.Hello");
        let (entry, bytes) = s.encode(&AnyMessage::new(Hello { name: "x".into() })).expect("encode");
        assert_eq!(entry.name, "test.Hello");
        let back = s.decode("test.Hello", JSON, &bytes).expect("decode");
        assert_eq!(back.downcast::<Hello>().ok(), Some(Hello { name: "x".into() }));
        let err = s.encode(&AnyMessage::new(5u32)).err().expect("u32 is not registered");
        assert!(err.to_string().contains("u32") && err.to_string().contains("with_json"), "{err}");
        assert!(matches!(s.decode("nope", JSON, b"{}"), Err(Error::UnknownTypeName(_))));
        assert!(matches!(s.decode("test.Hello", JSON, b"{not json"), Err(Error::Deserialize { .. })));
        assert!(matches!(s.decode("test.Hello", PROTOBUF, &bytes), Err(Error::Deserialize { .. })));
    }
}
