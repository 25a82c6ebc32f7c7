//! Helpers shared by the integration tests of `protoactor-actor`.
//!
//! Each test file includes this with `mod common;` and uses what it needs, so
//! unused items are expected in any one file.
//!
//! - [`probe`]: an actor that reports every message it receives (lifecycle and
//!   user messages) as a [`Seen`] on a channel.
//! - [`recv_within`], [`recv_n`], [`recv_until`]: wait on a channel with a
//!   deadline instead of sleeping; they panic with a clear message on timeout.
//! - [`assert_nothing_within`]: the one sanctioned use of a fixed wait, to prove
//!   that something does *not* happen in a window.
//! - [`wait_until`]: poll a condition with a deadline.
//! - [`dead_letters`]: the system's dead letters as a channel of [`DeadLetter`].
#![allow(dead_code)]

use std::any::Any;
use std::fmt::Debug;
use std::time::Duration;

use protoactor_actor::{
    ActorSystem, Context, DeadLetterEvent, Message, Pid, Props, ReceiveTimeout, Restarting, Started, Stopped, Stopping,
    Subscription, Terminated,
};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

/// How long tests wait for something that should happen. Generous, because
/// the CI machine has two busy cores; a passing test never waits this long.
pub(crate) const WAIT: Duration = Duration::from_secs(5);

/// What a [`probe`] (or any test actor calling [`seen`]) received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seen {
    /// The [`Started`] lifecycle message.
    Started,
    /// The [`Stopping`] lifecycle message.
    Stopping,
    /// The [`Stopped`] lifecycle message.
    Stopped,
    /// The [`Restarting`] lifecycle message.
    Restarting,
    /// A [`ReceiveTimeout`].
    ReceiveTimeout,
    /// A [`Terminated`] notification.
    Terminated(Terminated),
    /// Any other message, as rendered by [`describe`].
    Msg(String),
}

impl Seen {
    /// Shorthand for `Seen::Msg(text.to_string())`.
    pub(crate) fn msg(text: impl Into<String>) -> Seen {
        Seen::Msg(text.into())
    }
}

/// Renders a message for assertions: strings and integers by value, anything
/// else by its type name.
pub(crate) fn describe(message: &dyn Message) -> String {
    let any: &dyn Any = message;
    render(
        any.downcast_ref::<String>(),
        any.downcast_ref::<&'static str>(),
        any.downcast_ref::<u32>(),
        any.downcast_ref::<u64>(),
        any.downcast_ref::<i32>(),
        message.type_name(),
    )
}

/// Renders the current message of `ctx` like [`describe`].
pub(crate) fn describe_current(ctx: &Context) -> String {
    render(
        ctx.message::<String>(),
        ctx.message::<&'static str>(),
        ctx.message::<u32>(),
        ctx.message::<u64>(),
        ctx.message::<i32>(),
        ctx.message_type_name(),
    )
}

fn render(
    string: Option<&String>,
    str: Option<&&'static str>,
    u32: Option<&u32>,
    u64: Option<&u64>,
    i32: Option<&i32>,
    type_name: &str,
) -> String {
    if let Some(s) = string {
        s.clone()
    } else if let Some(s) = str {
        (*s).to_string()
    } else if let Some(n) = u32 {
        n.to_string()
    } else if let Some(n) = u64 {
        n.to_string()
    } else if let Some(n) = i32 {
        n.to_string()
    } else {
        type_name.to_string()
    }
}

/// Classifies the current message of `ctx`.
pub(crate) fn seen(ctx: &Context) -> Seen {
    if ctx.message_is::<Started>() {
        Seen::Started
    } else if ctx.message_is::<Stopping>() {
        Seen::Stopping
    } else if ctx.message_is::<Stopped>() {
        Seen::Stopped
    } else if ctx.message_is::<Restarting>() {
        Seen::Restarting
    } else if ctx.message_is::<ReceiveTimeout>() {
        Seen::ReceiveTimeout
    } else if let Some(t) = ctx.message::<Terminated>() {
        Seen::Terminated(t.clone())
    } else {
        Seen::Msg(describe_current(ctx))
    }
}

