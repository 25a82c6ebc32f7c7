//! Messages, envelopes and the lifecycle messages every actor can receive.

use std::any::{Any, type_name};
use std::fmt;
use std::sync::Arc;

use parking_lot::Mutex;

pub use crate::any_message::AnyMessage;
use crate::error::ActorError;
use crate::pid::Pid;
use crate::supervision::RestartStatistics;

pub use crate::proto::TerminatedReason;

/// Any value that can be sent to an actor: every `Send + 'static` type is one.
///
/// Messages travel type-erased; the receiver matches on the concrete type with
/// [`Context::message`](crate::Context::message).
pub trait Message: Any + Send {
    /// The Rust type name of the message, for logs and errors.
    fn type_name(&self) -> &'static str;
}

impl<T: Any + Send> Message for T {
    #[inline]
    fn type_name(&self) -> &'static str {
        type_name::<T>()
    }
}

impl fmt::Debug for dyn Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{}>", self.type_name())
    }
}

/// Key/value headers that travel with a message (tracing ids, deadlines...).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageHeader {
    entries: Vec<(String, String)>,
}

impl MessageHeader {
    /// An empty header.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value stored under `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Sets `key` to `value`, replacing an earlier value.
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let key = key.into();
        let value = value.into();
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = value,
            None => self.entries.push((key, value)),
        }
    }

    /// Builder form of [`set`](Self::set).
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.set(key, value);
        self
    }

    /// All entries in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

const FLAG_NO_INFLUENCE: u8 = 1;

/// A message with its sender and headers: what a mailbox holds.
pub struct Envelope {
    pub(crate) message: AnyMessage,
    pub(crate) sender: Option<Pid>,
    pub(crate) header: Option<Box<MessageHeader>>,
    flags: u8,
}

impl Envelope {
    /// Wraps a message without sender or headers.
    #[inline]
    pub fn new<M: Message>(message: M) -> Self {
        Envelope { message: AnyMessage::new(message), sender: None, header: None, flags: 0 }
    }

    /// Wraps an already erased message.
    #[inline]
    pub fn from_boxed(message: AnyMessage) -> Self {
        Envelope { message, sender: None, header: None, flags: 0 }
    }

    /// Sets the sender (who a response goes to).
    #[inline]
    pub fn with_sender(mut self, sender: Option<Pid>) -> Self {
        self.sender = sender;
        self
    }

    /// Sets the headers.
    pub fn with_header(mut self, header: MessageHeader) -> Self {
        self.header = if header.is_empty() { None } else { Some(Box::new(header)) };
        self
    }

    /// Marks the message as one that does not reset the receiver's receive
    /// timeout (heartbeats, metrics ticks).
    pub fn not_influencing_receive_timeout(mut self) -> Self {
        self.flags |= FLAG_NO_INFLUENCE;
        self
    }

    /// True unless marked with [`not_influencing_receive_timeout`](Self::not_influencing_receive_timeout).
    pub fn influences_receive_timeout(&self) -> bool {
        self.flags & FLAG_NO_INFLUENCE == 0
    }

    /// The message.
    pub fn message(&self) -> &AnyMessage {
        &self.message
    }

    /// The message, if it is a `T`.
    #[inline]
    pub fn message_as<T: Any>(&self) -> Option<&T> {
        self.message.downcast_ref::<T>()
    }

    /// The sender, if any.
    pub fn sender(&self) -> Option<&Pid> {
        self.sender.as_ref()
    }

    /// The headers, if any.
    pub fn header(&self) -> Option<&MessageHeader> {
        self.header.as_deref()
    }

    /// The type name of the message.
    pub fn type_name(&self) -> &'static str {
        self.message.type_name()
    }

    /// Splits into message, sender and headers.
    pub fn into_parts(self) -> (AnyMessage, Option<Pid>, Option<MessageHeader>) {
        (self.message, self.sender, self.header.map(|h| *h))
    }
}

impl fmt::Debug for Envelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Envelope")
            .field("message", &self.type_name())
            .field("sender", &self.sender)
            .field("header", &self.header)
            .finish()
    }
}

/// Delivered first, before any user message, and again after a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Started;

/// Delivered when the actor begins to stop, before its children are stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopping;

/// Delivered last, after the children have stopped; the actor is gone after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped;

/// Delivered to the old instance before it is replaced by a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restarting;

/// Delivered when no message influencing the timeout arrived within the
/// duration set by [`Context::set_receive_timeout`](crate::Context::set_receive_timeout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiveTimeout;

/// A user-queue message that stops the receiver after the messages queued
/// before it (graceful stop).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoisonPill;

/// A watched actor (or a child) has terminated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terminated {
    /// Who terminated.
    pub who: Pid,
    /// Why.
    pub why: TerminatedReason,
}

/// The reply to a request whose target does not exist: lets the requester fail
/// at once instead of waiting for a timeout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterResponse {
    /// The pid that could not be reached.
    pub target: Pid,
}

