//! Futures for requests and stops: short-lived processes that complete a
//! oneshot when their answer arrives.

use std::any::Any;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use futures_util::future::BoxFuture;
use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::error::Error;
use crate::message::{AnyMessage, DeadLetterResponse, DeliveryFailure, Envelope, PoisonPill, SystemMessage};
use crate::pid::Pid;
use crate::process::{Process, ProcessRef};
use crate::system::ActorSystem;

pub(crate) enum Outcome {
    Message(AnyMessage),
    DeadLetter,
    Failed(crate::message::DeliveryFailureKind, String),
    Terminated,
}

/// The process behind a pending request or stop: completes on its first answer.
pub(crate) struct FutureProcess {
    tx: Mutex<Option<oneshot::Sender<Outcome>>>,
    done: AtomicBool,
}

impl FutureProcess {
    fn complete(&self, outcome: Outcome) {
        if self.done.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Some(tx) = self.tx.lock().take() {
            let _ = tx.send(outcome);
        }
    }
}

impl Process for FutureProcess {
    fn send_user_message(&self, _pid: &Pid, envelope: Envelope) {
        let outcome = if envelope.message_as::<DeadLetterResponse>().is_some() {
            Outcome::DeadLetter
        } else if let Some(failure) = envelope.message_as::<DeliveryFailure>() {
            Outcome::Failed(failure.kind, failure.reason.clone())
        } else {
            Outcome::Message(envelope.message)
        };
        self.complete(outcome);
    }

    fn send_system_message(&self, _pid: &Pid, message: SystemMessage) {
        if let SystemMessage::Terminated(_) = message {
            self.complete(Outcome::Terminated);
        }
    }

    fn is_dead(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }
}

/// Removes the future's registration when the waiter is done or gives up,
/// and marks it dead so a late reply goes to dead letters instead of vanishing.
struct Registration {
    system: ActorSystem,
    pid: Pid,
    process: Arc<FutureProcess>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.process.done.store(true, Ordering::Release);
        self.system.registry().remove(self.pid.id());
    }
}

fn new_future(system: &ActorSystem) -> (Pid, oneshot::Receiver<Outcome>, Registration) {
    let (tx, rx) = oneshot::channel();
    let process = Arc::new(FutureProcess { tx: Mutex::new(Some(tx)), done: AtomicBool::new(false) });
    let process_ref: ProcessRef = process.clone();
    let pid = system.register_generated("future", process_ref);
    (pid.clone(), rx, Registration { system: system.clone(), pid, process })
}

/// Turns a response into the type the caller asked for. Asking for
/// `AnyMessage` accepts anything.
fn convert<R: Send + 'static>(message: AnyMessage) -> Result<R, Error> {
    match message.downcast::<R>() {
        Ok(value) => Ok(value),
        Err(message) => {
            let actual = message.type_name();
            let mut slot: Option<AnyMessage> = Some(message);
            match (&mut slot as &mut dyn Any).downcast_mut::<Option<R>>().and_then(Option::take) {
                Some(value) => Ok(value),
                None => Err(Error::UnexpectedResponse { expected: std::any::type_name::<R>(), actual }),
            }
        }
    }
}

/// The typed response of a request: resolves to the response, or to
/// [`Error::Timeout`], [`Error::DeadLetter`] or [`Error::UnexpectedResponse`].
///
/// The request is already sent when this value exists; dropping it only
/// stops waiting.
#[must_use = "the response is lost unless the future is awaited"]
pub struct RequestFuture<R> {
    inner: BoxFuture<'static, Result<R, Error>>,
    waiter: Waiter,
    _marker: PhantomData<fn() -> R>,
}

impl<R> std::fmt::Debug for RequestFuture<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RequestFuture")
    }
}

impl<R: Send + 'static> RequestFuture<R> {
    pub(crate) fn start(
        system: &ActorSystem,
        target: &Pid,
        envelope: Envelope,
        timeout: Duration,
        send: impl FnOnce(&Pid, Envelope),
    ) -> Self {
        let (pid, rx, registration) = new_future(system);
        // The clock starts at the send, not at the first poll.
        let deadline = tokio::time::Instant::now() + timeout;
        send(target, envelope.with_sender(Some(pid)));
        let target = target.clone();
        let inner = Box::pin(async move { settle(tokio::time::timeout_at(deadline, rx).await, target, timeout) });
        RequestFuture { inner, waiter: Waiter::new(registration), _marker: PhantomData }
    }
}

impl<R> Future for RequestFuture<R> {
    type Output = Result<R, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        this.waiter.poll(this.inner.as_mut(), cx)
    }
}

