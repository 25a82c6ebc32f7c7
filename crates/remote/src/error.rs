//! The crate's error type.

use protoactor_actor::{DeliveryFailureKind, Pid};

/// Bytes of a frame kept for the batch around a message (type names,
/// targets, headers): a message may use the configured frame size less this.
pub(crate) const FRAME_OVERHEAD: usize = 1024;

/// What can go wrong with remoting.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The listening socket could not be bound.
    #[error("could not listen on {address}: {reason}; pick a free port (0 picks one) or another host")]
    Bind {
        /// The requested address.
        address: String,
        /// The operating system's reason.
        reason: String,
    },

    /// `start()` was called twice.
    #[error("remoting is already started for this actor system")]
    AlreadyStarted,

    /// An operation needs `start()` first.
    #[error("remoting is not started; call `Remote::start()` first")]
    NotStarted,

    /// A message type that was never registered for remoting.
    #[error(
        "message type `{type_name}` is not registered for remoting; register it once with \
         `RemoteConfig::with_protobuf::<T>()` (prost messages) or `RemoteConfig::with_json::<T>(\"name\")` (serde)"
    )]
    NotSerializable {
        /// The Rust type name.
        type_name: &'static str,
    },

    /// Encoding a message failed.
    #[error("could not serialize `{type_name}`: {reason}")]
    Serialize {
        /// The type that failed.
        type_name: String,
        /// Why.
        reason: String,
    },

    /// Decoding a received message failed.
    #[error("could not deserialize `{type_name}`: {reason}")]
    Deserialize {
        /// The wire type name.
        type_name: String,
        /// Why.
        reason: String,
    },

    /// A received type name that no serializer knows.
    #[error("unknown message type name `{0}` received; register it on this system too")]
    UnknownTypeName(String),

    /// One message is larger than a frame may be.
    #[error(
        "a `{type_name}` of {size} bytes (with its envelope) does not fit the configured maximum frame size of {max} bytes \
         (less {FRAME_OVERHEAD} bytes kept for the batch around it); send smaller messages or raise `RemoteConfig::with_max_frame_size`"
    )]
    MessageTooLarge {
        /// The type.
        type_name: String,
        /// Its encoded size, envelope included.
        size: usize,
        /// The configured limit (`RemoteConfig::with_max_frame_size`).
        max: usize,
    },

    /// Remote spawn: the target system has no such kind.
    #[error("system {address} has no kind `{kind}`; register it there with `RemoteConfig::with_kind`")]
    UnknownKind {
        /// The kind asked for.
        kind: String,
        /// The system asked.
        address: String,
    },

    /// Remote spawn: the name is taken on the target system.
    #[error("an actor named `{name}` already exists on {address} ({existing})")]
    NameTaken {
        /// The requested name.
        name: String,
        /// The system asked.
        address: String,
        /// The actor that has the name.
        existing: Pid,
    },

    /// Remote spawn failed on the target system.
    #[error("spawning `{kind}` on {address} failed: {reason}")]
    SpawnFailed {
        /// The kind.
        kind: String,
        /// The system asked.
        address: String,
        /// Why.
        reason: String,
    },

    /// A request to another system failed (timeout, dead letter...).
    #[error(transparent)]
    Request(#[from] protoactor_actor::Error),

    /// TLS configuration could not be used.
    #[error("TLS configuration error: {0}")]
    Tls(String),

    /// The gRPC transport failed.
    #[error("transport error: {0}")]
    Transport(String),
}

/// Why a handshake between systems of different clusters is refused, naming
/// the peer and both clusters (the same words on both sides).
pub(crate) fn wrong_cluster(peer_member: &str, peer_address: &str, theirs: &str, ours: &str) -> String {
    let label = |name: &str| {
        if name.is_empty() { "no cluster (a plain remote system)".to_string() } else { format!("cluster `{name}`") }
    };
    let peer = if peer_address.is_empty() {
        format!("member {peer_member}")
    } else {
        format!("member {peer_member} at {peer_address}")
    };
    format!(
        "{peer} belongs to {}, this system to {}: systems talk only within one cluster \
         (`RemoteConfig::with_cluster_name`, set by `ClusterConfig::new`)",
        label(theirs),
        label(ours)
    )
}

/// True if a rustls error is among `error`'s sources. An `io::Error`'s
/// `source()` skips the error it wraps, so that one is looked at too.
pub(crate) fn has_tls_source(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if e.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        if let Some(inner) = e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref())
            && has_tls_source(inner)
        {
            return true;
        }
        next = e.source();
    }
    false
}

impl Error {
    /// The kind of delivery failure this error stands for, when it stops a
    /// message from being delivered.
    pub fn delivery_kind(&self) -> DeliveryFailureKind {
        match self {
            Error::NotSerializable { .. } | Error::Serialize { .. } => DeliveryFailureKind::NotSerializable,
            Error::Deserialize { .. } => DeliveryFailureKind::Decode,
            Error::UnknownTypeName(_) => DeliveryFailureKind::UnknownType,
            Error::MessageTooLarge { .. } => DeliveryFailureKind::TooLarge,
            Error::Tls(_) => DeliveryFailureKind::Tls,
            _ => DeliveryFailureKind::Other,
        }
    }
}