/// The reply to a request that could not be delivered for a reason other than
/// a missing target (see [`Error::DeliveryFailed`](crate::Error::DeliveryFailed)):
/// a waiting request fails at once with that reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryFailure {
    /// The pid the message was for.
    pub target: Pid,
    /// Which kind of failure, for code that handles them differently.
    pub kind: DeliveryFailureKind,
    /// What went wrong, and what to do about it.
    pub reason: String,
}

/// Why a message was not delivered: each reason a remote delivery can fail
/// is its own kind (the table in `docs/semantics.md` lists them with the
/// tests that show them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DeliveryFailureKind {
    /// The receiving system has not registered the message's type.
    UnknownType,
    /// The receiving system could not decode the message's bytes.
    Decode,
    /// The message is larger than the configured frame limit.
    TooLarge,
    /// The sending system has not registered the message's type for remoting.
    NotSerializable,
    /// The queue to the receiving system is full.
    QueueFull,
    /// The receiving member is blocked, or it has blocked the sender.
    BlockedMember,
    /// The receiving system belongs to another cluster.
    WrongCluster,
    /// The connection to the receiving system is gone (it stopped, crashed,
    /// left, or cannot be reached).
    EndpointGone,
    /// The TLS handshake with the receiving system failed (certificates,
    /// or TLS on one side only).
    Tls,
    /// This system is shutting down its remoting.
    ShuttingDown,
    /// Anything else; the reason says what.
    Other,
}

impl DeliveryFailureKind {
    /// All kinds, in wire order (their index is their wire code).
    pub const ALL: [DeliveryFailureKind; 11] = [
        DeliveryFailureKind::Other,
        DeliveryFailureKind::UnknownType,
        DeliveryFailureKind::Decode,
        DeliveryFailureKind::TooLarge,
        DeliveryFailureKind::NotSerializable,
        DeliveryFailureKind::QueueFull,
        DeliveryFailureKind::BlockedMember,
        DeliveryFailureKind::WrongCluster,
        DeliveryFailureKind::EndpointGone,
        DeliveryFailureKind::Tls,
        DeliveryFailureKind::ShuttingDown,
    ];

    /// The kind's wire code (its index in [`ALL`](Self::ALL)).
    pub fn code(self) -> i32 {
        Self::ALL.iter().position(|k| *k == self).map_or(0, |i| i as i32)
    }

    /// The kind with wire code `code`; [`Other`](Self::Other) for one this
    /// version does not know.
    pub fn from_code(code: i32) -> Self {
        usize::try_from(code).ok().and_then(|i| Self::ALL.get(i)).copied().unwrap_or(DeliveryFailureKind::Other)
    }
}

impl fmt::Display for DeliveryFailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeliveryFailureKind::UnknownType => "unknown message type",
            DeliveryFailureKind::Decode => "undecodable message",
            DeliveryFailureKind::TooLarge => "message too large",
            DeliveryFailureKind::NotSerializable => "message type not registered for remoting",
            DeliveryFailureKind::QueueFull => "queue full",
            DeliveryFailureKind::BlockedMember => "blocked member",
            DeliveryFailureKind::WrongCluster => "wrong cluster",
            DeliveryFailureKind::EndpointGone => "endpoint gone",
            DeliveryFailureKind::Tls => "TLS failure",
            DeliveryFailureKind::ShuttingDown => "shutting down",
            DeliveryFailureKind::Other => "delivery failure",
        })
    }
}

/// A failure reported by a child to its supervisor.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The failing child.
    pub who: Pid,
    /// What went wrong.
    pub reason: ActorError,
    /// The type of the message being handled when it failed, if any.
    pub message_type: Option<&'static str>,
    pub(crate) stats: Arc<Mutex<RestartStatistics>>,
}

/// Messages that steer a process's lifecycle; they jump ahead of user messages.
#[derive(Debug)]
#[non_exhaustive]
pub enum SystemMessage {
    /// Start (or restart) handling: delivers [`Started`].
    Started,
    /// Stop now (after the current message).
    Stop,
    /// `watcher` wants a [`Terminated`] when this process ends.
    Watch(Pid),
    /// `watcher` no longer wants it.
    Unwatch(Pid),
    /// A watched process or child ended.
    Terminated(Terminated),
    /// A child failed.
    Failure(Failure),
    /// Restart (from the supervisor).
    Restart,
    /// Stop handling user messages until resumed (during failure handling).
    Suspend,
    /// Resume handling user messages.
    Resume,
    /// Runtime-internal messages.
    #[doc(hidden)]
    Internal(Internal),
}

/// Opaque runtime-internal system messages.
pub struct Internal(pub(crate) InternalKind);

impl fmt::Debug for Internal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            InternalKind::Continuation { .. } => f.write_str("Continuation"),
            InternalKind::ReceiveTimeoutTick(g) => write!(f, "ReceiveTimeoutTick({g})"),
        }
    }
}

pub(crate) type ContinuationFn = Box<dyn FnOnce(&mut dyn Any, &mut crate::Context) -> crate::ActorResult + Send>;

pub(crate) enum InternalKind {
    /// Resume a `reenter_after` continuation inside the actor's turn.
    Continuation { envelope: Option<Envelope>, incarnation: u64, run: ContinuationFn },
    /// The receive-timeout timer fired for the given generation.
    ReceiveTimeoutTick(u64),
}
