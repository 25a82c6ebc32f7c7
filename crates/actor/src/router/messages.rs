//! Management messages every router understands.

use std::fmt;

use crate::message::{AnyMessage, Message};
use crate::pid::Pid;

/// Adds a routee to a router (ignored if it is one already). The router
/// watches it and drops it again when it terminates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddRoutee(pub Pid);

/// Removes a routee from a router (ignored if it is not one). A pool router
/// also stops the routee (gracefully, with a poison pill) if it is one of its
/// own children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoveRoutee(pub Pid);

/// Asks a router for its routees; the reply (through `respond`) is
/// [`Routees`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GetRoutees;

/// The reply to [`GetRoutees`]: the current routees in the order they were added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routees(pub Vec<Pid>);

/// Delivers a copy of the wrapped message to every routee, whatever the
/// router's strategy, keeping the original sender and headers. It works for
/// any `Clone` message, without registering the type on the router.
///
/// ```
/// use protoactor_actor::router::BroadcastMessage;
/// # #[derive(Clone)] struct Reload;
/// let message = BroadcastMessage::new(Reload);
/// ```
pub struct BroadcastMessage {
    message: Box<dyn CloneMessage>,
}

impl BroadcastMessage {
    /// Wraps `message` for broadcasting.
    pub fn new<M: Message + Clone>(message: M) -> Self {
        BroadcastMessage { message: Box::new(message) }
    }

    /// The type name of the wrapped message.
    pub fn type_name(&self) -> &'static str {
        self.message.message_type_name()
    }

    /// A boxed copy of the wrapped message.
    pub(crate) fn copy(&self) -> AnyMessage {
        self.message.clone_boxed()
    }

    /// The wrapped message itself.
    pub(crate) fn into_inner(self) -> AnyMessage {
        self.message.into_boxed()
    }
}

impl fmt::Debug for BroadcastMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BroadcastMessage(<{}>)", self.type_name())
    }
}

/// A message that can copy itself while type-erased.
trait CloneMessage: Send {
    fn clone_boxed(&self) -> AnyMessage;
    fn into_boxed(self: Box<Self>) -> AnyMessage;
    fn message_type_name(&self) -> &'static str;
}

impl<M: Message + Clone> CloneMessage for M {
    fn clone_boxed(&self) -> AnyMessage {
        AnyMessage::new(self.clone())
    }

    fn into_boxed(self: Box<Self>) -> AnyMessage {
        AnyMessage::new(*self)
    }

    fn message_type_name(&self) -> &'static str {
        std::any::type_name::<M>()
    }
}
