//! [`Context`]: everything a running actor sees and can do.

use std::any::Any;
use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use crate::actor::Actor;
use crate::error::{ActorError, ActorResult, Error};
use crate::future::{RequestFuture, StopFuture};
use crate::message::{Envelope, Internal, InternalKind, Message, MessageHeader, PoisonPill, SystemMessage};
use crate::middleware::send_through;
use crate::pid::Pid;
use crate::props::Props;
use crate::supervision::RestartStatistics;
use crate::system::ActorSystem;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum LifecycleState {
    Alive,
    Restarting,
    Stopping,
    Stopped,
}

pub(crate) type BehaviorFn<A> = Arc<dyn Fn(&mut A, &mut Context) -> ActorResult + Send + Sync>;

pub(crate) struct ReceiveTimeoutState {
    pub(crate) duration: Duration,
    pub(crate) last: tokio::time::Instant,
    pub(crate) armed: bool,
}

/// Rarely used parts of the context, allocated on first use so that an idle
/// actor stays small.
#[derive(Default)]
pub(crate) struct Extras {
    pub(crate) children: HashSet<Pid>,
    pub(crate) watchers: Vec<Pid>,
    pub(crate) stash: Vec<Envelope>,
    pub(crate) behaviors: Vec<Arc<dyn Any + Send + Sync>>,
    pub(crate) receive_timeout: Option<ReceiveTimeoutState>,
    pub(crate) rt_generation: u64,
    pub(crate) restart_stats: Option<Arc<Mutex<RestartStatistics>>>,
}

/// What a running actor sees: the current message and its sender, its own
/// pid, parent and children, and the operations an actor may perform
/// (spawn, send, request, watch, stop, timers, behaviors, stash...).
pub struct Context {
    pub(crate) system: ActorSystem,
    pub(crate) self_pid: Pid,
    pub(crate) parent: Option<Pid>,
    pub(crate) props: Props,
    pub(crate) envelope: Option<Envelope>,
    pub(crate) extras: Option<Box<Extras>>,
    pub(crate) state: LifecycleState,
    pub(crate) unstash_requested: bool,
    /// `stop(self)` was called: stop once the current message is handled
    /// (the same outcome as a `Stop` system message, without queueing one).
    pub(crate) stop_requested: AtomicBool,
    pub(crate) incarnation: u64,
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("self", &self.self_pid)
            .field("parent", &self.parent)
            .field("message", &self.envelope.as_ref().map(|e| e.type_name()))
            .finish()
    }
}

impl Context {
    pub(crate) fn new(system: ActorSystem, self_pid: Pid, parent: Option<Pid>, props: Props) -> Self {
        Context {
            system,
            self_pid,
            parent,
            props,
            envelope: None,
            extras: None,
            state: LifecycleState::Alive,
            unstash_requested: false,
            stop_requested: AtomicBool::new(false),
            incarnation: 0,
        }
    }

    pub(crate) fn extras(&mut self) -> &mut Extras {
        self.extras.get_or_insert_with(Default::default)
    }

    // ----- info -----

