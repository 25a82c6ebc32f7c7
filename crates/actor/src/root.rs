//! [`RootContext`]: spawning and messaging from outside any actor.

use std::sync::Arc;
use std::time::Duration;

use crate::error::Error;
use crate::future::{RequestFuture, StopFuture};
use crate::message::{Envelope, Message, MessageHeader, PoisonPill};
use crate::middleware::{SenderMiddleware, send_through};
use crate::pid::Pid;
use crate::props::Props;
use crate::system::ActorSystem;

/// Spawns top-level actors and talks to actors from ordinary code. Cheap to
/// clone. Actors it spawns are supervised by the system's guardian strategy.
#[derive(Clone, Debug)]
pub struct RootContext {
    system: ActorSystem,
    header: Option<MessageHeader>,
    sender_middleware: Arc<Vec<Arc<dyn SenderMiddleware>>>,
}

impl std::fmt::Debug for dyn SenderMiddleware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SenderMiddleware")
    }
}

impl RootContext {
    pub(crate) fn new(system: ActorSystem) -> Self {
        RootContext { system, header: None, sender_middleware: Arc::new(Vec::new()) }
    }

    /// Adds headers to every message sent through this context.
    pub fn with_header(mut self, header: MessageHeader) -> Self {
        self.header = Some(header);
        self
    }

    /// Adds a sender middleware layer to this context.
    pub fn with_sender_middleware(mut self, middleware: impl SenderMiddleware) -> Self {
        Arc::make_mut(&mut self.sender_middleware).push(Arc::new(middleware));
        self
    }

    /// The actor system.
    pub fn system(&self) -> &ActorSystem {
        &self.system
    }

    /// Spawns an actor with a generated name. During shutdown the returned
    /// pid leads to dead letters.
    pub fn spawn(&self, props: Props) -> Pid {
        let id = self.system.registry().next_id();
        self.system.spawn_with_id(&props, id.as_str(), None).unwrap_or_else(|_| self.system.dead_letter_pid())
    }

    /// Spawns an actor named `name`; an error if the name is taken.
    pub fn spawn_named(&self, props: Props, name: &str) -> Result<Pid, Error> {
        self.system.spawn_with_id(&props, name, None)
    }

    /// Spawns an actor named `prefix` plus a generated suffix.
    pub fn spawn_prefix(&self, props: Props, prefix: &str) -> Pid {
        let id = format!("{prefix}{}", self.system.registry().next_id().as_str());
        self.system.spawn_with_id(&props, &id, None).unwrap_or_else(|_| self.system.dead_letter_pid())
    }

    #[inline]
    fn prepare(&self, envelope: Envelope) -> Envelope {
        match &self.header {
            Some(h) => envelope.with_header(h.clone()),
            None => envelope,
        }
    }

    /// Sends a message without a sender.
    #[inline]
    pub fn send<M: Message>(&self, target: &Pid, message: M) {
        self.send_envelope(target, Envelope::new(message));
    }

    /// Sends a prepared envelope.
    #[inline]
    pub fn send_envelope(&self, target: &Pid, envelope: Envelope) {
        send_through(&self.sender_middleware, &self.system, None, target, self.prepare(envelope));
    }

    /// Sends a message with `sender` as the sender.
    pub fn request<M: Message>(&self, target: &Pid, message: M, sender: &Pid) {
        self.send_envelope(target, Envelope::new(message).with_sender(Some(sender.clone())));
    }

    /// Sends a message and returns a future of the typed response (see
    /// [`Context::request_future`](crate::Context::request_future)).
    pub fn request_future<R: Send + 'static, M: Message>(
        &self,
        target: &Pid,
        message: M,
        timeout: Duration,
    ) -> RequestFuture<R> {
        RequestFuture::start(&self.system, target, self.prepare(Envelope::new(message)), timeout, |target, envelope| {
            send_through(&self.sender_middleware, &self.system, None, target, envelope)
        })
    }

    /// Stops `target` after its current message.
    pub fn stop(&self, target: &Pid) {
        self.system.stop(target);
    }

    /// Stops `target` after the messages already queued.
    pub fn poison(&self, target: &Pid) {
        self.system.send_user_message(target, Envelope::new(PoisonPill));
    }

    /// Stops `target` and waits until it has terminated.
    pub fn stop_future(&self, target: &Pid) -> StopFuture {
        StopFuture::start(&self.system, target, false)
    }

    /// Poisons `target` and waits until it has terminated.
    pub fn poison_future(&self, target: &Pid) -> StopFuture {
        StopFuture::start(&self.system, target, true)
    }
}