/// What waiting for `target`'s reply (for up to `timeout`) came to.
fn settle<R: Send + 'static>(
    waited: Result<Result<Outcome, oneshot::error::RecvError>, tokio::time::error::Elapsed>,
    target: Pid,
    timeout: Duration,
) -> Result<R, Error> {
    match waited {
        Err(_) => Err(Error::Timeout { target, after: timeout }),
        Ok(Err(_)) | Ok(Ok(Outcome::DeadLetter)) => Err(Error::DeadLetter { target }),
        Ok(Ok(Outcome::Terminated)) => Err(Error::Terminated(target)),
        Ok(Ok(Outcome::Failed(kind, reason))) => Err(Error::DeliveryFailed { target, kind, reason }),
        Ok(Ok(Outcome::Message(message))) => convert::<R>(message),
    }
}

/// A pending reply's registration, and how long its waiter may busy-wait
/// for it outside tokio's tasks (see the `spin` module).
struct Waiter {
    registration: Registration,
    spin: Duration,
}

impl Waiter {
    fn new(registration: Registration) -> Self {
        let spin = registration.system.request_spin();
        Waiter { registration, spin }
    }

    fn poll<F: Future + ?Sized>(&self, inner: Pin<&mut F>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        crate::spin::poll_spinning(inner, cx, &self.registration.process.done, self.spin)
    }
}

/// A reply address not tied to one send: use [`pid`](Self::pid) as the
/// sender of one or more requests (retries of the same call), then
/// [`wait`](Self::wait) for the first reply. A wait that times out leaves
/// it usable, so a slow reply to an earlier attempt still counts.
///
/// ```
/// # use std::time::Duration;
/// # use protoactor_actor::prelude::*;
/// # #[tokio::main] async fn main() {
/// let system = ActorSystem::new();
/// let echo = system.root().spawn(Props::from_fn(|ctx| {
///     if let Some(n) = ctx.message::<u32>() { ctx.respond(*n + 1); }
///     Ok(())
/// }));
/// let mut reply = system.response_future::<u32>();
/// system.root().request(&echo, 41u32, reply.pid());
/// assert_eq!(reply.wait(Duration::from_secs(1)).await.unwrap(), 42);
/// # }
/// ```
#[must_use = "replies are lost unless the future is waited on"]
pub struct ResponseFuture<R> {
    pid: Pid,
    rx: oneshot::Receiver<Outcome>,
    waiter: Waiter,
    /// A wait got a final outcome: the receiver must not be polled again.
    finished: bool,
    _marker: PhantomData<fn() -> R>,
}

impl<R> std::fmt::Debug for ResponseFuture<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").field("pid", &self.pid).finish()
    }
}

impl<R: Send + 'static> ResponseFuture<R> {
    pub(crate) fn new(system: &ActorSystem) -> Self {
        let (pid, rx, registration) = new_future(system);
        ResponseFuture { pid, rx, waiter: Waiter::new(registration), finished: false, _marker: PhantomData }
    }

    /// The address replies go to.
    pub fn pid(&self) -> &Pid {
        &self.pid
    }

    /// Waits up to `timeout` for the reply. [`Error::Timeout`] leaves the
    /// future waiting for a later reply; any other outcome is final (the
    /// next wait reports [`Error::DeadLetter`]).
    pub async fn wait(&mut self, timeout: Duration) -> Result<R, Error> {
        let target = self.pid.clone();
        if self.finished {
            return Err(Error::DeadLetter { target });
        }
        let waiter = &self.waiter;
        let mut wait = std::pin::pin!(tokio::time::timeout(timeout, &mut self.rx));
        let waited = std::future::poll_fn(|cx| waiter.poll(wait.as_mut(), cx)).await;
        self.finished = waited.is_ok();
        settle(waited, target, timeout)
    }
}

/// Completes when the stopped (or poisoned) process has terminated.
#[must_use = "the stop is already under way; await this to wait for it"]
pub struct StopFuture {
    inner: BoxFuture<'static, ()>,
}

impl std::fmt::Debug for StopFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StopFuture")
    }
}

impl StopFuture {
    pub(crate) fn start(system: &ActorSystem, target: &Pid, poison: bool) -> Self {
        let (pid, rx, registration) = new_future(system);
        system.send_system_message(target, SystemMessage::Watch(pid));
        if poison {
            system.send_user_message(target, Envelope::new(PoisonPill));
        } else {
            system.stop(target);
        }
        StopFuture {
            inner: Box::pin(async move {
                let _registration = registration;
                let _ = rx.await;
            }),
        }
    }
}

impl Future for StopFuture {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        self.inner.as_mut().poll(cx)
    }
}
