//! The process abstraction: anything a [`Pid`] can resolve to.

use std::fmt;
use std::sync::Arc;

use crate::message::{Envelope, SystemMessage};
use crate::pid::Pid;

/// Something that receives messages at a [`Pid`]: an actor's mailbox, a
/// pending request, the dead-letter sink, or (in `protoactor-remote`) a
/// connection to another system.
pub trait Process: Send + Sync + 'static {
    /// Delivers a user message.
    fn send_user_message(&self, pid: &Pid, envelope: Envelope);

    /// Delivers several user messages in order, leaving `envelopes` empty
    /// (remoting hands over a received batch this way: an actor's mailbox
    /// takes them under one lock).
    fn send_user_messages(&self, pid: &Pid, envelopes: &mut Vec<Envelope>) {
        for envelope in envelopes.drain(..) {
            self.send_user_message(pid, envelope);
        }
    }

    /// Delivers a system message.
    fn send_system_message(&self, pid: &Pid, message: SystemMessage);

    /// Stops the process.
    fn stop(&self, pid: &Pid) {
        self.send_system_message(pid, SystemMessage::Stop);
    }

    /// True once the process is gone for good; a cached resolution to a dead
    /// process is dropped and the pid resolved again.
    fn is_dead(&self) -> bool {
        false
    }
}

/// A shared handle to a process.
pub type ProcessRef = Arc<dyn Process>;

impl fmt::Debug for dyn Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Process")
    }
}

/// Resolves pids at addresses other than the local one (remoting registers one).
pub trait AddressResolver: Send + Sync + 'static {
    /// The process standing for `pid`, or `None` if this resolver does not
    /// handle its address.
    fn resolve(&self, pid: &Pid) -> Option<ProcessRef>;
}
