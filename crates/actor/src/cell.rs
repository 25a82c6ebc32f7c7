//! The actor process: mailbox, actor instance, context, and the run loop
//! that feeds messages to the actor one at a time.
//!
//! Each actor has one task for its whole life, run by one of the system's
//! lanes (see [`crate::lane`]). It handles system messages first, then user
//! messages, giving the lane to other actors every `throughput` messages;
//! when the mailbox is empty it parks on a waker. A producer that finds the
//! mailbox idle claims it and wakes the task, so an activation costs a
//! wake-up, not a spawn. The actor and its context live in the task, so they
//! need no lock of their own.

use std::any::Any;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use tracing::Instrument;

use crate::actor::Actor;
use crate::context::{Context, LifecycleState};
use crate::error::{ActorError, ActorResult, Error};
use crate::lane::LaneRef;
use crate::mailbox::{Mailbox, Notified};
use crate::message::{
    Envelope, Failure, Internal, InternalKind, PoisonPill, ReceiveTimeout, Restarting, Started, Stopped, Stopping,
    SystemMessage, Terminated, TerminatedReason,
};
use crate::middleware::{ErasedReceive, ReceiveNext};
use crate::pid::Pid;
use crate::process::{Process, ProcessRef};
use crate::props::Props;
use crate::supervision::{OneForOneStrategy, Supervisor, SupervisorStrategy};
use crate::system::ActorSystem;

type Producer<A> = Arc<dyn Fn() -> A + Send + Sync>;

struct CellState<A> {
    actor: A,
    ctx: Context,
    /// User messages taken from the mailbox in one batch, not yet handled.
    local: VecDeque<Envelope>,
    /// `Started` is still to be delivered (kept out of the system queue so a
    /// fresh actor allocates no queue buffer).
    pending_start: bool,
}

/// What a pid of an actor resolves to: the mailbox, and what is needed to
/// restart the actor. The actor itself lives in its run task.
pub(crate) struct ActorProcess<A: Actor> {
    system: ActorSystem,
    mailbox: Mailbox,
    producer: Producer<A>,
    dead: AtomicBool,
    /// The id, to dead-letter late arrivals once dead (a `Pid` here would form
    /// a cycle through the pid's cache).
    id: Arc<str>,
    /// The instance the producer made at spawn, until the lane starts the
    /// task with it (kept here rather than boxed: no allocation on the
    /// spawning thread to be freed on the lane's).
    initial: parking_lot::Mutex<Option<A>>,
}

pub(crate) fn spawn_actor<A: Actor>(
    system: &ActorSystem,
    props: &Props,
    id: &str,
    parent: Option<Pid>,
    producer: Producer<A>,
) -> Result<Pid, Error> {
    // The producer runs here, in the spawning call, as in Proto.Actor: what
    // it reads (the cluster's topology, say) is what was current at spawn.
    // If it panics, nothing has been registered.
    let actor = producer();
    let id: Arc<str> = Arc::from(id);
    let process = Arc::new(ActorProcess {
        system: system.clone(),
        mailbox: Mailbox::new_closed(props.mailbox()),
        producer,
        dead: AtomicBool::new(false),
        id: id.clone(),
        initial: parking_lot::Mutex::new(Some(actor)),
    });
    let process_ref: ProcessRef = process.clone();
    if !system.registry().try_add(&id, process_ref.clone()) {
        return Err(Error::NameExists(id.to_string()));
    }
    let pid = Pid::resolved(system.address(), id, system.key(), process_ref);
    system.actor_started();
    // The mailbox starts claimed: the task runs `Started` first.
    let incarnation = Incarnation { pid: pid.clone(), parent, props: props.clone() };
    system.start_actor(process, incarnation);
    Ok(pid)
}

/// What a new actor's task is built from, where it starts.
pub(crate) struct Incarnation {
    pid: Pid,
    parent: Option<Pid>,
    props: Props,
}

/// Starts an actor's task on the lane the actor belongs to: its context and
/// its task are allocated there, and the spawning thread only makes the
/// instance and registers the process.
pub(crate) trait StartActor: Send + Sync + 'static {
    fn start(self: Arc<Self>, incarnation: Incarnation, lane: LaneRef<'_>);
}

