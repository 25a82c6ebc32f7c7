//! The actor process: mailbox, actor instance, context, and the run loop
//! that feeds messages to the actor one at a time.
//!
//! No task exists while an actor is idle. The first message to an idle
//! mailbox claims it and spawns a run task, which handles system messages
//! first, then user messages, yielding every `throughput` messages, and exits
//! when the mailbox is empty. The actor and its context move into the task
//! while it runs, so they need no lock of their own.

use std::any::Any;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use parking_lot::Mutex;
use tracing::Instrument;

use crate::actor::Actor;
use crate::context::{Context, LifecycleState};
use crate::error::{ActorError, ActorResult, Error};
use crate::mailbox::Mailbox;
use crate::message::{
    Envelope, Failure, InternalKind, PoisonPill, ReceiveTimeout, Restarting, Started, Stopped, Stopping, SystemMessage,
    Terminated, TerminatedReason,
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
}

pub(crate) struct ActorProcess<A: Actor> {
    me: Weak<Self>,
    system: ActorSystem,
    mailbox: Mailbox,
    cell: Mutex<Option<Box<CellState<A>>>>,
    producer: Producer<A>,
    dead: AtomicBool,
    /// Address and id, kept once dead to dead-letter late arrivals (a `Pid`
    /// here would form a cycle through the pid's cache).
    tombstone: OnceLock<(Arc<str>, Box<str>)>,
}

