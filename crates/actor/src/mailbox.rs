//! Mailboxes: a system queue that always goes first, and a user queue that is
//! unbounded or bounded with an overflow policy.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};

use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;
use parking_lot::Mutex;

use crate::message::{Envelope, SystemMessage};

/// How many user messages a mailbox holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MailboxKind {
    /// No limit (the default).
    #[default]
    Unbounded,
    /// At most `capacity` pending user messages; `overflow` says which one
    /// goes to dead letters when a message arrives at a full mailbox.
    Bounded {
        /// Maximum pending user messages (at least 1).
        capacity: usize,
        /// What to drop on overflow.
        overflow: OverflowPolicy,
    },
}

impl MailboxKind {
    /// A bounded mailbox.
    pub fn bounded(capacity: usize, overflow: OverflowPolicy) -> Self {
        MailboxKind::Bounded { capacity: capacity.max(1), overflow }
    }
}

/// Which message a full bounded mailbox gives up (to dead letters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverflowPolicy {
    /// Refuse the arriving message.
    DropNewest,
    /// Make room by dropping the oldest pending message.
    DropOldest,
}

const IDLE: u8 = 0;
const SCHEDULED: u8 = 1;
const DEAD: u8 = 2;

struct Bound {
    capacity: usize,
    overflow: OverflowPolicy,
    len: AtomicUsize,
}

/// Most mailboxes hold one message at a time; the default first growth (four
/// slots) would make every actor that ever received a message pay for three
/// empty ones.
#[inline]
fn reserve_first<T>(queue: &mut VecDeque<T>) {
    if queue.capacity() == 0 {
        queue.reserve_exact(1);
    }
}

/// The queues of one actor. Producers push under a short lock; the single
/// consumer (the actor's run task) takes whole batches from the unbounded
/// queue at once, so a busy actor pays one lock per batch, not per message.
///
/// `repr(C)` keeps the user queue, which producers write on every send, at
/// least a cache line away from the flags the consumer reads before every
/// message: sharing a line made each send wait for the line to come back
/// from the consumer's core (the lock's two atomics were ~70% of a send).
#[repr(C)]
pub(crate) struct Mailbox {
    user: Mutex<VecDeque<Envelope>>,
    bound: Option<Box<Bound>>,
    system: Mutex<VecDeque<SystemMessage>>,
    /// Wakes the actor's parked run task when a producer claims the mailbox.
    waker: AtomicWaker,
    status: AtomicU8,
    suspended: AtomicBool,
    has_system: AtomicBool,
}

impl Mailbox {
    /// A mailbox that cannot be scheduled until [`open`](Self::open) is called.
    pub(crate) fn new_closed(kind: MailboxKind) -> Self {
        let bound = match kind {
            MailboxKind::Unbounded => None,
            MailboxKind::Bounded { capacity, overflow } => {
                Some(Box::new(Bound { capacity: capacity.max(1), overflow, len: AtomicUsize::new(0) }))
            }
        };
        Mailbox {
            status: AtomicU8::new(SCHEDULED),
            waker: AtomicWaker::new(),
            suspended: AtomicBool::new(false),
            has_system: AtomicBool::new(false),
            system: Mutex::new(VecDeque::new()),
            user: Mutex::new(VecDeque::new()),
            bound,
        }
    }

    /// Queues a user message. A full bounded mailbox hands back the message
    /// that must go to dead letters (the arriving one or the oldest).
    #[inline]
    pub(crate) fn push_user(&self, envelope: Envelope) -> Option<Envelope> {
        match &self.bound {
            None => {
                let mut queue = self.user.lock();
                reserve_first(&mut queue);
                queue.push_back(envelope);
                None
            }
            Some(bound) => {
                let mut queue = self.user.lock();
                if bound.len.load(Ordering::Acquire) >= bound.capacity {
                    match bound.overflow {
                        OverflowPolicy::DropNewest => return Some(envelope),
                        OverflowPolicy::DropOldest => {
                            if let Some(oldest) = queue.pop_front() {
                                queue.push_back(envelope);
                                return Some(oldest);
                            }
                            return Some(envelope);
                        }
                    }
                }
                bound.len.fetch_add(1, Ordering::AcqRel);
                reserve_first(&mut queue);
                queue.push_back(envelope);
                None
            }
        }
    }

    /// Pushes every envelope of `envelopes` under one lock; those a bounded
    /// mailbox drops go to `dropped`.
    pub(crate) fn push_user_many(&self, envelopes: &mut Vec<Envelope>, mut dropped: impl FnMut(Envelope)) {
        if self.bound.is_none() {
            let mut queue = self.user.lock();
            queue.extend(envelopes.drain(..));
            return;
        }
        let mut rejected = Vec::new();
        for envelope in envelopes.drain(..) {
            if let Some(d) = self.push_user(envelope) {
                rejected.push(d);
            }
        }
        rejected.into_iter().for_each(&mut dropped);
    }

    pub(crate) fn push_system(&self, message: SystemMessage) {
        let mut queue = self.system.lock();
        reserve_first(&mut queue);
        queue.push_back(message);
        self.has_system.store(true, Ordering::Release);
    }