#[cfg(test)]
pub(crate) mod start_faults {
    //! Test hook: ids of actors whose start on the lane panics (a stand-in for
    //! a runtime bug there, which no public API can provoke).
    pub(crate) static FAIL: parking_lot::Mutex<Vec<(String, usize)>> = parking_lot::Mutex::new(Vec::new());

    /// True (and counted) if the actor `id` is to fail its start this time.
    pub(crate) fn take(id: &str) -> bool {
        let mut fail = FAIL.lock();
        match fail.iter_mut().find(|(i, n)| i == id && *n > 0) {
            Some((_, n)) => {
                *n -= 1;
                true
            }
            None => false,
        }
    }
}

impl<A: Actor> StartActor for ActorProcess<A> {
    fn start(self: Arc<Self>, incarnation: Incarnation, lane: LaneRef<'_>) {
        let Incarnation { pid, parent, props } = incarnation;
        let actor = self.initial.lock().take();
        let this = self.clone();
        let started = std::panic::catch_unwind(AssertUnwindSafe(|| {
            #[cfg(test)]
            if start_faults::take(pid.id()) {
                panic!("test: start of {pid} fails on its lane");
            }
            let Some(actor) = actor else { unreachable!("an actor is started once, with the instance made at spawn") };
            let ctx = Context::new(this.system.clone(), pid.clone(), parent.clone(), props.clone());
            let cell = CellState { actor, ctx, local: VecDeque::new(), pending_start: true };
            crate::lane::spawn_on(lane.clone(), this.run(cell));
        }));
        if let Err(payload) = started {
            self.start_failed(pid, parent, props, ActorError::from_panic(payload), lane);
        }
    }
}

impl<A: Actor> ActorProcess<A> {
    /// Starting the actor's task panicked: this fails like any start. A fresh
    /// instance gets a task whose first act is to report the failure, so the
    /// supervisor decides (restart, stop: watchers get `Terminated`); if even
    /// that cannot be made, the actor stops at once.
    #[cold]
    fn start_failed(
        self: Arc<Self>,
        pid: Pid,
        parent: Option<Pid>,
        props: Props,
        reason: ActorError,
        lane: LaneRef<'_>,
    ) {
        tracing::error!(actor = %pid, %reason, "actor failed to start on its lane; asking its supervisor");
        let this = self.clone();
        let (p, pr) = (pid.clone(), parent.clone());
        let retried = std::panic::catch_unwind(AssertUnwindSafe(move || {
            let actor = (this.producer)();
            let ctx = Context::new(this.system.clone(), p, pr, props);
            let cell = CellState { actor, ctx, local: VecDeque::new(), pending_start: false };
            let run: crate::message::ContinuationFn = Box::new(move |_, _| Err(reason));
            let failure = InternalKind::Continuation { envelope: None, incarnation: cell.ctx.incarnation, run };
            // Ahead of anything already queued: the mailbox is still claimed
            // for the task that was never made.
            this.mailbox.push_system(SystemMessage::Internal(Internal(failure)));
            crate::lane::spawn_on(lane, this.run(cell));
        }));
        if retried.is_err() {
            tracing::error!(actor = %pid, "actor could not be made again after a failed start; it stops");
            self.system.registry().remove(pid.id());
            self.dead.store(true, Ordering::Release);
            self.mailbox.set_dead();
            self.drain_dead();
            self.system.actor_stopped();
            if let Some(parent) = &parent {
                let terminated = Terminated { who: pid.clone(), why: TerminatedReason::Stopped };
                self.system.send_system_message(parent, SystemMessage::Terminated(terminated));
            }
        }
    }
}

impl<A: Actor> ActorProcess<A> {
    /// After a push: wakes the actor's task if this push claimed the
    /// mailbox, drains to dead letters if the actor is gone.
    #[inline]
    fn notified(&self) {
        match self.mailbox.notify() {
            Notified::Claimed(Some(waker)) => waker.wake(),
            Notified::Claimed(None) | Notified::Running => {}
            Notified::Dead => self.drain_dead(),
        }
    }
}

impl<A: Actor> Process for ActorProcess<A> {
    #[inline]
    fn send_user_message(&self, pid: &Pid, envelope: Envelope) {
        if self.dead.load(Ordering::Acquire) {
            return self.system.dead_letter(pid, envelope);
        }
        if let Some(dropped) = self.mailbox.push_user(envelope) {
            self.system.dead_letter(pid, dropped);
        }
        self.notified();
    }

