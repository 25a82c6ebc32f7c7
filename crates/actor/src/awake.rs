//! A short busy wait for replies awaited outside the runtime's tasks.
//!
//! A request awaited in `block_on` (the body of `#[tokio::main]`, a test's
//! `main`) parks its thread until the worker that receives the reply wakes
//! it. On a machine whose idle cores halt (a KVM guest without halt polling,
//! a laptop in a deep C-state), each wake of a halted core costs tens of
//! microseconds, and a remote round trip is a chain of such wakes. A waiter
//! that stays runnable for a short while keeps its core out of halt and
//! needs no wake when the reply lands: between two processes on a 2-core VM
//! the round trip went from about 80 to about 45 µs.
//!
//! The wait is bounded by [`ActorSystemConfig::with_request_spin`] and backs
//! off: a thread whose replies keep arriving after the bound skips the busy
//! wait for the next 2, 4, ... up to 64 requests before it tries again, so a
//! slow peer costs at most the bound once per 64 requests. It never runs
//! where it could delay the reply: not inside a tokio task (an actor, a
//! spawned task: that would hold up its worker), not on a current-thread
//! runtime (the reply needs this very thread) and not on a single core.
//! Between checks it yields the core to any other runnable thread.
//!
//! [`ActorSystemConfig::with_request_spin`]: crate::ActorSystemConfig::with_request_spin

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::runtime::{Handle, RuntimeFlavor};

/// How many requests after a miss are waited for without spinning, as a
/// power of two (2, 4, ... 64).
const MAX_BACKOFF_SHIFT: u32 = 6;

/// Checks of the flag between two yields of the core.
const CHECKS_PER_YIELD: u32 = 64;

thread_local! {
    static BACKOFF: Cell<Backoff> = const { Cell::new(Backoff { misses: 0, skip: 0 }) };
}

/// The per-thread memory of how busy waits have been going.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Backoff {
    /// Busy waits in a row that ended without the reply.
    misses: u32,
    /// Waits still to be done without spinning.
    skip: u32,
}

impl Backoff {
    /// Whether this wait may spin (and counts a skipped one).
    fn admit(&mut self) -> bool {
        if self.skip > 0 {
            self.skip -= 1;
            return false;
        }
        true
    }

    fn hit(&mut self) {
        self.misses = 0;
    }

    fn miss(&mut self) {
        self.misses = (self.misses + 1).min(MAX_BACKOFF_SHIFT);
        self.skip = 1 << self.misses;
    }
}

fn with_backoff<T>(f: impl FnOnce(&mut Backoff) -> T) -> T {
    BACKOFF.with(|cell| {
        let mut state = cell.get();
        let out = f(&mut state);
        cell.set(state);
        out
    })
}

/// Whether the calling thread may busy-wait for a reply produced by a
/// system whose runtime is (`system_multi_thread`) multi-threaded.
fn may_spin(system_multi_thread: bool) -> bool {
    static MULTI_CORE: OnceLock<bool> = OnceLock::new();
    if !system_multi_thread || tokio::task::try_id().is_some() {
        return false;
    }
    if Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::CurrentThread) {
        return false;
    }
    *MULTI_CORE.get_or_init(|| std::thread::available_parallelism().is_ok_and(|n| n.get() > 1))
}

/// Polls `inner`; if it is pending and the thread may spin, keeps polling
/// each time `done` turns true, for up to `bound`, before reporting pending.
pub(crate) fn poll_awake<F: Future + ?Sized>(
    mut inner: Pin<&mut F>,
    cx: &mut Context<'_>,
    done: &AtomicBool,
    bound: Duration,
    system_multi_thread: bool,
) -> Poll<F::Output> {
    let first = inner.as_mut().poll(cx);
    if first.is_ready() || bound.is_zero() || !may_spin(system_multi_thread) {
        return first;
    }
    if !with_backoff(Backoff::admit) {
        return Poll::Pending;
    }
    let deadline = Instant::now() + bound;
    loop {
        for _ in 0..CHECKS_PER_YIELD {
            if done.load(Ordering::Acquire) {
                break;
            }
            std::hint::spin_loop();
        }
        // `done` turns true just before the reply is handed over, so the
        // poll may still find nothing once; the next check retries.
        if done.load(Ordering::Acquire)
            && let Poll::Ready(output) = inner.as_mut().poll(cx)
        {
            with_backoff(Backoff::hit);
            return Poll::Ready(output);
        }
        if Instant::now() >= deadline {
            with_backoff(Backoff::miss);
            return Poll::Pending;
        }
        std::thread::yield_now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misses_back_off_doubling_up_to_64_and_a_hit_resets_them() {
        let mut b = Backoff { misses: 0, skip: 0 };
        let mut skipped = Vec::new();
        for _ in 0..8 {
            assert!(b.admit(), "a wait after the skips spins again");
            b.miss();
            let mut n = 0;
            while !b.admit() {
                n += 1;
            }
            skipped.push(n);
        }
        assert_eq!(skipped, [2, 4, 8, 16, 32, 64, 64, 64]);
        b.hit();
        b.miss();
        assert_eq!(b.skip, 2, "after a hit, the first miss skips two waits again");
    }

    #[test]
    fn no_spin_inside_a_task_or_on_a_current_thread_runtime() {
        let multi = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().expect("runtime");
        let current = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(multi.block_on(async { may_spin(true) }), cores > 1, "block_on on a multi-thread runtime");
        assert!(!multi.block_on(async { tokio::spawn(async { may_spin(true) }).await.expect("task") }), "in a task");
        assert!(!current.block_on(async { may_spin(true) }), "this thread drives a current-thread runtime");
        assert!(!may_spin(false), "the replies come from a current-thread runtime");
    }
}
