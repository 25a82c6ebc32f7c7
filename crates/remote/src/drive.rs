//! One task per connection. hyper runs a connection as several futures (the
//! HTTP/2 connection, a pipe per stream body) and spawns all but one on an
//! executor; on tokio's each would be a task of its own, and every frame of a
//! round trip would hop between them (the reader that hands a request to an
//! actor, the body that carries its reply, the connection that writes it),
//! each hop a wake-up of another task, often on the other worker thread.
//! [`ConnExec`] is that executor for one connection: what it is given runs in
//! the task that runs the [`Driver`], which polls them all in one pass, again
//! while any of them wakes another, so a frame read, handled and answered
//! costs no hop at all.

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::task::AtomicWaker;
use parking_lot::Mutex;

type Spawned = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Hands futures to one connection's [`Driver`].
#[derive(Clone)]
pub(crate) struct ConnExec {
    shared: Arc<Shared>,
}

struct Shared {
    spawned: Mutex<Vec<Spawned>>,
    wake: Arc<PassWaker>,
}

impl<F> hyper::rt::Executor<F> for ConnExec
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, future: F) {
        self.spawn(future);
    }
}

impl ConnExec {
    /// Runs `future` in the driver's task, from its next pass on.
    pub(crate) fn spawn(&self, future: impl Future<Output = ()> + Send + 'static) {
        self.shared.spawned.lock().push(Box::pin(future));
        self.shared.wake.wake_by_ref();
    }
}

/// The waker every future of a connection sees. A wake while the driver is
/// in a pass only marks the pass to run again (the task is running: waking
/// it would only have tokio poll it once more for nothing); any other wakes
/// the task.
struct PassWaker {
    task: AtomicWaker,
    in_pass: AtomicBool,
    woken: AtomicBool,
}

impl Wake for PassWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // SeqCst pairs with the end of a pass: either the pass sees `woken`
        // or this sees that no pass is running and wakes the task.
        self.woken.store(true, Ordering::SeqCst);
        if !self.in_pass.load(Ordering::SeqCst) {
            self.task.wake();
        }
    }
}

/// Polls one connection's futures: a main one, and whatever was spawned on
/// its [`ConnExec`]. Dropping it drops them all (the connection closes).
pub(crate) struct Driver {
    exec: ConnExec,
    waker: Waker,
    running: FuturesUnordered<Spawned>,
}

/// Passes in one poll before the task yields to others (the futures keep
/// waking each other while there is work; a busy connection must not starve
/// the rest of its worker thread).
const PASSES_PER_POLL: usize = 32;

impl Driver {
    pub(crate) fn new() -> Self {
        let wake = Arc::new(PassWaker {
            task: AtomicWaker::new(),
            in_pass: AtomicBool::new(false),
            woken: AtomicBool::new(false),
        });
        let waker = Waker::from(wake.clone());
        let shared = Arc::new(Shared { spawned: Mutex::new(Vec::new()), wake });
        Driver { exec: ConnExec { shared }, waker, running: FuturesUnordered::new() }
    }

    pub(crate) fn exec(&self) -> ConnExec {
        self.exec.clone()
    }

    /// Polls `main` and everything spawned here until `main` completes.
    pub(crate) async fn run<F: Future>(&mut self, main: F) -> F::Output {
        let mut main = pin!(main);
        std::future::poll_fn(|cx| self.poll_with(cx, |cx| main.as_mut().poll(cx))).await
    }

    /// Polls everything spawned here until all of it completed.
    pub(crate) async fn finish(&mut self) {
        std::future::poll_fn(|cx| {
            let _ = self.poll_with(cx, |_| Poll::Pending::<()>);
            if self.running.is_empty() && self.exec.shared.spawned.lock().is_empty() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }

    fn poll_with<T>(&mut self, cx: &mut Context<'_>, mut main: impl FnMut(&mut Context<'_>) -> Poll<T>) -> Poll<T> {
        let wake = &self.exec.shared.wake;
        wake.task.register(cx.waker());
        let mut inner = Context::from_waker(&self.waker);
        for _ in 0..PASSES_PER_POLL {
            wake.in_pass.store(true, Ordering::SeqCst);
            wake.woken.store(false, Ordering::SeqCst);
            if let Poll::Ready(out) = main(&mut inner) {
                wake.in_pass.store(false, Ordering::SeqCst);
                return Poll::Ready(out);
            }
            let spawned = std::mem::take(&mut *self.exec.shared.spawned.lock());
            self.running.extend(spawned);
            while let Poll::Ready(Some(())) = self.running.poll_next_unpin(&mut inner) {}
            wake.in_pass.store(false, Ordering::SeqCst);
            if !wake.woken.load(Ordering::SeqCst) {
                return Poll::Pending;
            }
        }
        // Still busy: let the worker's other tasks run, then carry on.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl Default for Driver {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[tokio::test]
    async fn spawned_futures_run_in_the_drivers_task_and_wake_each_other() {
        let mut driver = Driver::new();
        let exec = driver.exec();
        let (tx, rx) = tokio::sync::oneshot::channel::<u32>();
        let seen = Arc::new(AtomicUsize::new(0));
        let seen2 = seen.clone();
        exec.spawn(async move {
            seen2.store(rx.await.unwrap_or(0) as usize, Ordering::SeqCst);
        });
        let out = driver
            .run(async move {
                tokio::task::yield_now().await;
                let _ = tx.send(7);
                tokio::task::yield_now().await;
                1
            })
            .await;
        assert_eq!(out, 1);
        driver.finish().await;
        assert_eq!(seen.load(Ordering::SeqCst), 7);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_wake_from_another_thread_reaches_the_task() {
        let mut driver = Driver::new();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<u32>(1);
        let exec = driver.exec();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<u32>();
        exec.spawn(async move {
            let mut sum = 0;
            while let Some(n) = rx.recv().await {
                sum += n;
            }
            let _ = done_tx.send(sum);
        });
        let sender = std::thread::spawn(move || {
            for n in 1..=100 {
                tx.blocking_send(n).expect("driver gone");
            }
        });
        let sum = driver.run(done_rx).await.expect("the receiver ran to its end");
        sender.join().expect("sender thread");
        assert_eq!(sum, 5050);
    }
}