    fn send_user_messages(&self, pid: &Pid, envelopes: &mut Vec<Envelope>) {
        if self.dead.load(Ordering::Acquire) {
            return envelopes.drain(..).for_each(|e| self.system.dead_letter(pid, e));
        }
        self.mailbox.push_user_many(envelopes, |dropped| self.system.dead_letter(pid, dropped));
        self.notified();
    }

    fn send_system_message(&self, pid: &Pid, message: SystemMessage) {
        if self.dead.load(Ordering::Acquire) {
            return self.system.dead_system_message(pid, message, TerminatedReason::Stopped);
        }
        self.mailbox.push_system(message);
        self.notified();
    }

    #[inline]
    fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Acquire)
    }
}

fn default_strategy() -> Arc<dyn SupervisorStrategy> {
    static DEFAULT: OnceLock<Arc<dyn SupervisorStrategy>> = OnceLock::new();
    DEFAULT.get_or_init(|| Arc::new(OneForOneStrategy::default())).clone()
}

/// True when no subscriber wants per-message trace spans.
#[inline]
fn tracing_off() -> bool {
    tracing::level_filters::LevelFilter::current() < tracing::Level::TRACE
}

impl<A: Actor> CellState<A> {
    /// No middleware, no behavior, no tracing: the actor's own receive runs directly.
    #[inline]
    fn plain(&self, tracing_off: bool) -> bool {
        tracing_off
            && self.ctx.props.inner().receiver_middleware.is_empty()
            && self.ctx.extras.as_ref().is_none_or(|e| e.behaviors.is_empty())
    }
}

/// Runs the actor on `cell.ctx.envelope`: directly when nothing wraps it, else
/// through the boxed `dispatch`. A macro, not an `async fn`: a nested future
/// here would cost two large moves per message on the hottest path.
macro_rules! receive_current {
    ($process:expr, $cell:expr) => {
        if $cell.plain(tracing_off()) {
            panic_to_error(AssertUnwindSafe($cell.actor.receive(&mut $cell.ctx)).catch_unwind().await)
        } else {
            Box::pin($process.dispatch($cell)).await
        }
    };
}

fn panic_to_error(result: std::thread::Result<ActorResult>) -> ActorResult {
    result.unwrap_or_else(|payload| Err(ActorError::from_panic(payload)))
}

/// The actor as the innermost layer of a receive middleware chain.
struct Erased<'a, A>(&'a mut A);

impl<A: Actor> ErasedReceive for Erased<'_, A> {
    fn receive_boxed<'b>(&'b mut self, ctx: &'b mut Context) -> BoxFuture<'b, ActorResult> {
        if let Some(behavior) = ctx.current_behavior::<A>() {
            let result = behavior(self.0, ctx);
            return Box::pin(std::future::ready(result));
        }
        Box::pin(self.0.receive(ctx))
    }
}

impl<A: Actor> ActorProcess<A> {
    /// The actor's life: handle what is queued, park until a producer claims
    /// the mailbox, repeat until stopped. Parking costs no allocation, so an
    /// activation is a wake-up, not a new task.
    // Not an `async fn`: its arguments would be stored twice in the task (once
    // as arguments, once as locals); a capturing block stores the cell once.
    #[allow(clippy::manual_async_fn)]
    fn run(self: Arc<Self>, mut cell: CellState<A>) -> impl Future<Output = ()> + Send {
        async move {
            loop {
                if self.process(&mut cell).await {
                    // Dropping the context breaks the pid <-> process cycles.
                    drop(cell);
                    self.mailbox.set_dead();
                    self.drain_dead();
                    return;
                }
                if cell.local.capacity() > 64 {
                    // Give back what a burst grew; idle actors should stay small.
                    cell.local = VecDeque::new();
                }
                self.mailbox.set_idle();
                if self.mailbox.has_runnable() && self.mailbox.try_schedule() {
                    continue;
                }
                std::future::poll_fn(|cx| self.mailbox.poll_claimed(cx)).await;
            }
        }
    }

