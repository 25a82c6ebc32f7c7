//! One task for an accepted connection. hyper's HTTP/2 server runs a
//! connection as several futures (the connection itself, and a pipe per
//! stream that carries our side's messages) and spawns all but one on an
//! executor; on tokio's each would be a task of its own, and every reply
//! would hop from its pipe's task to the connection's before it is written,
//! a wake-up of another task, often on the other worker thread.
//! [`ConnExec`] is that executor for one connection: what it is given runs in
//! the task that runs the [`Driver`], which polls them in passes, again while
//! any of them wakes another, so a reply is framed and written in one go.
//! (The reader that delivers what the peer sends keeps a task of its own:
//! in this one it would hold back the writes under load.)
//!
//! What the connection writes in one poll of the task is written to the
//! socket once, at its end ([`Driver::cork`]): under load the futures of one
//! pass wake each other many times, and each wake would otherwise cost a
//! write of its own (a handful of small frames each).

use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker, ready};

use bytes::{Buf, BytesMut};
use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::task::AtomicWaker;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

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
    /// The main future was woken: only then is it polled again (polling
    /// it for the others' wakes would cost, e.g., a timer's registration).
    main_woken: AtomicBool,
}

/// The main future's waker.
struct MainWaker(Arc<PassWaker>);

impl Wake for MainWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.main_woken.store(true, Ordering::SeqCst);
        self.0.wake_by_ref();
    }
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
    main_waker: Waker,
    running: FuturesUnordered<Spawned>,
    /// The connection's writes, held until the end of each poll.
    cork: Option<Arc<dyn Drain>>,
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
            main_woken: AtomicBool::new(true),
        });
        let waker = Waker::from(wake.clone());
        let main_waker = Waker::from(Arc::new(MainWaker(wake.clone())));
        let shared = Arc::new(Shared { spawned: Mutex::new(Vec::new()), wake });
        Driver { exec: ConnExec { shared }, waker, main_waker, running: FuturesUnordered::new(), cork: None }
    }

    /// Wraps the connection's transport: what is written to it waits in a
    /// buffer until this driver's poll ends (or the buffer fills).
    pub(crate) fn cork<T>(&mut self, io: T) -> Corked<T>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let inner = Arc::new(Mutex::new(CorkInner { io, buf: BytesMut::new(), failed: None }));
        self.cork = Some(inner.clone());
        Corked(inner)
    }

    pub(crate) fn exec(&self) -> ConnExec {
        self.exec.clone()
    }

    /// Polls `main` and everything spawned here until `main` completes.
    pub(crate) async fn run<F: Future>(&mut self, main: F) -> F::Output {
        let mut main = pin!(main);
        // A new main future has not been polled yet.
        self.exec.shared.wake.main_woken.store(true, Ordering::SeqCst);
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
        let Driver { exec, waker, main_waker, running, cork } = self;
        let shared = &exec.shared;
        shared.wake.task.register(cx.waker());
        let mut inner = Context::from_waker(waker);
        let mut main_cx = Context::from_waker(main_waker);
        let polled = passes(shared, running, &mut inner, &mut main_cx, &mut main);
        if let Some(cork) = cork {
            // A write that must wait for room wakes the task through `inner`.
            cork.drain(&mut inner);
        }
        match polled {
            Some(out) => out,
            None => {
                // Still busy: let the worker's other tasks run, then carry on.
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
    }
}

/// Polls `main` and the spawned futures in passes, until a pass in which
/// none of them was woken; `None` if they were still busy after
/// [`PASSES_PER_POLL`].
fn passes<T>(
    shared: &Shared,
    running: &mut FuturesUnordered<Spawned>,
    inner: &mut Context<'_>,
    main_cx: &mut Context<'_>,
    main: &mut impl FnMut(&mut Context<'_>) -> Poll<T>,
) -> Option<Poll<T>> {
    let wake = &shared.wake;
    for _ in 0..PASSES_PER_POLL {
        wake.in_pass.store(true, Ordering::SeqCst);
        wake.woken.store(false, Ordering::SeqCst);
        if wake.main_woken.swap(false, Ordering::SeqCst)
            && let Poll::Ready(out) = main(main_cx)
        {
            wake.in_pass.store(false, Ordering::SeqCst);
            return Some(Poll::Ready(out));
        }
        running.extend(std::mem::take(&mut *shared.spawned.lock()));
        while let Poll::Ready(Some(())) = running.poll_next_unpin(inner) {}
        wake.in_pass.store(false, Ordering::SeqCst);
        if !wake.woken.load(Ordering::SeqCst) {
            return Some(Poll::Pending);
        }
    }
    None
}

/// Past this many bytes waiting, a write goes to the socket at once.
const CORK_LIMIT: usize = 64 * 1024;

/// A transport whose writes wait for the end of the driver's poll (see
/// [`Driver::cork`]). Flushing it does nothing: the driver flushes.
pub(crate) struct Corked<T>(Arc<Mutex<CorkInner<T>>>);

struct CorkInner<T> {
    io: T,
    buf: BytesMut,
    /// Why the last write to the socket failed; reported to the next writer.
    failed: Option<io::Error>,
}

impl<T: AsyncWrite + Unpin> CorkInner<T> {
    /// Writes what waits, until done or the socket is full.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(e) = self.failed.take() {
            return Poll::Ready(Err(e));
        }
        while !self.buf.is_empty() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.buf))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.buf.advance(n);
        }
        Pin::new(&mut self.io).poll_flush(cx)
    }
}

/// The driver's side of a cork.
trait Drain: Send + Sync {
    fn drain(&self, cx: &mut Context<'_>);
}

impl<T: AsyncWrite + Unpin + Send> Drain for Mutex<CorkInner<T>> {
    fn drain(&self, cx: &mut Context<'_>) {
        let mut inner = self.lock();
        if inner.buf.is_empty() {
            return;
        }
        if let Poll::Ready(Err(e)) = inner.poll_drain(cx) {
            inner.failed = Some(e);
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Corked<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0.lock().io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Corked<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[io::IoSlice::new(data)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let mut inner = self.0.lock();
        if inner.buf.len() >= CORK_LIMIT || inner.failed.is_some() {
            ready!(inner.poll_drain(cx))?;
        }
        let mut n = 0;
        for b in bufs {
            inner.buf.extend_from_slice(b);
            n += b.len();
        }
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.0.lock().failed.take() {
            Some(e) => Poll::Ready(Err(e)),
            None => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut inner = self.0.lock();
        ready!(inner.poll_drain(cx))?;
        Pin::new(&mut inner.io).poll_shutdown(cx)
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

    #[tokio::test]
    async fn corked_writes_reach_the_socket_together_when_the_poll_ends() {
        use futures_util::FutureExt;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (ours, mut peer) = tokio::io::duplex(1 << 16);
        let mut driver = Driver::new();
        let mut corked = driver.cork(ours);
        let mut buf = [0u8; 6];
        driver
            .run(async {
                corked.write_all(b"one").await.expect("buffered");
                corked.write_all(b"two").await.expect("buffered");
                corked.flush().await.expect("flushing waits for the driver");
                assert!(peer.read(&mut buf).now_or_never().is_none(), "nothing is written during the poll");
            })
            .await;
        peer.read_exact(&mut buf).await.expect("written at the end of the poll");
        assert_eq!(&buf, b"onetwo");
        corked.write_all(b"bye").await.expect("buffered");
        corked.shutdown().await.expect("shutting down writes what waits first");
        let mut rest = Vec::new();
        peer.read_to_end(&mut rest).await.expect("the peer reads to the end");
        assert_eq!(rest, b"bye");
    }
}