    #[inline]
    pub(crate) fn has_system(&self) -> bool {
        self.has_system.load(Ordering::Acquire)
    }

    pub(crate) fn pop_system(&self) -> Option<SystemMessage> {
        let mut queue = self.system.lock();
        let message = queue.pop_front();
        if queue.is_empty() {
            self.has_system.store(false, Ordering::Release);
            // System messages are rare; an idle actor should not keep a buffer for them.
            *queue = VecDeque::new();
        }
        message
    }

    /// Moves pending user messages into the consumer's buffer; false if none.
    /// Bounded mailboxes hand over one message at a time so the bound stays exact.
    #[inline]
    pub(crate) fn take_user(&self, local: &mut VecDeque<Envelope>) -> bool {
        let mut queue = self.user.lock();
        if queue.is_empty() {
            return false;
        }
        match &self.bound {
            None => std::mem::swap(&mut *queue, local),
            Some(bound) => {
                if let Some(e) = queue.pop_front() {
                    bound.len.fetch_sub(1, Ordering::AcqRel);
                    local.push_back(e);
                }
            }
        }
        true
    }

    /// Everything still queued, for dead letters once the actor is gone.
    pub(crate) fn drain(&self) -> (Vec<SystemMessage>, Vec<Envelope>) {
        let system: Vec<_> = {
            let mut q = self.system.lock();
            self.has_system.store(false, Ordering::Release);
            q.drain(..).collect()
        };
        let user: Vec<_> = {
            let mut q = self.user.lock();
            if let Some(bound) = &self.bound {
                bound.len.store(0, Ordering::Release);
            }
            std::mem::take(&mut *q).into()
        };
        (system, user)
    }

    pub(crate) fn suspend(&self) {
        self.suspended.store(true, Ordering::Release);
    }

    pub(crate) fn resume(&self) {
        self.suspended.store(false, Ordering::Release);
    }

    #[inline]
    pub(crate) fn is_suspended(&self) -> bool {
        self.suspended.load(Ordering::Acquire)
    }

    /// Whether the consumer has something it may process now.
    /// Takes the queue locks (not just the flags) so that, paired with the
    /// producers' locks, no push can slip between `set_idle` and this check.
    pub(crate) fn has_runnable(&self) -> bool {
        !self.system.lock().is_empty() || (!self.is_suspended() && !self.user.lock().is_empty())
    }

    /// Claims the right to run the consumer; true if this call claimed it.
    #[inline]
    pub(crate) fn try_schedule(&self) -> bool {
        self.status.load(Ordering::Acquire) == IDLE
            && self.status.compare_exchange(IDLE, SCHEDULED, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    /// After a push: claims the mailbox if it was idle and hands back the
    /// parked consumer's waker for the caller to wake ([`Notified::Claimed`]);
    /// [`Notified::Dead`] means the consumer is gone for good and the caller
    /// must drain what it pushed.
    #[inline]
    pub(crate) fn notify(&self) -> Notified {
        match self.status.load(Ordering::SeqCst) {
            IDLE => {
                if self.status.compare_exchange(IDLE, SCHEDULED, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                    // None: the consumer has not parked yet and sees the claim itself.
                    Notified::Claimed(self.waker.take())
                } else if self.status.load(Ordering::SeqCst) == DEAD {
                    Notified::Dead
                } else {
                    Notified::Running
                }
            }
            DEAD => Notified::Dead,
            _ => Notified::Running,
        }
    }

    /// Releases the run right. The consumer must then check
    /// [`has_runnable`](Self::has_runnable) and try to claim again, or a
    /// message pushed meanwhile could wait forever.
    pub(crate) fn set_idle(&self) {
        self.status.store(IDLE, Ordering::SeqCst);
    }

    /// The consumer is gone; later pushes are drained by their producers.
    pub(crate) fn set_dead(&self) {
        self.status.store(DEAD, Ordering::SeqCst);
    }

    /// Ready once a producer has claimed the mailbox for the (parked) consumer.
    pub(crate) fn poll_claimed(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.status.load(Ordering::Acquire) == SCHEDULED {
            return Poll::Ready(());
        }
        self.waker.register(cx.waker());
        // A claim between the check above and the registration woke nobody.
        if self.status.load(Ordering::Acquire) == SCHEDULED { Poll::Ready(()) } else { Poll::Pending }
    }
}

/// What a producer must do after pushing (see [`Mailbox::notify`]).
pub(crate) enum Notified {
    /// The mailbox was idle and is now claimed: wake the consumer.
    Claimed(Option<std::task::Waker>),
    /// The consumer is running (or about to) and will see the message.
    Running,
    /// The consumer is gone: drain the mailbox to dead letters.
    Dead,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_queue_and_the_consumer_flags_never_share_a_cache_line() {
        let user_end = std::mem::offset_of!(Mailbox, user) + std::mem::size_of::<Mutex<VecDeque<Envelope>>>();
        let flags = std::mem::offset_of!(Mailbox, status)
            .min(std::mem::offset_of!(Mailbox, suspended))
            .min(std::mem::offset_of!(Mailbox, has_system));
        assert!(flags >= user_end + 64, "user queue ends at {user_end}, flags start at {flags}");
    }
}
