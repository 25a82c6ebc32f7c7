//! The crate's error type and the failure type actors return from `receive`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::pid::Pid;

/// Everything that can go wrong when using the actor runtime from the outside:
/// spawning, requesting, stopping.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `spawn_named` was given a name that is already registered.
    #[error("an actor named `{0}` already exists in this system; pick another name or stop the existing actor first")]
    NameExists(String),

    /// The actor system is shutting down and accepts no new actors.
    #[error("the actor system is shutting down; spawn before calling `shutdown()`")]
    ShuttingDown,

    /// No response arrived within the request timeout.
    #[error("request to {target} timed out after {after:?}; the target may be busy, stopped or the timeout too short")]
    Timeout {
        /// Who the request was sent to.
        target: Pid,
        /// The timeout that elapsed.
        after: Duration,
    },

    /// The request reached no living actor: the target does not exist or has stopped.
    #[error("request to {target} went to dead letters: no living actor has that pid")]
    DeadLetter {
        /// Who the request was sent to.
        target: Pid,
    },

    /// A response arrived but was not of the type the caller asked for.
    #[error("expected a response of type `{expected}` but received `{actual}`")]
    UnexpectedResponse {
        /// The type the caller asked for.
        expected: &'static str,
        /// The type that arrived.
        actual: &'static str,
    },

    /// The message could not be delivered, for the reason given (a remote
    /// message type that is not registered, a message over the size limit...).
    #[error("message to {target} could not be delivered ({kind}): {reason}")]
    DeliveryFailed {
        /// Who the message was sent to.
        target: Pid,
        /// Which kind of failure.
        kind: crate::message::DeliveryFailureKind,
        /// Why it was not delivered, and what to do about it.
        reason: String,
    },

    /// A watched actor terminated while the caller waited for it.
    #[error("{0} terminated before answering")]
    Terminated(Pid),

    /// A configuration value was out of range.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
}

/// A failure returned (or panicked) from an actor's `receive`. It is handed to
/// the actor's supervisor, which decides to resume, restart, stop or escalate.
///
/// Any `std::error::Error` converts into it with `?`; `ActorError::msg` makes
/// one from a plain description. Cloning is cheap (the cause is shared).
#[derive(Clone)]
pub struct ActorError(Arc<dyn std::error::Error + Send + Sync + 'static>);

/// The result of handling one message.
pub type ActorResult = Result<(), ActorError>;

impl ActorError {
    /// A failure with a plain description.
    pub fn msg(message: impl Into<String>) -> Self {
        ActorError(Arc::new(Described(message.into())))
    }

    /// A failure that came from a panic inside `receive`.
    pub(crate) fn from_panic(payload: Box<dyn std::any::Any + Send>) -> Self {
        let text = if let Some(s) = payload.downcast_ref::<&'static str>() {
            (*s).to_string()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "panic with a non-string payload".to_string()
        };
        ActorError(Arc::new(Panicked(text)))
    }

    /// True when this failure was a panic rather than a returned error.
    pub fn is_panic(&self) -> bool {
        self.0.is::<Panicked>()
    }

    /// The underlying cause.
    pub fn cause(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.0
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for ActorError {
    fn from(e: E) -> Self {
        ActorError(Arc::new(e))
    }
}

impl fmt::Debug for ActorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ActorError({})", self.0)
    }
}

impl fmt::Display for ActorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

#[derive(Debug)]
struct Described(String);
impl fmt::Display for Described {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for Described {}

#[derive(Debug)]
struct Panicked(String);
impl fmt::Display for Panicked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "actor panicked: {}", self.0)
    }
}
impl std::error::Error for Panicked {}