/// An actor that reports every message it receives to `tx`, in order, and
/// does nothing else.
pub(crate) fn probe(tx: UnboundedSender<Seen>) -> Props {
    Props::from_fn(move |ctx: &mut Context| {
        let _ = tx.send(seen(ctx));
        Ok(())
    })
}

/// Like [`probe`], but also reports the sender of each message.
pub(crate) fn probe_with_sender(tx: UnboundedSender<(Seen, Option<Pid>)>) -> Props {
    Props::from_fn(move |ctx: &mut Context| {
        let _ = tx.send((seen(ctx), ctx.sender().cloned()));
        Ok(())
    })
}

/// Spawns a [`probe`] from the root context; returns its pid and channel.
pub(crate) fn spawn_probe(system: &ActorSystem) -> (Pid, UnboundedReceiver<Seen>) {
    let (tx, rx) = unbounded_channel();
    (system.root().spawn(probe(tx)), rx)
}

/// The next item on `rx`, waiting at most `within`. Panics on timeout or if
/// every sender is gone.
pub(crate) async fn recv_within<T>(rx: &mut UnboundedReceiver<T>, within: Duration) -> T {
    match tokio::time::timeout(within, rx.recv()).await {
        Ok(Some(item)) => item,
        Ok(None) => panic!("channel closed while waiting for an item"),
        Err(_) => panic!("nothing arrived within {within:?}"),
    }
}

/// The next `n` items on `rx`, all within `within` in total.
pub(crate) async fn recv_n<T: Debug>(rx: &mut UnboundedReceiver<T>, n: usize, within: Duration) -> Vec<T> {
    let deadline = tokio::time::Instant::now() + within;
    let mut items = Vec::with_capacity(n);
    while items.len() < n {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(item)) => items.push(item),
            Ok(None) => panic!("channel closed after {} of {n} items: {items:?}", items.len()),
            Err(_) => panic!("only {} of {n} items arrived within {within:?}: {items:?}", items.len()),
        }
    }
    items
}

/// Items from `rx` up to and including the first one matching `stop`, all
/// within `within`.
pub(crate) async fn recv_until<T: Debug>(
    rx: &mut UnboundedReceiver<T>,
    within: Duration,
    mut stop: impl FnMut(&T) -> bool,
) -> Vec<T> {
    let deadline = tokio::time::Instant::now() + within;
    let mut items = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(item)) => {
                let done = stop(&item);
                items.push(item);
                if done {
                    return items;
                }
            }
            Ok(None) => panic!("channel closed before the awaited item; got {items:?}"),
            Err(_) => panic!("the awaited item did not arrive within {within:?}; got {items:?}"),
        }
    }
}

/// Asserts that nothing arrives on `rx` during `window`. A fixed wait is the
/// only way to show that something does not happen; prefer ordering against a
/// later marker message where the runtime allows it.
pub(crate) async fn assert_nothing_within<T: Debug>(rx: &mut UnboundedReceiver<T>, window: Duration) {
    if let Ok(item) = tokio::time::timeout(window, rx.recv()).await {
        panic!("expected nothing within {window:?}, got {item:?}");
    }
}

/// Polls `condition` every few milliseconds until it holds; panics after `within`.
pub(crate) async fn wait_until(within: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "condition not met within {within:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A dead letter as seen on the event stream, reduced to comparable parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeadLetter {
    /// Where the message was sent.
    pub(crate) pid: Pid,
    /// The message, as rendered by [`describe`].
    pub(crate) message: String,
    /// Who sent it.
    pub(crate) sender: Option<Pid>,
}

/// Subscribes to the dead letters of `system`. Handlers run on the publishing
/// thread, so a dead letter caused by a synchronous send is already in the
/// channel when that send returns.
pub(crate) fn dead_letters(system: &ActorSystem) -> (Subscription, UnboundedReceiver<DeadLetter>) {
    let (tx, rx) = unbounded_channel();
    let subscription = system.event_stream().subscribe::<DeadLetterEvent>(move |event: &DeadLetterEvent| {
        let _ = tx.send(DeadLetter {
            pid: event.pid.clone(),
            message: describe(&*event.message),
            sender: event.sender.clone(),
        });
    });
    (subscription, rx)
}