    /// Handles messages until none may run now; true once the actor has stopped.
    ///
    /// Its state machine is part of every actor's task, and tokio sizes task
    /// cells in 128-byte steps, so nothing large may live across an `.await`
    /// here: popped messages are moved out in blocks that end before the
    /// awaits, and rare paths are boxed. (Not an `async fn`, whose arguments
    /// would be stored twice.)
    #[allow(clippy::manual_async_fn)]
    fn process<'a>(&'a self, cell: &'a mut CellState<A>) -> impl Future<Output = bool> + Send + 'a {
        async move {
            let throughput = cell.ctx.props.throughput();
            let mut handled = 0usize;
            if cell.pending_start {
                cell.pending_start = false;
                cell.ctx.envelope = Some(Envelope::new(Started));
                let result = receive_current!(self, cell);
                self.after_receive(cell, result, true);
            }
            loop {
                if cell.ctx.stop_requested.load(Ordering::Relaxed) && cell.ctx.state == LifecycleState::Alive {
                    Box::pin(self.begin_stop(cell)).await;
                    if cell.ctx.state == LifecycleState::Stopped {
                        return true;
                    }
                }
                if self.mailbox.has_system() {
                    loop {
                        // Boxed: rare, and its future is large.
                        let handling = match self.mailbox.pop_system() {
                            Some(message) => Box::pin(self.handle_system(cell, message)),
                            None => break,
                        };
                        handling.await;
                        if cell.ctx.state == LifecycleState::Stopped {
                            return true;
                        }
                    }
                    // A handler run from a system message (ReceiveTimeout, a
                    // reenter_after continuation) may have asked to stop itself.
                    if cell.ctx.stop_requested.load(Ordering::Relaxed) && cell.ctx.state == LifecycleState::Alive {
                        continue;
                    }
                }
                if self.mailbox.is_suspended() {
                    return false;
                }
                let poison = match cell.local.pop_front() {
                    Some(envelope) if envelope.message.is::<PoisonPill>() => true,
                    Some(envelope) => {
                        if envelope.influences_receive_timeout() && cell.ctx.extras.is_some() {
                            Self::touch_receive_timeout(cell);
                        }
                        cell.ctx.envelope = Some(envelope);
                        false
                    }
                    None if self.mailbox.take_user(&mut cell.local) => continue,
                    None => return false,
                };
                if poison {
                    Box::pin(self.begin_stop(cell)).await;
                } else {
                    let result = receive_current!(self, cell);
                    self.after_receive(cell, result, true);
                    if cell.ctx.stop_requested.load(Ordering::Relaxed) {
                        Box::pin(self.begin_stop(cell)).await;
                    }
                }
                if cell.ctx.state == LifecycleState::Stopped {
                    return true;
                }
                handled += 1;
                if handled >= throughput {
                    handled = 0;
                    crate::lane::yield_turn().await;
                }
            }
        }
    }

    /// Everything left once the actor is gone goes to dead letters; watches
    /// are answered with `Terminated`.
    fn drain_dead(&self) {
        let (system, user) = self.mailbox.drain();
        if system.is_empty() && user.is_empty() {
            return;
        }
        let pid = Pid::new(self.system.address(), self.id.clone());
        for message in system {
            self.system.dead_system_message(&pid, message, TerminatedReason::Stopped);
        }
        for envelope in user {
            self.system.dead_letter(&pid, envelope);
        }
    }

    fn touch_receive_timeout(cell: &mut CellState<A>) {
        if let Some(extras) = cell.ctx.extras.as_mut()
            && let Some(rt) = extras.receive_timeout.as_mut()
        {
            rt.last = tokio::time::Instant::now();
            if !rt.armed {
                cell.ctx.arm_receive_timeout();
            }
        }
    }

    /// Runs the actor on `ctx.envelope` through middleware, behaviors and tracing.
    async fn dispatch(&self, cell: &mut CellState<A>) -> ActorResult {
        let CellState { actor, ctx, .. } = cell;
        let span = tracing::trace_span!("receive", actor = %ctx.self_pid, message = ctx.message_type_name());
        if ctx.props.inner().receiver_middleware.is_empty() {
            match ctx.current_behavior::<A>() {
                Some(behavior) => panic_to_error(std::panic::catch_unwind(AssertUnwindSafe(|| behavior(actor, ctx)))),
                None => panic_to_error(AssertUnwindSafe(actor.receive(ctx)).catch_unwind().instrument(span).await),
            }
        } else {
            let props = ctx.props.clone();
            let mut erased = Erased(actor);
            let next = ReceiveNext { rest: &props.inner().receiver_middleware, actor: &mut erased };
            panic_to_error(AssertUnwindSafe(next.run(ctx)).catch_unwind().instrument(span).await)
        }
    }

