//! Lanes: where actors run.
//!
//! An actor's run loop is a small task of its own (one allocation, from
//! `async-task`), not a tokio task. A system has one lane per worker thread
//! of its runtime: a queue of actor tasks ready to run, drained by one tokio
//! task while there is work, and gone when there is none.
//!
//! - A new actor starts on a lane picked round-robin.
//! - An actor woken by an actor goes to the waker's lane, so actors that talk
//!   to each other end up on one thread, and it runs right after the waker
//!   (up to 16 in a row), while the message is still in the core's cache; one
//!   woken from elsewhere (a socket task, a `block_on` caller) goes back to
//!   the lane it started on.
//! - A lane with two or more actors waiting starts an idle lane, and an idle
//!   lane steals half of such a backlog, so the work spreads over the cores.
//!
//! Why not a tokio task per actor: on a multi-threaded runtime every spawn and
//! every wake-up of an actor may wake a parked worker to steal it (a futex call
//! and a context switch each). Spawning 200,000 actors cost about 20,000
//! context switches that way, about 1,000 with lanes: tokio sees only a few
//! lane tasks, and wakes a worker only when a lane goes from idle to busy.

use std::cell::Cell;
use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_task::{Runnable, ScheduleInfo, WithInfo};
use parking_lot::Mutex;
use tokio::runtime::Handle;

use crate::cell::{Incarnation, StartActor};

/// The lanes of one actor system.
pub(crate) struct Lanes(Arc<LaneSet>);

struct LaneSet {
    lanes: Box<[Lane]>,
    handle: Handle,
}

/// One lane of a system: what [`StartActor::start`] gets to place the task.
#[derive(Clone)]
pub(crate) struct LaneRef<'a> {
    set: &'a Arc<LaneSet>,
    index: usize,
}

impl Lanes {
    /// One lane per worker thread of `handle`'s runtime.
    pub(crate) fn new(handle: &Handle) -> Self {
        let count = handle.metrics().num_workers().max(1);
        Lanes(Arc::new(LaneSet { lanes: (0..count).map(|_| Lane::default()).collect(), handle: handle.clone() }))
    }

    /// Starts a new actor on a lane picked round-robin, counted per spawning
    /// thread so that spawns on different threads share no counter.
    pub(crate) fn start(&self, process: Arc<dyn StartActor>, incarnation: Incarnation) {
        thread_local! {
            static NEXT: Cell<usize> = const { Cell::new(0) };
        }
        let n = NEXT.with(|next| {
            let n = next.get();
            next.set(n.wrapping_add(1));
            n
        });
        self.0.push(n % self.0.lanes.len(), Item::Start(process, incarnation));
    }
}

/// Work for a lane.
enum Item {
    /// Make the actor and start its task (on the lane's thread, so the
    /// spawning thread only registers the process).
    Start(Arc<dyn StartActor>, Incarnation),
    /// Poll an actor's task that was woken.
    Run(Runnable),
}

/// `align(128)`: the queue lock is written by every thread that wakes one of
/// the lane's actors; it must not share a line with another lane's.
#[derive(Default)]
#[repr(align(128))]
struct Lane {
    queue: Mutex<VecDeque<Item>>,
    /// The queue's length as of its last change: idle lanes read it to decide
    /// whether to steal without taking the lock.
    waiting: AtomicUsize,
    /// A tokio task is draining the queue (or about to).
    scheduled: AtomicBool,
    /// Something was pushed from outside the runtime's tasks since the lane
    /// last looked: only then is lingering worth a busy worker.
    from_outside: AtomicBool,
}

/// Items a lane takes from its queue at once: the rest stay where an idle
/// lane can steal them, should one of these block the thread.
const TAKE: usize = 16;

/// Items a lane runs before it lets the worker run other tokio tasks.
const TURN: usize = 64;

/// A lane with this many items waiting starts an idle lane, which steals half.
const KICK: usize = 2;

/// How long a lane keeps polling an empty queue before its task ends, when
/// its work came from outside the runtime's tasks: about the time a
/// `block_on` caller takes to send its next request after a reply.
/// Without it every such request woke a parked worker (a futex call and a
/// context switch): 92-100k vs 79-87k asks/s in alternating fresh-process runs.
const LINGER: Duration = Duration::from_micros(30);

