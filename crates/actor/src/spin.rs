//! A short busy wait for replies awaited outside tokio's tasks.
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
//! The wait is bounded by [`ActorSystemConfig::with_request_spin`]. It runs
//! only outside tokio's tasks (a spawned task or an actor would hold up its
//! worker), only when the system's runtime is multi-threaded and not on a
//! thread that drives a current-thread runtime (the reply would need this
//! very thread), and only on more than one core. It yields the core to any
//! other runnable thread every few dozen checks, and stops early when the
//! caller's tokio budget is spent (the next poll comes at once with a fresh
//! one).
//!
//! A busy wait that ends without the reply makes its thread skip the next
//! 2, 4, ... up to 64 busy waits, and one that gets its reply clears that
//! count; so a thread whose replies keep coming late spends the bound about
//! once per 64 waits. Siblings polled by the same `block_on` (`join!`,
//! `select!`, a `LocalSet`'s tasks) wait for the busy wait like for any
//! other poll: up to the bound, and a timeout may be reported that much late.
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
    static BACKOFF: Cell<Backoff> = const { Cell::new(Backoff::NEW) };
}

/// The per-thread memory of how busy waits have been going.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Backoff {
    /// Busy waits in a row that ended without the reply.
    misses: u32,
    /// Waits still to be done without spinning.
    skip: u32,
    /// Every miss so far (for the tests).
    #[cfg(test)]
    total_misses: u32,
}

impl Backoff {
    const NEW: Backoff = Backoff {
        misses: 0,
        skip: 0,
        #[cfg(test)]
        total_misses: 0,
    };

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
        #[cfg(test)]
        {
            self.total_misses += 1;
        }
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

/// Whether the calling thread may busy-wait for a reply. (A system on a
/// current-thread runtime has a zero bound: `ActorSystem::request_spin`.)
fn may_spin() -> bool {
    static MULTI_CORE: OnceLock<bool> = OnceLock::new();
    if tokio::task::try_id().is_some() {
        return false;
    }
    if Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::CurrentThread) {
        return false;
    }
    *MULTI_CORE.get_or_init(|| std::thread::available_parallelism().is_ok_and(|n| n.get() > 1))
}

/// Polls `inner`; if it is pending and the thread may spin, keeps polling
/// each time `done` turns true, for up to `bound`, before reporting pending.
pub(crate) fn poll_spinning<F: Future + ?Sized>(
    mut inner: Pin<&mut F>,
    cx: &mut Context<'_>,
    done: &AtomicBool,
    bound: Duration,
) -> Poll<F::Output> {
    let first = inner.as_mut().poll(cx);
    if first.is_ready() || bound.is_zero() || !may_spin() {
        return first;
    }
    // `block_on` grants each poll of its future a budget that every reply
    // received uses up; without one, polls report pending (and ask to be
    // polled again), so spinning for the reply would only burn the bound.
    if !tokio::task::coop::has_budget_remaining() {
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
        if done.load(Ordering::Acquire) {
            if let Poll::Ready(output) = inner.as_mut().poll(cx) {
                with_backoff(Backoff::hit);
                return Poll::Ready(output);
            }
            if !tokio::task::coop::has_budget_remaining() {
                return Poll::Pending;
            }
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
        let mut b = Backoff::NEW;
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

    /// More replies than `block_on`'s budget per poll (128) in one loop:
    /// once that budget is spent, a busy wait could never see its reply,
    /// so it must step aside instead of spinning out its bound as a miss.
    #[test]
    fn a_spent_budget_ends_the_busy_wait_without_a_miss() {
        use crate::{ActorSystem, ActorSystemConfig, Props};
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        let bound = Duration::from_secs(1);
        rt.block_on(async {
            let system = ActorSystem::with_config(ActorSystemConfig::default().with_request_spin(bound));
            let echo = system.root().spawn(Props::from_fn(|ctx| {
                if let Some(n) = ctx.message::<u32>() {
                    ctx.respond(*n);
                }
                Ok(())
            }));
            with_backoff(|b| *b = Backoff::NEW);
            for n in 0..1_000u32 {
                let reply: u32 = system.root().request_future(&echo, n, Duration::from_secs(10)).await.expect("reply");
                assert_eq!(reply, n);
            }
            system.shutdown().await;
        });
        // Replies from a local actor take microseconds, far below the bound.
        assert_eq!(with_backoff(|b| b.total_misses), 0, "busy waits ran out without their replies");
    }

    #[test]
    fn no_spin_inside_a_task_or_on_a_current_thread_runtime() {
        let multi = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().expect("runtime");
        let current = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(multi.block_on(async { may_spin() }), cores > 1, "block_on on a multi-thread runtime");
        assert!(!multi.block_on(async { tokio::spawn(async { may_spin() }).await.expect("task") }), "in a task");
        assert!(!current.block_on(async { may_spin() }), "this thread drives a current-thread runtime");
        let system = current.block_on(async { crate::ActorSystem::new() });
        assert!(system.request_spin().is_zero(), "the replies come from a current-thread runtime");
    }
}