    /// Clears the current message, replays a requested unstash, and reports a
    /// failure to the supervisor (`supervised`) or the log.
    fn after_receive(&self, cell: &mut CellState<A>, result: ActorResult, supervised: bool) {
        let envelope = cell.ctx.envelope.take();
        if cell.ctx.unstash_requested {
            cell.ctx.unstash_requested = false;
            if let Some(extras) = cell.ctx.extras.as_mut() {
                for stashed in extras.stash.drain(..).rev() {
                    cell.local.push_front(stashed);
                }
            }
        }
        if let Err(reason) = result {
            let message_type = envelope.as_ref().map(|e| e.type_name());
            if supervised {
                self.escalate_failure(cell, reason, message_type);
            } else {
                tracing::warn!(actor = %cell.ctx.self_pid, message = ?message_type, %reason, "actor failed while stopping or restarting");
            }
        }
    }

    /// Runs the actor on a lifecycle or system-originated message and hands a
    /// failure to the supervisor.
    async fn invoke(&self, cell: &mut CellState<A>, envelope: Envelope) {
        cell.ctx.envelope = Some(envelope);
        let result = self.dispatch(cell).await;
        self.after_receive(cell, result, true);
    }

    /// Like `invoke`, for lifecycle messages whose failure cannot be supervised any more.
    async fn invoke_logged(&self, cell: &mut CellState<A>, envelope: Envelope) {
        cell.ctx.envelope = Some(envelope);
        let result = self.dispatch(cell).await;
        self.after_receive(cell, result, false);
    }

    fn escalate_failure(&self, cell: &mut CellState<A>, reason: ActorError, message_type: Option<&'static str>) {
        tracing::debug!(actor = %cell.ctx.self_pid, %reason, "actor failed; asking its supervisor");
        self.mailbox.suspend();
        let stats = cell.ctx.extras().restart_stats.get_or_insert_with(Default::default).clone();
        let failure = Failure { who: cell.ctx.self_pid.clone(), reason, message_type, stats };
        match &cell.ctx.parent {
            Some(parent) => self.system.send_system_message(parent, SystemMessage::Failure(failure)),
            None => self.system.handle_root_failure(failure),
        }
    }

    async fn handle_system(&self, cell: &mut CellState<A>, message: SystemMessage) {
        match message {
            SystemMessage::Started => self.invoke(cell, Envelope::new(Started)).await,
            SystemMessage::Stop => self.begin_stop(cell).await,
            SystemMessage::Watch(watcher) => {
                if cell.ctx.state >= LifecycleState::Stopping {
                    let terminated = Terminated { who: cell.ctx.self_pid.clone(), why: TerminatedReason::Stopped };
                    self.system.send_system_message(&watcher, SystemMessage::Terminated(terminated));
                } else {
                    let watchers = &mut cell.ctx.extras().watchers;
                    if !watchers.contains(&watcher) {
                        watchers.push(watcher);
                    }
                }
            }
            SystemMessage::Unwatch(watcher) => {
                if let Some(extras) = cell.ctx.extras.as_mut() {
                    extras.watchers.retain(|w| *w != watcher);
                }
            }
            SystemMessage::Terminated(terminated) => self.handle_terminated(cell, terminated).await,
            SystemMessage::Failure(failure) => self.handle_child_failure(cell, failure),
            SystemMessage::Restart => self.begin_restart(cell).await,
            SystemMessage::Suspend => self.mailbox.suspend(),
            SystemMessage::Resume => {
                if cell.ctx.state == LifecycleState::Alive {
                    self.mailbox.resume()
                }
            }
            SystemMessage::Internal(internal) => match internal.0 {
                InternalKind::Continuation { envelope, incarnation, run } => {
                    if incarnation != cell.ctx.incarnation || cell.ctx.state != LifecycleState::Alive {
                        return;
                    }
                    cell.ctx.envelope = envelope;
                    let CellState { actor, ctx, .. } = cell;
                    let result =
                        panic_to_error(std::panic::catch_unwind(AssertUnwindSafe(|| run(actor as &mut dyn Any, ctx))));
                    self.after_receive(cell, result, true);
                }
                InternalKind::ReceiveTimeoutTick(generation) => self.handle_receive_timeout(cell, generation).await,
            },
        }
    }