/// Actors a lane runs one after the other through its next slot before the
/// queue gets a turn (two actors passing a message back and forth would
/// otherwise keep the others waiting).
const CHAIN: usize = 16;

thread_local! {
    /// The lane running on this thread now, if any: (its set, its index).
    static CURRENT: Cell<(*const LaneSet, usize)> = const { Cell::new((std::ptr::null(), 0)) };
    /// The actor the running actor just woke on this lane: it runs next,
    /// while what it needs is still in this core's cache.
    static NEXT: Cell<Option<Runnable>> = const { Cell::new(None) };
}

impl LaneSet {
    /// Queues `item` on lane `index`, starting the lane's task if it is not
    /// running, and an idle lane if this one has a backlog.
    fn push(self: &Arc<Self>, index: usize, item: Item) {
        let lane = &self.lanes[index];
        let (first, waiting) = {
            if tokio::task::try_id().is_none() {
                lane.from_outside.store(true, Ordering::Relaxed);
            }
            let mut queue = lane.queue.lock();
            queue.push_back(item);
            lane.waiting.store(queue.len(), Ordering::Relaxed);
            (!lane.scheduled.swap(true, Ordering::AcqRel), queue.len())
        };
        if first {
            self.run_lane(index);
        } else if waiting >= KICK {
            self.kick_idle(index);
        }
    }

    /// Where a woken actor goes: to the lane that woke it, if it is one of
    /// this set's (actors that talk to each other end up together, and stay
    /// in that thread's cache), else to the lane it was started on.
    /// An actor that woke itself while running (yielding its turn) goes to
    /// the back of the queue; one woken by another actor of the lane runs next.
    fn schedule(self: &Arc<Self>, home: usize, runnable: Runnable, info: ScheduleInfo) {
        let (set, current) = CURRENT.with(Cell::get);
        if !std::ptr::eq(set, Arc::as_ptr(self)) {
            return self.push(home, Item::Run(runnable));
        }
        if info.woken_while_running {
            return self.push(current, Item::Run(runnable));
        }
        if let Some(earlier) = NEXT.with(|next| next.replace(Some(runnable))) {
            self.push(current, Item::Run(earlier));
        }
    }

    fn kick_idle(self: &Arc<Self>, busy: usize) {
        // Pairs with the fence of a lane that is ending (see `run`).
        std::sync::atomic::fence(Ordering::SeqCst);
        for (index, lane) in self.lanes.iter().enumerate() {
            if index != busy && !lane.scheduled.load(Ordering::Relaxed) && !lane.scheduled.swap(true, Ordering::AcqRel)
            {
                self.run_lane(index);
                if tokio::task::try_id().is_some() {
                    // Spawned from a worker, the new lane task sits in that
                    // worker's LIFO slot, which no other worker may steal and
                    // which runs only once the busy lane yields: the backlog
                    // would stay on one thread. A second (empty) task takes
                    // the slot and pushes the lane task onto the worker's
                    // queue, which wakes an idle worker to steal it.
                    self.handle.spawn(async {});
                }
                return;
            }
        }
    }

    fn run_lane(self: &Arc<Self>, index: usize) {
        let set = self.clone();
        // Unconstrained: actors yield by their own throughput budget, and
        // tokio's per-task budget would otherwise be shared by every actor
        // the lane runs in one poll.
        self.handle.spawn(tokio::task::unconstrained(async move { set.run(index).await }));
    }

