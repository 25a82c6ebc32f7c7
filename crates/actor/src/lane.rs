//! Lanes: where actors run.
//!
//! An actor's run loop is a small task of its own (one allocation, from
//! `async-task`), not a tokio task. Each actor belongs to one of the system's
//! lanes, one per worker thread of the runtime, chosen round-robin when it is
//! spawned. A lane is a queue of actor tasks ready to run, drained by one
//! tokio task while there is work, and gone when there is none.
//!
//! Why not a tokio task per actor: on a multi-threaded runtime every spawn and
//! every wake-up of an actor may wake a parked worker to steal it (a futex call
//! and a context switch each). Spawning 200,000 actors cost about 20,000
//! context switches that way; tokio now sees only a few long-lived lane tasks,
//! and wakes a worker only when a lane goes from idle to busy. Lane tasks still
//! move between workers like any tokio task, so the lanes spread over the
//! cores.

use std::cell::Cell;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_task::Runnable;
use parking_lot::Mutex;
use tokio::runtime::Handle;

use crate::cell::{Incarnation, StartActor};

/// The lanes of one actor system.
pub(crate) struct Lanes {
    lanes: Box<[Arc<Lane>]>,
}

impl Lanes {
    /// One lane per worker thread of `handle`'s runtime.
    pub(crate) fn new(handle: &Handle) -> Self {
        let count = handle.metrics().num_workers().max(1);
        Lanes { lanes: (0..count).map(|_| Arc::new(Lane::new(handle.clone()))).collect() }
    }

    /// The lane for a new actor: round-robin, counted per spawning thread so
    /// that spawns on different threads share no counter.
    pub(crate) fn pick(&self) -> &Arc<Lane> {
        thread_local! {
            static NEXT: Cell<usize> = const { Cell::new(0) };
        }
        let n = NEXT.with(|next| {
            let n = next.get();
            next.set(n.wrapping_add(1));
            n
        });
        &self.lanes[n % self.lanes.len()]
    }
}

/// Work for a lane.
pub(crate) enum Item {
    /// Make the actor and start its task (on the lane's thread, so the
    /// spawning thread only registers the process).
    Start(Arc<dyn StartActor>, Incarnation),
    /// Poll an actor's task that was woken.
    Run(Runnable),
}

/// `align(128)`: the queue lock is written by every thread that wakes one of
/// the lane's actors; it must not share a line with another lane's.
#[repr(align(128))]
pub(crate) struct Lane {
    queue: Mutex<Vec<Item>>,
    /// A tokio task is draining the queue (or about to).
    scheduled: AtomicBool,
    handle: Handle,
}

/// Items a lane runs before it lets the worker run other tokio tasks.
const TURN: usize = 64;

/// How long a lane keeps polling an empty queue before its task ends: about
/// the time a `block_on` caller takes to send its next request after a reply.
/// Without it every such request woke a parked worker (a futex call and a
/// context switch): 92-100k vs 79-87k asks/s in alternating fresh-process runs.
const LINGER: Duration = Duration::from_micros(30);

impl Lane {
    fn new(handle: Handle) -> Self {
        Lane { queue: Mutex::new(Vec::new()), scheduled: AtomicBool::new(false), handle }
    }

    /// Queues `item`, starting the lane's task if it is not running.
    pub(crate) fn push(self: &Arc<Self>, item: Item) {
        let first = {
            let mut queue = self.queue.lock();
            queue.push(item);
            !self.scheduled.swap(true, Ordering::AcqRel)
        };
        if first {
            let lane = self.clone();
            // Unconstrained: actors yield by their own throughput budget, and
            // tokio's per-task budget would otherwise be shared by every actor
            // the lane runs in one poll.
            self.handle.spawn(tokio::task::unconstrained(async move { lane.run().await }));
        }
    }

    async fn run(self: Arc<Self>) {
        let mut batch: Vec<Item> = Vec::new();
        let mut idle_since: Option<Instant> = None;
        loop {
            {
                let mut queue = self.queue.lock();
                if queue.is_empty() {
                    let since = *idle_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= LINGER {
                        // Under the lock: a push after this starts a new task.
                        self.scheduled.store(false, Ordering::Release);
                        return;
                    }
                } else {
                    // The queue keeps the drained buffer's capacity.
                    std::mem::swap(&mut *queue, &mut batch);
                }
            }
            if batch.is_empty() {
                tokio::task::yield_now().await;
                continue;
            }
            idle_since = None;
            let mut items = batch.drain(..);
            loop {
                let mut ran = 0;
                for item in items.by_ref() {
                    self.run_item(item);
                    ran += 1;
                    if ran == TURN {
                        break;
                    }
                }
                if ran < TURN {
                    break;
                }
                // Lets the worker's other tasks (sockets, timers) have a turn.
                tokio::task::yield_now().await;
            }
            drop(items);
        }
    }

    fn run_item(self: &Arc<Self>, item: Item) {
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| match item {
            Item::Start(process, incarnation) => process.start(incarnation, self),
            Item::Run(runnable) => {
                runnable.run();
            }
        }));
        if outcome.is_err() {
            // Receive panics are caught (and supervised) inside the actor's
            // task; this is a bug in the runtime. The lane goes on.
            tracing::error!("an actor task panicked outside its receive; that actor is gone");
        }
    }
}

/// Starts `future` as a task of `lane`, polling it once now.
pub(crate) fn spawn_on(lane: &Arc<Lane>, future: impl std::future::Future<Output = ()> + Send + 'static) {
    let home = lane.clone();
    let (runnable, task) = async_task::spawn(future, move |runnable| home.push(Item::Run(runnable)));
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