    async fn handle_receive_timeout(&self, cell: &mut CellState<A>, generation: u64) {
        let Some(extras) = cell.ctx.extras.as_mut() else { return };
        if extras.rt_generation != generation {
            return;
        }
        let Some(rt) = extras.receive_timeout.as_mut() else { return };
        rt.armed = false;
        if cell.ctx.state != LifecycleState::Alive {
            return;
        }
        if tokio::time::Instant::now() >= rt.last + rt.duration {
            // Stays unarmed until the next message that influences it.
            self.invoke(cell, Envelope::new(ReceiveTimeout).not_influencing_receive_timeout()).await;
        } else {
            cell.ctx.arm_receive_timeout();
        }
    }

    async fn handle_terminated(&self, cell: &mut CellState<A>, terminated: Terminated) {
        if let Some(extras) = cell.ctx.extras.as_mut() {
            extras.children.remove(&terminated.who);
        }
        if cell.ctx.state == LifecycleState::Alive {
            self.invoke(cell, Envelope::new(terminated)).await;
        } else {
            self.invoke_logged(cell, Envelope::new(terminated)).await;
        }
        self.try_finish(cell).await;
    }

    fn handle_child_failure(&self, cell: &mut CellState<A>, failure: Failure) {
        let strategy = cell.ctx.props.inner().supervisor.clone().unwrap_or_else(default_strategy);
        let supervisor = ContextSupervisor { ctx: &cell.ctx, escalated: RefCell::new(None) };
        strategy.handle_failure(&supervisor, &failure);
        if let Some(failure) = supervisor.escalated.into_inner() {
            self.escalate_failure(cell, failure.reason, failure.message_type);
        }
    }

    fn stop_children(&self, cell: &CellState<A>) {
        if let Some(extras) = cell.ctx.extras.as_ref() {
            for child in &extras.children {
                self.system.stop(child);
            }
        }
    }

    async fn begin_stop(&self, cell: &mut CellState<A>) {
        if cell.ctx.state >= LifecycleState::Stopping {
            return;
        }
        cell.ctx.state = LifecycleState::Stopping;
        cell.ctx.cancel_receive_timeout();
        // No more user messages: they go to dead letters once stopped.
        self.mailbox.suspend();
        self.invoke_logged(cell, Envelope::new(Stopping)).await;
        self.stop_children(cell);
        self.try_finish(cell).await;
    }

    async fn begin_restart(&self, cell: &mut CellState<A>) {
        if cell.ctx.state != LifecycleState::Alive {
            return;
        }
        cell.ctx.state = LifecycleState::Restarting;
        cell.ctx.cancel_receive_timeout();
        self.mailbox.suspend();
        self.invoke_logged(cell, Envelope::new(Restarting)).await;
        self.stop_children(cell);
        self.try_finish(cell).await;
    }

    /// Completes a stop or restart once every child has terminated.
    async fn try_finish(&self, cell: &mut CellState<A>) {
        if cell.ctx.extras.as_ref().is_some_and(|e| !e.children.is_empty()) {
            return;
        }
        match cell.ctx.state {
            LifecycleState::Stopping => self.finish_stop(cell).await,
            LifecycleState::Restarting => self.finish_restart(cell).await,
            _ => {}
        }
    }