    async fn run(self: Arc<Self>, index: usize) {
        let lane = &self.lanes[index];
        let mut batch: Vec<Item> = Vec::with_capacity(TAKE);
        let mut idle_since: Option<Instant> = None;
        let mut since_yield = 0;
        let mut linger = false;
        loop {
            {
                let mut queue = lane.queue.lock();
                let take = queue.len().min(TAKE);
                batch.extend(queue.drain(..take));
                lane.waiting.store(queue.len(), Ordering::Relaxed);
            }
            linger |= lane.from_outside.swap(false, Ordering::Relaxed);
            if batch.is_empty() && !self.steal(index, &mut batch) {
                let done = {
                    let mut queue = lane.queue.lock();
                    let since = *idle_since.get_or_insert_with(Instant::now);
                    let done = queue.is_empty() && (!linger || since.elapsed() >= LINGER);
                    if done {
                        if queue.capacity() > 4096 {
                            // Give back what a burst of spawns grew.
                            *queue = VecDeque::new();
                        }
                        // Under the lock: a push after this starts a new task.
                        lane.scheduled.store(false, Ordering::Release);
                    }
                    done
                };
                if done {
                    CURRENT.with(|current| current.set((std::ptr::null(), 0)));
                    // A busy lane that pushed while this one still looked
                    // scheduled did not start it: look again now that it does
                    // not (each side writes, fences, then reads the other's flag).
                    std::sync::atomic::fence(Ordering::SeqCst);
                    if !self.backlog_elsewhere(index) || lane.scheduled.swap(true, Ordering::AcqRel) {
                        return;
                    }
                    idle_since = None;
                    continue;
                }
                since_yield = 0;
                CURRENT.with(|current| current.set((std::ptr::null(), 0)));
                tokio::task::yield_now().await;
                continue;
            }
            idle_since = None;
            CURRENT.with(|current| current.set((Arc::as_ptr(&self), index)));
            for item in batch.drain(..) {
                self.run_item(index, item);
                since_yield += 1 + self.run_next(index);
            }
            if since_yield >= TURN {
                since_yield = 0;
                // The lane's task may move to another thread at the await.
                CURRENT.with(|current| current.set((std::ptr::null(), 0)));
                // Lets the worker's other tasks (sockets, timers) have a turn.
                tokio::task::yield_now().await;
            }
        }
    }

    fn backlog_elsewhere(&self, idle: usize) -> bool {
        self.lanes.iter().enumerate().any(|(index, lane)| index != idle && lane.waiting.load(Ordering::Relaxed) >= KICK)
    }

    /// Takes half the waiting items of a lane with a backlog (never a lone
    /// item: two actors passing one message back and forth would then hop
    /// between threads on every message).
    fn steal(&self, thief: usize, batch: &mut Vec<Item>) -> bool {
        for (index, lane) in self.lanes.iter().enumerate() {
            if index == thief {
                continue;
            }
            if lane.waiting.load(Ordering::Relaxed) < KICK {
                continue;
            }
            let Some(mut queue) = lane.queue.try_lock() else { continue };
            if queue.len() >= KICK {
                let take = (queue.len() / 2).min(TAKE);
                batch.extend(queue.drain(..take));
                lane.waiting.store(queue.len(), Ordering::Relaxed);
                return true;
            }
        }
        false
    }

    /// Runs what the last actor woke on this lane, and what that one woke, up
    /// to [`CHAIN`] in a row; then the next slot is emptied into the queue.
    /// Returns how many ran.
    fn run_next(self: &Arc<Self>, index: usize) -> usize {
        for ran in 0..CHAIN {
            match NEXT.with(Cell::take) {
                Some(runnable) => self.run_item(index, Item::Run(runnable)),
                None => return ran,
            }
        }
        if let Some(runnable) = NEXT.with(Cell::take) {
            self.push(index, Item::Run(runnable));
        }
        CHAIN
    }

    fn run_item(self: &Arc<Self>, index: usize, item: Item) {
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| match item {
            Item::Start(process, incarnation) => process.start(incarnation, LaneRef { set: self, index }),
            Item::Run(runnable) => {
                runnable.run();
            }
        }));
        if outcome.is_err() {
            // Receive panics are caught (and supervised) inside the actor's
            // task, and a failed start is handed to the supervisor by
            // `StartActor::start`: this is a bug in the runtime. The lane goes on.
            tracing::error!("an actor task panicked outside its receive; that actor is gone");
        }
    }
}

/// Starts `future` as a task whose home is `lane`, polling it once now.
pub(crate) fn spawn_on(lane: LaneRef<'_>, future: impl std::future::Future<Output = ()> + Send + 'static) {
    let (set, home) = (lane.set.clone(), lane.index);
    let schedule = WithInfo(move |runnable, info| set.schedule(home, runnable, info));
    let (runnable, task) = async_task::spawn(future, schedule);
    task.detach();
    runnable.run();
}

/// Lets the other actors of the lane run: the task goes to the back of its
/// lane's queue. (`tokio::task::yield_now` would wait for the lane's own
/// tokio task to yield.)
pub(crate) async fn yield_turn() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            return std::task::Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await
}