pub(crate) fn spawn_actor<A: Actor>(
    system: &ActorSystem,
    props: &Props,
    id: String,
    parent: Option<Pid>,
    producer: Producer<A>,
) -> Result<Pid, Error> {
    let process = Arc::new_cyclic(|me| ActorProcess {
        me: me.clone(),
        system: system.clone(),
        mailbox: Mailbox::new_closed(props.mailbox()),
        cell: Mutex::new(None),
        producer,
        dead: AtomicBool::new(false),
        tombstone: OnceLock::new(),
    });
    let process_ref: ProcessRef = process.clone();
    if !system.registry().try_add(&id, process_ref.clone()) {
        return Err(Error::NameExists(id));
    }
    let pid = Pid::resolved(system.address(), id.into_boxed_str(), system.key(), process_ref);
    system.actor_started();
    let actor = (process.producer)();
    let ctx = Context::new(system.clone(), pid.clone(), parent, props.clone());
    *process.cell.lock() = Some(Box::new(CellState { actor, ctx, local: VecDeque::new() }));
    process.mailbox.push_system(SystemMessage::Started);
    process.mailbox.open();
    process.schedule();
    Ok(pid)
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
        self.schedule();
    }

    fn send_system_message(&self, pid: &Pid, message: SystemMessage) {
        if self.dead.load(Ordering::Acquire) {
            return self.system.dead_system_message(pid, message, TerminatedReason::Stopped);
        }
        self.mailbox.push_system(message);
        self.schedule();
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
    #[inline]
    fn schedule(&self) {
        if self.mailbox.try_schedule()
            && let Some(me) = self.me.upgrade()
        {
            self.system.spawn_task(me.run());
        }
    }

    async fn run(self: Arc<Self>) {
        let Some(mut cell) = self.cell.lock().take() else {
            self.drain_dead();
            return;
        };
        loop {
            if self.process(&mut cell).await {
                // Dropping the actor and its context breaks the pid <-> process cycles.
                drop(cell);
                self.drain_dead();
                return;
            }
            *self.cell.lock() = Some(cell);
            self.mailbox.set_idle();
            if !self.mailbox.has_runnable() || !self.mailbox.try_schedule() {
                return;
            }
            cell = match self.cell.lock().take() {
                Some(c) => c,
                None => return self.drain_dead(),
            };
        }
    }

    /// Handles messages until none may run now; true once the actor has stopped.
    async fn process(&self, cell: &mut CellState<A>) -> bool {
        let throughput = cell.ctx.props.throughput();
        let mut handled = 0usize;
        loop {
            if self.mailbox.has_system() {
                while let Some(message) = self.mailbox.pop_system() {
                    self.handle_system(cell, message).await;
                    if cell.ctx.state == LifecycleState::Stopped {
                        return true;
                    }
                }
            }
            if self.mailbox.is_suspended() {
                return false;
            }
            let envelope = match cell.local.pop_front() {
                Some(e) => e,
                None if self.mailbox.take_user(&mut cell.local) => continue,
                None => return false,
            };
            self.handle_user(cell, envelope).await;
            if cell.ctx.state == LifecycleState::Stopped {
                return true;
            }
            handled += 1;
            if handled >= throughput {
                handled = 0;
                tokio::task::yield_now().await;
            }
        }
    }

    /// Everything left once the actor is gone goes to dead letters; watches
    /// are answered with `Terminated`.
    fn drain_dead(&self) {
        let Some((address, id)) = self.tombstone.get() else { return };
        let pid = Pid::new(address.clone(), id.clone());
        loop {
            let (system, user) = self.mailbox.drain();
            for message in system {
                self.system.dead_system_message(&pid, message, TerminatedReason::Stopped);
            }
            for envelope in user {
                self.system.dead_letter(&pid, envelope);
            }
            self.mailbox.set_idle();
            if !self.mailbox.has_runnable() || !self.mailbox.try_schedule() {
                return;
            }
        }
    }

    async fn handle_user(&self, cell: &mut CellState<A>, envelope: Envelope) {
        if envelope.message_as::<PoisonPill>().is_some() {
            return self.begin_stop(cell).await;
        }
        if envelope.influences_receive_timeout()
            && let Some(extras) = cell.ctx.extras.as_mut()
            && let Some(rt) = extras.receive_timeout.as_mut()
        {
            rt.last = tokio::time::Instant::now();
            if !rt.armed {
                cell.ctx.arm_receive_timeout();
            }
        }
        self.invoke(cell, envelope).await;
    }

    /// Runs the actor (through middleware and behaviors) on `envelope`.
    async fn run_receive(&self, cell: &mut CellState<A>, envelope: Envelope) -> ActorResult {
        cell.ctx.envelope = Some(envelope);
        let CellState { actor, ctx, local } = cell;
        let span = tracing::trace_span!("receive", actor = %ctx.self_pid, message = ctx.message_type_name());
        let result = if ctx.props.inner().receiver_middleware.is_empty() {
            match ctx.current_behavior::<A>() {
                Some(behavior) => panic_to_error(std::panic::catch_unwind(AssertUnwindSafe(|| behavior(actor, ctx)))),
                None => panic_to_error(AssertUnwindSafe(actor.receive(ctx)).catch_unwind().instrument(span).await),
            }
        } else {
            let props = ctx.props.clone();
            let mut erased = Erased(actor);
            let next = ReceiveNext { rest: &props.inner().receiver_middleware, actor: &mut erased };
            panic_to_error(AssertUnwindSafe(next.run(ctx)).catch_unwind().instrument(span).await)
        };
        ctx.envelope = None;
        if ctx.unstash_requested {
            ctx.unstash_requested = false;
            if let Some(extras) = ctx.extras.as_mut() {
                for envelope in extras.stash.drain(..).rev() {
                    local.push_front(envelope);
                }
            }
        }
        result
    }

    /// Runs the actor and hands a failure to the supervisor.
    async fn invoke(&self, cell: &mut CellState<A>, envelope: Envelope) {
        let message_type = envelope.type_name();
        if let Err(reason) = self.run_receive(cell, envelope).await {
            self.escalate_failure(cell, reason, Some(message_type));
        }
    }

    /// Runs a lifecycle message whose failure cannot be supervised any more.
    async fn invoke_logged(&self, cell: &mut CellState<A>, envelope: Envelope) {
        let message_type = envelope.type_name();
        if let Err(reason) = self.run_receive(cell, envelope).await {
            tracing::warn!(actor = %cell.ctx.self_pid, message = message_type, %reason, "actor failed while stopping or restarting");
        }
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
                    let result = panic_to_error(std::panic::catch_unwind(AssertUnwindSafe(|| {
                        run(actor as &mut dyn Any, ctx)
                    })));
                    ctx.envelope = None;
                    if let Err(reason) = result {
                        self.escalate_failure(cell, reason, Some("reenter_after continuation"));
                    }
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
        let _ = self.tombstone.set((pid.address_arc().clone(), pid.id().into()));
        self.system.registry().remove(pid.id());
        self.dead.store(true, Ordering::Release);
        self.invoke_logged(cell, Envelope::new(Stopped)).await;
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
        self.system.actor_stopped();
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