    async fn finish_stop(&self, cell: &mut CellState<A>) {
        let pid = cell.ctx.self_pid.clone();
        self.system.registry().remove(pid.id());
        self.dead.store(true, Ordering::Release);
        self.invoke_logged(cell, Envelope::new(Stopped)).await;
        // Counted out before anyone hears of it, so a watcher never sees it still counted.
        self.system.actor_stopped();
        let terminated = Terminated { who: pid.clone(), why: TerminatedReason::Stopped };
        let parent = cell.ctx.parent.clone();
        if let Some(extras) = cell.ctx.extras.as_mut() {
            for watcher in extras.watchers.drain(..) {
                if Some(&watcher) != parent.as_ref() {
                    self.system.send_system_message(&watcher, SystemMessage::Terminated(terminated.clone()));
                }
            }
            for envelope in extras.stash.drain(..) {
                self.system.dead_letter(&pid, envelope);
            }
        }
        for envelope in cell.local.drain(..) {
            self.system.dead_letter(&pid, envelope);
        }
        if let Some(parent) = &parent {
            self.system.send_system_message(parent, SystemMessage::Terminated(terminated));
        }
        cell.ctx.state = LifecycleState::Stopped;
        tracing::debug!(actor = %pid, "actor stopped");
    }

    async fn finish_restart(&self, cell: &mut CellState<A>) {
        let producer = self.producer.clone();
        match std::panic::catch_unwind(AssertUnwindSafe(|| producer())) {
            Ok(actor) => cell.actor = actor,
            Err(payload) => {
                // Keep the old instance; the failure goes to the supervisor again.
                cell.ctx.state = LifecycleState::Alive;
                return self.escalate_failure(cell, ActorError::from_panic(payload), Some("producer"));
            }
        }
        if let Some(extras) = cell.ctx.extras.as_mut() {
            extras.behaviors.clear();
        }
        cell.ctx.incarnation += 1;
        cell.ctx.state = LifecycleState::Alive;
        tracing::debug!(actor = %cell.ctx.self_pid, "actor restarted");
        self.mailbox.resume();
        self.invoke(cell, Envelope::new(Started)).await;
        if let Some(extras) = cell.ctx.extras.as_mut() {
            for envelope in extras.stash.drain(..).rev() {
                cell.local.push_front(envelope);
            }
        }
    }
}

/// A parent's view of its children while its strategy handles a failure.
struct ContextSupervisor<'a> {
    ctx: &'a Context,
    escalated: RefCell<Option<Failure>>,
}

impl Supervisor for ContextSupervisor<'_> {
    fn children(&self) -> Vec<Pid> {
        self.ctx.children()
    }

    fn restart_children(&self, pids: &[Pid]) {
        for pid in pids {
            self.ctx.system.send_system_message(pid, SystemMessage::Restart);
        }
    }

    fn stop_children(&self, pids: &[Pid]) {
        for pid in pids {
            self.ctx.system.stop(pid);
        }
    }

    fn resume_children(&self, pids: &[Pid]) {
        for pid in pids {
            self.ctx.system.send_system_message(pid, SystemMessage::Resume);
        }
    }

    fn escalate_failure(&self, failure: &Failure) {
        *self.escalated.borrow_mut() = Some(failure.clone());
    }

    fn system(&self) -> &ActorSystem {
        &self.ctx.system
    }
}

#[cfg(test)]
mod size_report {
    use super::*;

    struct Tiny;
    impl Actor for Tiny {
        async fn receive(&mut self, _ctx: &mut Context) -> ActorResult {
            Ok(())
        }
    }

    /// Every actor keeps its run task for life, so the task's size is most of
    /// what an idle actor costs (the budget is 1 KiB per actor in all).
    #[tokio::test]
    async fn an_idle_actor_stays_small() {
        let system = ActorSystem::new();
        let pid = system.root().spawn(Props::from_producer(|| Tiny));
        let process = Arc::new(ActorProcess::<Tiny> {
            system: system.clone(),
            mailbox: Mailbox::new_closed(Default::default()),
            producer: Arc::new(|| Tiny),
            dead: AtomicBool::new(false),
            id: Arc::from("x"),
            initial: parking_lot::Mutex::new(None),
        });
        let ctx = Context::new(system.clone(), pid, None, Props::from_producer(|| Tiny));
        let cell = CellState { actor: Tiny, ctx, local: VecDeque::new(), pending_start: true };
        let run = process.clone().run(cell);
        // 232 B today; with async-task's header and the lane handle the task
        // is under 300 B.
        assert!(std::mem::size_of_val(&run) <= 240, "run task future grew to {} B", std::mem::size_of_val(&run));
        assert!(std::mem::size_of::<ActorProcess<Tiny>>() <= 192, "{} B", std::mem::size_of::<ActorProcess<Tiny>>());
        assert!(std::mem::size_of::<Envelope>() <= 56, "{} B", std::mem::size_of::<Envelope>());
        system.shutdown().await;
    }
}