    /// The value of type `T` attached to this actor's props with
    /// [`Props::with_extension`].
    pub fn extension<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.props.extension::<T>()
    }

    /// The actor system this actor lives in.
    pub fn system(&self) -> &ActorSystem {
        &self.system
    }

    /// This actor's pid.
    pub fn self_pid(&self) -> &Pid {
        &self.self_pid
    }

    /// The parent's pid (`None` for actors spawned from the root context).
    pub fn parent(&self) -> Option<&Pid> {
        self.parent.as_ref()
    }

    /// The pids of this actor's living children.
    pub fn children(&self) -> Vec<Pid> {
        self.extras.as_ref().map(|e| e.children.iter().cloned().collect()).unwrap_or_default()
    }

    /// The props this actor was spawned with.
    pub fn props(&self) -> &Props {
        &self.props
    }

    // ----- the current message -----

    /// The current message if it is a `T`.
    #[inline]
    pub fn message<T: Any>(&self) -> Option<&T> {
        self.envelope.as_ref()?.message.downcast_ref::<T>()
    }

    /// True if the current message is a `T`.
    #[inline]
    pub fn message_is<T: Any>(&self) -> bool {
        self.message::<T>().is_some()
    }

    /// Takes the current message out by value if it is a `T` (no clone).
    /// Afterwards the context holds no message (forwarding and stashing then
    /// carry nothing), so take it last.
    pub fn take_message<T: Any>(&mut self) -> Option<T> {
        let envelope = self.envelope.as_mut()?;
        if !envelope.message.is::<T>() {
            return None;
        }
        let message = std::mem::replace(&mut envelope.message, crate::message::AnyMessage::new(Taken));
        message.downcast::<T>().ok()
    }

    /// The type name of the current message (for logs).
    pub fn message_type_name(&self) -> &'static str {
        self.envelope.as_ref().map(|e| e.type_name()).unwrap_or("<none>")
    }

    /// The current envelope (message, sender, headers).
    pub fn envelope(&self) -> Option<&Envelope> {
        self.envelope.as_ref()
    }

    /// Who sent the current message, if it carried a sender.
    pub fn sender(&self) -> Option<&Pid> {
        self.envelope.as_ref()?.sender.as_ref()
    }

    /// The current message's headers.
    pub fn header(&self) -> Option<&MessageHeader> {
        self.envelope.as_ref()?.header.as_deref()
    }

    // ----- spawning -----

    /// Spawns a child with a generated name.
    pub fn spawn(&mut self, props: Props) -> Pid {
        let id = format!("{}/{}", self.self_pid.id(), self.system.registry().next_id().as_str());
        match self.spawn_id(props, &id) {
            Ok(pid) => pid,
            Err(_) => self.system.dead_letter_pid(),
        }
    }

    /// Spawns a child named `name` (its id is `<self id>/<name>`); an error if
    /// a living actor already has that name.
    pub fn spawn_named(&mut self, props: Props, name: &str) -> Result<Pid, Error> {
        let id = format!("{}/{}", self.self_pid.id(), name);
        self.spawn_id(props, &id)
    }

    /// Spawns a child whose name is `prefix` followed by a generated suffix.
    pub fn spawn_prefix(&mut self, props: Props, prefix: &str) -> Pid {
        let id = format!("{}/{}{}", self.self_pid.id(), prefix, self.system.registry().next_id().as_str());
        match self.spawn_id(props, &id) {
            Ok(pid) => pid,
            Err(_) => self.system.dead_letter_pid(),
        }
    }

    fn spawn_id(&mut self, props: Props, id: &str) -> Result<Pid, Error> {
        let pid = self.system.spawn_with_id(&props, id, Some(&self.self_pid))?;
        self.extras().children.insert(pid.clone());
        Ok(pid)
    }

    // ----- sending -----

    /// Sends `message` to `target` without a sender (fire and forget).
    #[inline]
    pub fn send<M: Message>(&self, target: &Pid, message: M) {
        self.send_envelope(target, Envelope::new(message));
    }

    /// Sends a prepared envelope through this actor's sender middleware.
    #[inline]
    pub fn send_envelope(&self, target: &Pid, envelope: Envelope) {
        send_through(&self.props.inner().sender_middleware, &self.system, Some(&self.self_pid), target, envelope);
    }

    /// Sends `message` with this actor as the sender; the response arrives as
    /// an ordinary message.
    pub fn request<M: Message>(&self, target: &Pid, message: M) {
        self.send_envelope(target, Envelope::new(message).with_sender(Some(self.self_pid.clone())));
    }

    /// Sends `message` with `sender` as the sender.
    pub fn request_with_sender<M: Message>(&self, target: &Pid, message: M, sender: &Pid) {
        self.send_envelope(target, Envelope::new(message).with_sender(Some(sender.clone())));
    }

    /// Sends `message` and returns a future of the typed response. The future
    /// fails with [`Error::Timeout`] after `timeout`, or at once with
    /// [`Error::DeadLetter`] if the target does not exist.
    ///
    /// Awaiting it inside `receive` blocks this actor until the response
    /// arrives; use [`reenter_after`](Self::reenter_after) to keep handling
    /// other messages meanwhile. Ask for `R = AnyMessage` to take any type.
    pub fn request_future<R: Send + 'static, M: Message>(
        &self,
        target: &Pid,
        message: M,
        timeout: Duration,
    ) -> RequestFuture<R> {
        let chain = &self.props.inner().sender_middleware;
        RequestFuture::start(&self.system, target, Envelope::new(message), timeout, |target, envelope| {
            send_through(chain, &self.system, Some(&self.self_pid), target, envelope)
        })
    }

    /// Replies to the sender of the current message. Without a sender the
    /// reply goes to dead letters.
    pub fn respond<M: Message>(&self, message: M) {
        match self.sender() {
            Some(sender) => {
                let sender = sender.clone();
                self.send_envelope(&sender, Envelope::new(message).with_sender(Some(self.self_pid.clone())));
            }
            None => {
                self.system.dead_letter(&self.self_pid, Envelope::new(message).with_sender(Some(self.self_pid.clone())))
            }
        }
    }

    /// Re-sends the current message, with its original sender and headers, to `target`.
    pub fn forward(&mut self, target: &Pid) {
        if let Some(envelope) = self.envelope.take() {
            let (message, sender, header) = envelope.into_parts();
            let copy = Envelope::from_boxed(message).with_sender(sender.clone());
            let copy = match &header {
                Some(h) => copy.with_header(h.clone()),
                None => copy,
            };
            // Keep a stand-in so later reads of `sender()` still work.
            let mut stand_in = Envelope::new(Forwarded).with_sender(sender);
            if let Some(h) = header {
                stand_in = stand_in.with_header(h);
            }
            self.envelope = Some(stand_in);
            self.send_envelope(target, copy);
        }
    }

    // ----- watching and stopping -----

    /// Asks for a [`Terminated`](crate::Terminated) message when `target`
    /// stops (at once if it is already gone).
    pub fn watch(&self, target: &Pid) {
        self.system.send_system_message(target, SystemMessage::Watch(self.self_pid.clone()));
    }

    /// Cancels a [`watch`](Self::watch).
    pub fn unwatch(&self, target: &Pid) {
        self.system.send_system_message(target, SystemMessage::Unwatch(self.self_pid.clone()));
    }

    /// Stops `target` after the message it is handling now; queued messages go to dead letters.
    pub fn stop(&self, target: &Pid) {
        if *target == self.self_pid {
            self.stop_requested.store(true, Ordering::Relaxed);
        } else {
            self.system.stop(target);
        }
    }

    /// Stops `target` once it has handled the messages already queued (graceful).
    pub fn poison(&self, target: &Pid) {
        self.system.send_user_message(target, Envelope::new(PoisonPill));
    }

    /// Stops `target`; the future completes when it has terminated.
    pub fn stop_future(&self, target: &Pid) -> StopFuture {
        StopFuture::start(&self.system, target, false)
    }

    /// Poisons `target`; the future completes when it has terminated.
    pub fn poison_future(&self, target: &Pid) -> StopFuture {
        StopFuture::start(&self.system, target, true)
    }

    // ----- receive timeout -----

    /// Delivers [`ReceiveTimeout`](crate::ReceiveTimeout) when no message
    /// arrives for `duration` (messages marked
    /// [`not_influencing_receive_timeout`](Envelope::not_influencing_receive_timeout)
    /// do not count). Fires once per idle period; the next message re-arms it.
    /// A zero duration cancels it.
    pub fn set_receive_timeout(&mut self, duration: Duration) {
        if duration.is_zero() {
            self.cancel_receive_timeout();
            return;
        }
        let extras = self.extras();
        extras.rt_generation += 1;
        extras.receive_timeout =
            Some(ReceiveTimeoutState { duration, last: tokio::time::Instant::now(), armed: false });
        self.arm_receive_timeout();
    }

    /// Cancels the receive timeout.
    pub fn cancel_receive_timeout(&mut self) {
        if let Some(extras) = self.extras.as_mut() {
            extras.rt_generation += 1;
            extras.receive_timeout = None;
        }
    }

    /// The receive timeout, if set.
    pub fn receive_timeout(&self) -> Option<Duration> {
        self.extras.as_ref()?.receive_timeout.as_ref().map(|r| r.duration)
    }

    pub(crate) fn arm_receive_timeout(&mut self) {
        let me = self.self_pid.clone();
        let system = self.system.clone();
        let Some(extras) = self.extras.as_mut() else { return };
        let generation = extras.rt_generation;
        let Some(rt) = extras.receive_timeout.as_mut() else { return };
        if rt.armed {
            return;
        }
        rt.armed = true;
        let deadline = rt.last + rt.duration;
        let sys = system.clone();
        system.spawn_task(async move {
            tokio::time::sleep_until(deadline).await;
            sys.send_system_message(
                &me,
                SystemMessage::Internal(Internal(InternalKind::ReceiveTimeoutTick(generation))),
            );
        });
    }

    // ----- behaviors -----

    /// Replaces the behavior stack with `behavior`: later messages go to it
    /// instead of `A::receive`.
    pub fn become_behavior<A: Actor>(
        &mut self,
        behavior: impl Fn(&mut A, &mut Context) -> ActorResult + Send + Sync + 'static,
    ) {
        let behavior: BehaviorFn<A> = Arc::new(behavior);
        let extras = self.extras();
        extras.behaviors.clear();
        extras.behaviors.push(Arc::new(behavior));
    }

    /// Pushes `behavior` on the behavior stack.
    pub fn become_stacked<A: Actor>(
        &mut self,
        behavior: impl Fn(&mut A, &mut Context) -> ActorResult + Send + Sync + 'static,
    ) {
        let behavior: BehaviorFn<A> = Arc::new(behavior);
        self.extras().behaviors.push(Arc::new(behavior));
    }

    /// Pops the top behavior; with an empty stack messages go to `A::receive` again.
    pub fn unbecome_stacked(&mut self) {
        if let Some(extras) = self.extras.as_mut() {
            extras.behaviors.pop();
        }
    }

    pub(crate) fn current_behavior<A: Actor>(&self) -> Option<BehaviorFn<A>> {
        let top = self.extras.as_ref()?.behaviors.last()?;
        top.downcast_ref::<BehaviorFn<A>>().cloned()
    }

    // ----- stash -----

    /// Sets the current message aside; [`unstash_all`](Self::unstash_all)
    /// (or a restart) delivers stashed messages again, in their original order,
    /// before anything queued after them.
    pub fn stash(&mut self) {
        if let Some(envelope) = self.envelope.take() {
            self.extras().stash.push(envelope);
        }
    }

    /// Re-delivers every stashed message once the current message is handled.
    pub fn unstash_all(&mut self) {
        if self.extras.as_ref().is_some_and(|e| !e.stash.is_empty()) {
            self.unstash_requested = true;
        }
    }

    // ----- reentrancy -----

    /// Runs `continuation` inside this actor (one message at a time, as
    /// usual) once `future` completes, without blocking the mailbox meanwhile.
    /// The continuation sees the sender and headers of the message being
    /// handled now, so [`respond`](Self::respond) answers the original request.
    /// It is dropped if the actor restarts or stops before the future completes.
    pub fn reenter_after<A, T, F, C>(&self, future: F, continuation: C)
    where
        A: Actor,
        T: Send + 'static,
        F: Future<Output = T> + Send + 'static,
        C: FnOnce(&mut A, &mut Context, T) -> ActorResult + Send + 'static,
    {
        let captured = self.envelope.as_ref().map(|e| {
            let mut stand_in = Envelope::new(Reentered).with_sender(e.sender.clone());
            stand_in.header = e.header.clone();
            stand_in
        });
        let incarnation = self.incarnation;
        let me = self.self_pid.clone();
        let system = self.system.clone();
        let sys = system.clone();
        system.spawn_task(async move {
            let value = future.await;
            let run: crate::message::ContinuationFn =
                Box::new(move |actor: &mut dyn Any, ctx: &mut Context| match actor.downcast_mut::<A>() {
                    Some(actor) => continuation(actor, ctx, value),
                    None => Err(ActorError::msg(format!(
                        "reenter_after continuation expects actor type `{}`",
                        std::any::type_name::<A>()
                    ))),
                });
            sys.send_system_message(
                &me,
                SystemMessage::Internal(Internal(InternalKind::Continuation { envelope: captured, incarnation, run })),
            );
        });
    }
}

/// Left in the context after [`Context::take_message`] moved the message out.
#[derive(Debug, Clone, Copy)]
pub struct Taken;

/// Left in the context after [`Context::forward`] sent the message on.
#[derive(Debug, Clone, Copy)]
pub struct Forwarded;

/// The message a [`Context::reenter_after`] continuation sees.
#[derive(Debug, Clone, Copy)]
pub struct Reentered;
