//! Timers: send a message to an actor later, or repeatedly, until cancelled.

use std::time::Duration;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::task::AbortHandle;
use tokio::time::MissedTickBehavior;

use crate::message::{Envelope, Message};
use crate::pid::Pid;
use crate::system::ActorSystem;

/// Schedules messages; get one from [`ActorSystem::scheduler`].
#[derive(Debug, Clone)]
pub struct Scheduler {
    system: ActorSystem,
}

/// Cancels a scheduled send. Dropping the handle does not cancel it.
#[derive(Debug, Clone)]
pub struct TimerHandle {
    abort: AbortHandle,
    cancelled: Arc<AtomicBool>,
}

impl TimerHandle {
    /// Cancels the timer; nothing more is sent after this returns (a send
    /// already under way on another thread is checked against this flag).
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        self.abort.abort();
    }

    /// True once cancelled or (for one-shot timers) fired.
    pub fn is_finished(&self) -> bool {
        self.abort.is_finished()
    }
}

impl Scheduler {
    pub(crate) fn new(system: ActorSystem) -> Self {
        Scheduler { system }
    }

    /// Sends `message` to `target` once, after `delay`.
    pub fn send_once<M: Message>(&self, delay: Duration, target: &Pid, message: M) -> TimerHandle {
        self.once(delay, target.clone(), Envelope::new(message))
    }

    /// Sends `message` to `target` once, after `delay`, with `sender` as its sender.
    pub fn request_once<M: Message>(&self, delay: Duration, target: &Pid, message: M, sender: &Pid) -> TimerHandle {
        self.once(delay, target.clone(), Envelope::new(message).with_sender(Some(sender.clone())))
    }

    /// Sends a clone of `message` to `target` after `initial`, then every `interval`.
    pub fn send_repeatedly<M: Message + Clone>(
        &self,
        initial: Duration,
        interval: Duration,
        target: &Pid,
        message: M,
    ) -> TimerHandle {
        self.repeatedly(initial, interval, target.clone(), None, message)
    }

    /// Like [`send_repeatedly`](Self::send_repeatedly), with `sender` as the sender.
    pub fn request_repeatedly<M: Message + Clone>(
        &self,
        initial: Duration,
        interval: Duration,
        target: &Pid,
        message: M,
        sender: &Pid,
    ) -> TimerHandle {
        self.repeatedly(initial, interval, target.clone(), Some(sender.clone()), message)
    }

    fn once(&self, delay: Duration, target: Pid, envelope: Envelope) -> TimerHandle {
        let system = self.system.clone();
        let cancelled = Arc::new(AtomicBool::new(false));
        let flag = cancelled.clone();
        let task = self.system.spawn_task(async move {
            tokio::time::sleep(delay).await;
            if !flag.load(Ordering::SeqCst) {
                system.send_user_message(&target, envelope);
            }
        });
        TimerHandle { abort: task.abort_handle(), cancelled }
    }

    fn repeatedly<M: Message + Clone>(
        &self,
        initial: Duration,
        interval: Duration,
        target: Pid,
        sender: Option<Pid>,
        message: M,
    ) -> TimerHandle {
        let system = self.system.clone();
        let interval = interval.max(Duration::from_millis(1));
        let cancelled = Arc::new(AtomicBool::new(false));
        let flag = cancelled.clone();
        let task = self.system.spawn_task(async move {
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + initial, interval);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                if flag.load(Ordering::SeqCst) {
                    return;
                }
                system.send_user_message(&target, Envelope::new(message.clone()).with_sender(sender.clone()));
            }
        });
        TimerHandle { abort: task.abort_handle(), cancelled }
    }
}