#[cfg(test)]
mod start_failure {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::supervision::Directive;
    use std::time::Duration;
    use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

    #[derive(Debug, PartialEq)]
    enum Seen {
        ChildStarted,
        Decided(String),
        ChildPid(Pid),
        ParentSawTerminated,
        WatcherSawTerminated,
    }

    struct Child(UnboundedSender<Seen>);
    impl Actor for Child {
        async fn receive(&mut self, ctx: &mut Context) -> ActorResult {
            if ctx.message::<Started>().is_some() {
                let _ = self.0.send(Seen::ChildStarted);
            }
            Ok(())
        }
    }

    struct Parent(UnboundedSender<Seen>);
    impl Actor for Parent {
        async fn receive(&mut self, ctx: &mut Context) -> ActorResult {
            if ctx.message::<Started>().is_some() {
                let probe = self.0.clone();
                let pid = ctx.spawn_named(Props::from_producer(move || Child(probe.clone())), "doomed")?;
                let _ = self.0.send(Seen::ChildPid(pid));
            } else if ctx.message::<Terminated>().is_some() {
                let _ = self.0.send(Seen::ParentSawTerminated);
            }
            Ok(())
        }
    }

    struct Watcher(Pid, UnboundedSender<Seen>);
    impl Actor for Watcher {
        async fn receive(&mut self, ctx: &mut Context) -> ActorResult {
            if ctx.message::<Started>().is_some() {
                ctx.watch(&self.0);
            } else if let Some(t) = ctx.message::<Terminated>()
                && t.who == self.0
            {
                let _ = self.1.send(Seen::WatcherSawTerminated);
            }
            Ok(())
        }
    }

    async fn next(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Seen>) -> Seen {
        tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.unwrap().unwrap()
    }

    fn parent(name: &str, directive: Directive, probe: UnboundedSender<Seen>) -> Props {
        start_faults::FAIL.lock().push((format!("{name}/doomed"), 1));
        let decided = probe.clone();
        let strategy = OneForOneStrategy::new(3, Duration::from_secs(10)).with_decider(move |pid, reason| {
            let _ = decided.send(Seen::Decided(format!("{} {reason}", pid.id())));
            directive
        });
        Props::from_producer(move || Parent(probe.clone())).with_supervisor(strategy)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panic_starting_on_the_lane_goes_to_the_supervisor_which_restarts() {
        let system = ActorSystem::new();
        let (tx, mut rx) = unbounded_channel();
        system.root().spawn_named(parent("lane-restart", Directive::Restart, tx), "lane-restart").unwrap();
        let Seen::ChildPid(child) = next(&mut rx).await else { panic!("the parent reports its child first") };
        let Seen::Decided(what) = next(&mut rx).await else { panic!("the supervisor decides first") };
        assert!(what.starts_with("lane-restart/doomed") && what.contains("fails on its lane"), "{what}");
        assert_eq!(next(&mut rx).await, Seen::ChildStarted, "restarted once, the child runs");
        assert!(
            system.registry().get_local(child.id()).is_some_and(|p| !p.is_dead()),
            "the pid leads to the restarted actor"
        );
        system.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panic_starting_on_the_lane_that_the_supervisor_stops_terminates_for_watchers() {
        let system = ActorSystem::new();
        let (tx, mut rx) = unbounded_channel();
        system.root().spawn_named(parent("lane-stop", Directive::Stop, tx.clone()), "lane-stop").unwrap();
        let Seen::ChildPid(child) = next(&mut rx).await else { panic!("the parent reports its child first") };
        system.root().spawn(Props::from_producer(move || Watcher(child.clone(), tx.clone())));
        let mut seen = Vec::new();
        for _ in 0..3 {
            seen.push(next(&mut rx).await);
        }
        assert!(matches!(&seen[0], Seen::Decided(what) if what.contains("fails on its lane")), "{seen:?}");
        assert!(seen.contains(&Seen::ParentSawTerminated), "{seen:?}");
        assert!(seen.contains(&Seen::WatcherSawTerminated), "{seen:?}");
        assert!(!seen.contains(&Seen::ChildStarted), "{seen:?}");
        system.shutdown().await;
    }
}
