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
//! - A transport's reader task that delivers a lone message (a remote
//!   request) runs the actor it wakes itself, through [`deliver_inline`],
//!   instead of starting a lane task: a request's chain of wake-ups then
//!   stays within the three that tokio runs in a row on one worker.
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
    /// Set while [`deliver_inline`] runs its delivery on this thread.
    static ARMED: Cell<bool> = const { Cell::new(false) };
    /// The lane that delivery would have started as a new task.
    static DEFERRED: Cell<Option<(Arc<LaneSet>, usize)>> = const { Cell::new(None) };
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
            if !self.defer_start(index) {
                self.run_lane(index);
            }
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

    /// Keeps the start of lane `index` for [`deliver_inline`] to run, if it
    /// is armed on this thread and holds no lane yet.
    fn defer_start(self: &Arc<Self>, index: usize) -> bool {
        if !ARMED.with(Cell::get) {
            return false;
        }
        DEFERRED.with(|slot| {
            let held = slot.take();
            let free = held.is_none();
            slot.set(held.or_else(|| Some((self.clone(), index))));
            free
        })
    }

    /// One pass of a lane on the calling task (see [`deliver_inline`]): up
    /// to [`TAKE`] items, then the lane ends as [`run`](Self::run) ends, or
    /// its remaining items go to a task of its own.
    fn run_inline(self: &Arc<Self>, index: usize) {
        let lane = &self.lanes[index];
        CURRENT.with(|current| current.set((Arc::as_ptr(self), index)));
        let mut ran = 0;
        while ran < TAKE {
            let item = {
                let mut queue = lane.queue.lock();
                let item = queue.pop_front();
                lane.waiting.store(queue.len(), Ordering::Relaxed);
                item
            };
            let Some(item) = item else { break };
            self.run_item(index, item);
            ran += 1 + self.run_next(index);
        }
        CURRENT.with(|current| current.set((std::ptr::null(), 0)));
        let done = {
            let queue = lane.queue.lock();
            let done = queue.is_empty();
            if done {
                // Under the lock: a push after this starts a new task.
                lane.scheduled.store(false, Ordering::Release);
            }
            done
        };
        if !done {
            return self.run_lane(index);
        }
        // The same recheck as an ending lane task's (see `run`).
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.backlog_elsewhere(index) && !lane.scheduled.swap(true, Ordering::AcqRel) {
            self.run_lane(index);
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

/// Runs `deliver`, which hands messages to actors, then runs the actors it
/// woke on the calling task, instead of starting a lane task for them.
///
/// For a transport's reader task delivering a lone message (a remote
/// request): a new lane task is one more hop in the request's chain of
/// wake-ups (socket, reader, lane, response writer, socket), and tokio runs
/// at most three such hops in a row on one worker before it hands the next to
/// another worker (a futex wake-up, the data in the other core's cache).
/// At most one lane runs here, for one pass of at most 16 actor turns; any
/// other lane, or what remains, gets its task as usual. Outside a tokio
/// task, or on a lane, it only runs `deliver`.
pub fn deliver_inline<R>(deliver: impl FnOnce() -> R) -> R {
    if tokio::task::try_id().is_none() || !CURRENT.with(Cell::get).0.is_null() || ARMED.with(Cell::get) {
        return deliver();
    }
    /// Disarms even if `deliver` panics (a kept lane then gets its task).
    struct Armed;
    impl Drop for Armed {
        fn drop(&mut self) {
            ARMED.with(|armed| armed.set(false));
            if let Some((set, index)) = DEFERRED.with(Cell::take) {
                set.run_lane(index);
            }
        }
    }
    ARMED.with(|armed| armed.set(true));
    let guard = Armed;
    let result = deliver();
    ARMED.with(|armed| armed.set(false));
    let deferred = DEFERRED.with(Cell::take);
    drop(guard);
    if let Some((set, index)) = deferred {
        set.run_inline(index);
    }
    result
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

/// An exhaustive-interleaving model of the lane protocol: the queue lock,
/// the `scheduled` flag, the ending lane's recheck, kicking an idle lane,
/// stealing half a backlog, and the next slot. Each step below is one
/// atomic section of the code above (a locked region, or an atomic with its
/// fence); every interleaving of pushers and lane tasks is explored, and in
/// each one every item must run exactly once, no lane may be drained by two
/// tasks at once, and nothing may be left queued with no task to run it.
#[cfg(test)]
mod model {
    use super::{CHAIN, KICK, TAKE};
    use std::collections::HashSet;

    #[derive(Clone, Hash, PartialEq, Eq, Debug)]
    enum Pc {
        /// Take up to TAKE items from the own queue.
        Take,
        /// Steal half of another lane's backlog, or go idle.
        Steal,
        /// Under the lock: end if the queue is empty (`scheduled = false`).
        Idle,
        /// After the fence: look for a backlog elsewhere, restart if unclaimed.
        Recheck,
        /// Run the batch (and the next slot), pushing what items wake.
        Run,
        Exited,
    }

    #[derive(Clone, Hash, PartialEq, Eq, Debug)]
    struct Task {
        lane: usize,
        pc: Pc,
        batch: Vec<u8>,
        next: Option<u8>,
        chained: usize,
        /// Pushes an item made while running, still to be carried out.
        pushes: Vec<Push>,
    }

    #[derive(Clone, Hash, PartialEq, Eq, Debug)]
    struct Push {
        lane: usize,
        item: u8,
        /// After the locked push: start the lane's task, or kick an idle one.
        after: Option<After>,
    }

    #[derive(Clone, Copy, Hash, PartialEq, Eq, Debug)]
    enum After {
        Start,
        Kick,
    }

    #[derive(Clone, Hash, PartialEq, Eq, Debug)]
    struct State {
        queues: Vec<Vec<u8>>,
        waiting: Vec<usize>,
        scheduled: Vec<bool>,
        tasks: Vec<Task>,
        /// External pushers (a socket task waking an actor).
        pushers: Vec<Push>,
        started_pushers: Vec<bool>,
        ran: Vec<u8>,
    }

    /// What running `item` wakes (actors it sends to), in order.
    type Wakes = fn(u8) -> Vec<u8>;

    fn new_task(lane: usize) -> Task {
        Task { lane, pc: Pc::Take, batch: Vec::new(), next: None, chained: 0, pushes: Vec::new() }
    }

    /// The locked half of `LaneSet::push`.
    fn push_locked(s: &mut State, p: &mut Push) {
        let q = &mut s.queues[p.lane];
        q.push(p.item);
        s.waiting[p.lane] = q.len();
        let first = !std::mem::replace(&mut s.scheduled[p.lane], true);
        p.after = if first {
            Some(After::Start)
        } else if q.len() >= KICK {
            Some(After::Kick)
        } else {
            None
        };
    }

    /// `kick_idle` (fence, then claim the first idle lane), or starting the task.
    fn push_after(s: &mut State, p: &Push) {
        match p.after {
            Some(After::Start) => s.tasks.push(new_task(p.lane)),
            Some(After::Kick) => {
                for lane in 0..s.queues.len() {
                    if lane != p.lane && !s.scheduled[lane] {
                        s.scheduled[lane] = true;
                        s.tasks.push(new_task(lane));
                        return;
                    }
                }
            }
            None => {}
        }
    }

    fn run_item(s: &mut State, t: &mut Task, item: u8, wakes: Wakes) {
        s.ran[item as usize] += 1;
        assert!(s.ran[item as usize] == 1, "item {item} ran twice: {s:?}");
        for woken in wakes(item) {
            // `schedule`: woken by an actor of this lane, it takes the next
            // slot; the one there before goes to the back of the queue.
            if let Some(earlier) = t.next.replace(woken) {
                t.pushes.push(Push { lane: t.lane, item: earlier, after: None });
            }
        }
    }

    /// Every state reachable in one step from `s`.
    fn successors(s: &State, wakes: Wakes) -> Vec<State> {
        let mut out = Vec::new();
        for i in 0..s.pushers.len() {
            let mut n = s.clone();
            if !s.started_pushers[i] {
                n.started_pushers[i] = true;
                let mut p = n.pushers[i].clone();
                push_locked(&mut n, &mut p);
                n.pushers[i] = p;
                out.push(n);
            } else if n.pushers[i].after.is_some() {
                let p = n.pushers[i].clone();
                push_after(&mut n, &p);
                n.pushers[i].after = None;
                out.push(n);
            }
        }
        for i in 0..s.tasks.len() {
            if s.tasks[i].pc == Pc::Exited {
                continue;
            }
            let mut n = s.clone();
            let mut t = n.tasks[i].clone();
            let lane = t.lane;
            match t.pc {
                Pc::Run if !t.pushes.is_empty() => {
                    // One push at a time: its locked part, then what follows it.
                    let p = &mut t.pushes[0];
                    if p.after.is_none() {
                        push_locked(&mut n, p);
                        if p.after.is_none() {
                            t.pushes.remove(0);
                        }
                    } else {
                        let p = t.pushes.remove(0);
                        push_after(&mut n, &p);
                    }
                }
                Pc::Run => {
                    // `run_next`: the next slot first, up to CHAIN in a row,
                    // then what is left there goes to the queue.
                    if let Some(item) = t.next.take() {
                        if t.chained < CHAIN {
                            t.chained += 1;
                            run_item(&mut n, &mut t, item, wakes);
                        } else {
                            t.pushes.push(Push { lane, item, after: None });
                        }
                    } else if !t.batch.is_empty() {
                        t.chained = 0;
                        let item = t.batch.remove(0);
                        run_item(&mut n, &mut t, item, wakes);
                    } else {
                        t.pc = Pc::Take;
                    }
                }
                Pc::Take => {
                    let q = &mut n.queues[lane];
                    let take = q.len().min(TAKE);
                    t.batch.extend(q.drain(..take));
                    n.waiting[lane] = q.len();
                    t.pc = if t.batch.is_empty() { Pc::Steal } else { Pc::Run };
                }
                Pc::Steal => {
                    t.pc = Pc::Idle;
                    for other in 0..n.queues.len() {
                        if other != lane && n.waiting[other] >= KICK && n.queues[other].len() >= KICK {
                            let q = &mut n.queues[other];
                            let take = (q.len() / 2).min(TAKE);
                            t.batch.extend(q.drain(..take));
                            n.waiting[other] = q.len();
                            t.pc = Pc::Run;
                            break;
                        }
                    }
                }
                Pc::Idle => {
                    if n.queues[lane].is_empty() {
                        n.scheduled[lane] = false;
                        t.pc = Pc::Recheck;
                    } else {
                        t.pc = Pc::Take;
                    }
                }
                Pc::Recheck => {
                    let backlog = (0..n.queues.len()).any(|l| l != lane && n.waiting[l] >= KICK);
                    t.pc =
                        if !backlog || std::mem::replace(&mut n.scheduled[lane], true) { Pc::Exited } else { Pc::Take };
                }
                Pc::Exited => unreachable!(),
            }
            n.tasks[i] = t;
            out.push(n);
        }
        out
    }

    /// No two live tasks of one lane are past `Take` and before `Idle` ends.
    fn check_exclusive(s: &State) {
        for lane in 0..s.queues.len() {
            let draining =
                s.tasks.iter().filter(|t| t.lane == lane && matches!(t.pc, Pc::Take | Pc::Steal | Pc::Idle)).count();
            assert!(draining <= 1, "lane {lane} drained by {draining} tasks: {s:?}");
        }
    }

    /// Explores every interleaving; returns how many states were seen.
    fn explore(lanes: usize, pushes: &[(usize, u8)], items: usize, wakes: Wakes) -> usize {
        let start = State {
            queues: vec![Vec::new(); lanes],
            waiting: vec![0; lanes],
            scheduled: vec![false; lanes],
            tasks: Vec::new(),
            pushers: pushes.iter().map(|&(lane, item)| Push { lane, item, after: None }).collect(),
            started_pushers: vec![false; pushes.len()],
            ran: vec![0; items],
        };
        let mut seen = HashSet::new();
        let mut stack = vec![start];
        while let Some(s) = stack.pop() {
            if !seen.insert(s.clone()) {
                continue;
            }
            check_exclusive(&s);
            let next = successors(&s, wakes);
            if next.is_empty() {
                // Quiescent: every pusher done, every task ended.
                assert!(s.ran.iter().all(|&n| n == 1), "an item never ran (a lost wake-up): {s:?}");
                assert!(s.queues.iter().all(Vec::is_empty), "items left queued with no task: {s:?}");
            }
            stack.extend(next);
        }
        seen.len()
    }

    #[test]
    fn two_lanes_three_wakes_and_a_chain_lose_nothing_in_any_interleaving() {
        // Item 0 wakes 3 and 4 (3 is bumped from the next slot to the queue,
        // 4 runs next); 1 and 2 are woken from outside, on both lanes.
        fn wakes(item: u8) -> Vec<u8> {
            if item == 0 { vec![3, 4] } else { vec![] }
        }
        let states = explore(2, &[(0, 0), (0, 1), (1, 2)], 5, wakes);
        assert!(states > 1_000, "the model explored only {states} states");
    }

    #[test]
    fn a_backlog_is_stolen_or_run_but_never_lost_or_run_twice() {
        // Three wakes on lane 0: the backlog kicks lane 1, which steals.
        fn wakes(item: u8) -> Vec<u8> {
            if item == 1 { vec![4] } else { vec![] }
        }
        let states = explore(2, &[(0, 0), (0, 1), (0, 2), (0, 3)], 5, wakes);
        assert!(states > 1_000, "the model explored only {states} states");
    }
}

/// Actors on lanes passing messages back and forth, small enough to run
/// under Miri (`.ci/run` does): the lane queues, the next slot, the task
/// allocation of `async-task` and the inline storage of messages together.
#[cfg(test)]
mod exchange {
    #![allow(clippy::unwrap_used)]
    use crate::prelude::*;
    use std::time::Duration;

    struct Counter {
        peer: Option<Pid>,
        left: u32,
        reply_to: Option<Pid>,
    }
    struct Start(Pid, u32);
    struct Ball(u32, String);

    impl Actor for Counter {
        async fn receive(&mut self, ctx: &mut Context) -> ActorResult {
            if let Some(Start(peer, n)) = ctx.message::<Start>() {
                let peer = peer.clone();
                self.left = *n;
                self.reply_to = ctx.sender().cloned();
                ctx.request(&peer, Ball(0, "serve".into()));
                self.peer = Some(peer);
            } else if let Some(Ball(n, text)) = ctx.message::<Ball>() {
                let (n, text) = (*n, text.clone());
                match self.peer.clone() {
                    // The server counts the returns and ends the rally.
                    Some(peer) => {
                        self.left -= 1;
                        if self.left == 0 {
                            if let Some(to) = self.reply_to.take() {
                                ctx.send(&to, n);
                            }
                        } else {
                            ctx.request(&peer, Ball(n + 1, text));
                        }
                    }
                    // The other side returns it.
                    None => ctx.respond(Ball(n + 1, text)),
                }
            }
            Ok(())
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn actors_on_lanes_exchange_messages() {
        let system = ActorSystem::new();
        let props = || Props::from_producer(|| Counter { peer: None, left: 0, reply_to: None });
        let a = system.root().spawn(props());
        let b = system.root().spawn(props());
        // Generous: under Miri this runs a thousand times slower; it only guards against a hang.
        let last: u32 = system.root().request_future(&a, Start(b, 20), Duration::from_secs(600)).await.unwrap();
        assert_eq!(last, 39, "twenty round trips, each hit counted");
        system.shutdown().await;
    }
}

#[cfg(test)]
mod inline {
    #![allow(clippy::unwrap_used)]
    use super::deliver_inline;
    use crate::prelude::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::{Duration, Instant};

    struct Counts(Arc<AtomicU32>);
    struct Hit;

    impl Actor for Counts {
        async fn receive(&mut self, ctx: &mut Context) -> ActorResult {
            if ctx.message_is::<Hit>() {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
            Ok(())
        }
    }

    fn counter(system: &ActorSystem) -> (Pid, Arc<AtomicU32>) {
        let seen = Arc::new(AtomicU32::new(0));
        let s = seen.clone();
        (system.root().spawn(Props::from_producer(move || Counts(s.clone()))), seen)
    }

    async fn until(seen: &AtomicU32, n: u32) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while seen.load(Ordering::SeqCst) < n {
            assert!(Instant::now() < deadline, "the actor never handled message {n}");
            tokio::task::yield_now().await;
        }
    }

    /// As a transport's reader does: from a task of the runtime (a test's
    /// own body runs in `block_on`, outside any task, where it only
    /// delivers). The actor is spawned from the task too: work pushed from
    /// outside the runtime's tasks makes its lane linger for more.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lone_message_to_an_idle_actor_is_handled_before_deliver_inline_returns() {
        let system = ActorSystem::new();
        let root = system.root();
        let system2 = system.clone();
        tokio::spawn(async move {
            let (pid, seen) = counter(&system2);
            // A delivery that finds the actor's lane still ending its task
            // (the other worker may run it) is left to that task; nearly all
            // find the actor idle and run it here. Without inline delivery
            // none would be handled before the call returned (the actor would
            // wait for a lane task, which runs after this task yields).
            let (mut sent, mut in_place) = (0, 0);
            for _ in 0..1_000 {
                sent += 1;
                deliver_inline(|| root.send(&pid, Hit));
                if seen.load(Ordering::SeqCst) == sent {
                    in_place += 1;
                } else {
                    until(&seen, sent).await;
                }
            }
            assert!(in_place >= 900, "only {in_place} of 1000 lone messages were handled in place");
        })
        .await
        .unwrap();
        system.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_delivery_that_panics_leaves_the_actor_to_its_lane_and_disarms() {
        let system = ActorSystem::new();
        let (pid, seen) = counter(&system);
        let root = system.root();
        tokio::spawn(async move {
            let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                deliver_inline(|| {
                    root.send(&pid, Hit);
                    panic!("the transport failed mid-delivery");
                })
            }));
            assert!(panicked.is_err());
            until(&seen, 1).await;
            // Disarmed: the next delivery is handled in place again.
            deliver_inline(|| root.send(&pid, Hit));
            until(&seen, 2).await;
        })
        .await
        .unwrap();
        system.shutdown().await;
    }

    #[test]
    fn outside_a_tokio_task_it_only_delivers() {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let system = runtime.block_on(async { ActorSystem::new() });
        let (pid, seen) = runtime.block_on(async { counter(&system) });
        let returned = deliver_inline(|| {
            system.root().send(&pid, Hit);
            7
        });
        assert_eq!(returned, 7);
        runtime.block_on(until(&seen, 1));
        runtime.block_on(system.shutdown());
    }
}
