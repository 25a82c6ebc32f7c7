//! Middleware chains around receiving, sending and spawning.
//!
//! Each chain is a list of layers; the first added is the outermost. A layer
//! does its work and calls `next` to continue (or does not, to swallow).

use std::fmt;
use std::sync::Arc;

use futures_util::future::BoxFuture;

use crate::context::Context;
use crate::error::{ActorResult, Error};
use crate::message::Envelope;
use crate::pid::Pid;
use crate::props::Props;
use crate::system::ActorSystem;

/// Wraps the handling of every message (user and lifecycle) by an actor.
///
/// ```
/// use protoactor_actor::prelude::*;
/// use protoactor_actor::middleware::{ReceiverMiddleware, ReceiveNext};
/// use futures_util::future::BoxFuture;
///
/// struct Logging;
/// impl ReceiverMiddleware for Logging {
///     fn receive<'a>(&'a self, ctx: &'a mut Context, next: ReceiveNext<'a>) -> BoxFuture<'a, ActorResult> {
///         Box::pin(async move {
///             println!("{} got {}", ctx.self_pid(), ctx.message_type_name());
///             next.run(ctx).await
///         })
///     }
/// }
/// ```
pub trait ReceiverMiddleware: Send + Sync + 'static {
    /// Handles the current message of `ctx`, usually by calling `next.run(ctx)`.
    fn receive<'a>(&'a self, ctx: &'a mut Context, next: ReceiveNext<'a>) -> BoxFuture<'a, ActorResult>;
}

/// The actor seen through the receive chain.
pub(crate) trait ErasedReceive: Send {
    fn receive_boxed<'a>(&'a mut self, ctx: &'a mut Context) -> BoxFuture<'a, ActorResult>;
}

/// The rest of a receive chain.
pub struct ReceiveNext<'a> {
    pub(crate) rest: &'a [Arc<dyn ReceiverMiddleware>],
    pub(crate) actor: &'a mut dyn ErasedReceive,
}

impl fmt::Debug for ReceiveNext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReceiveNext").field("remaining", &self.rest.len()).finish()
    }
}

impl<'a> ReceiveNext<'a> {
    /// Continues with the next layer, and finally the actor. The context is
    /// borrowed only while the rest of the chain runs, so a layer can still
    /// use it afterwards.
    pub fn run<'b>(self, ctx: &'b mut Context) -> BoxFuture<'b, ActorResult>
    where
        'a: 'b,
    {
        match self.rest.split_first() {
            Some((first, rest)) => first.receive(ctx, ReceiveNext { rest, actor: self.actor }),
            None => self.actor.receive_boxed(ctx),
        }
    }
}

/// Wraps every message an actor (or a root context) sends.
pub trait SenderMiddleware: Send + Sync + 'static {
    /// Sends `envelope` to `target`, usually by calling `next.send(target, envelope)`.
    fn send(&self, target: &Pid, envelope: Envelope, next: SendNext<'_>);
}

/// The rest of a send chain.
pub struct SendNext<'a> {
    pub(crate) rest: &'a [Arc<dyn SenderMiddleware>],
    pub(crate) system: &'a ActorSystem,
    pub(crate) sender: Option<&'a Pid>,
}

impl fmt::Debug for SendNext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendNext").field("remaining", &self.rest.len()).field("sender", &self.sender).finish()
    }
}

impl SendNext<'_> {
    /// Who is sending (the actor, or `None` from a root context).
    pub fn sender(&self) -> Option<&Pid> {
        self.sender
    }

    /// The actor system.
    pub fn system(&self) -> &ActorSystem {
        self.system
    }

    /// Continues with the next layer, and finally delivers.
    pub fn send(self, target: &Pid, envelope: Envelope) {
        match self.rest.split_first() {
            Some((first, rest)) => {
                first.send(target, envelope, SendNext { rest, system: self.system, sender: self.sender })
            }
            None => self.system.send_user_message(target, envelope),
        }
    }
}

/// Sends through a middleware chain (or directly when it is empty).
#[inline]
pub(crate) fn send_through(
    chain: &[Arc<dyn SenderMiddleware>],
    system: &ActorSystem,
    sender: Option<&Pid>,
    target: &Pid,
    envelope: Envelope,
) {
    if chain.is_empty() {
        system.send_user_message(target, envelope)
    } else {
        SendNext { rest: chain, system, sender }.send(target, envelope)
    }
}

/// Wraps every spawn made with the props that carry it.
pub trait SpawnMiddleware: Send + Sync + 'static {
    /// Spawns the actor, usually by calling `next.spawn(...)`.
    fn spawn(&self, id: &str, props: &Props, parent: Option<&Pid>, next: SpawnNext<'_>) -> Result<Pid, Error>;
}

/// The rest of a spawn chain.
pub struct SpawnNext<'a> {
    pub(crate) rest: &'a [Arc<dyn SpawnMiddleware>],
    pub(crate) system: &'a ActorSystem,
}

impl fmt::Debug for SpawnNext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpawnNext").field("remaining", &self.rest.len()).finish()
    }
}

impl SpawnNext<'_> {
    /// The actor system.
    pub fn system(&self) -> &ActorSystem {
        self.system
    }

    /// Continues with the next layer, and finally spawns.
    pub fn spawn(self, id: &str, props: &Props, parent: Option<&Pid>) -> Result<Pid, Error> {
        match self.rest.split_first() {
            Some((first, rest)) => first.spawn(id, props, parent, SpawnNext { rest, system: self.system }),
            None => props.factory().spawn(self.system, props, id, parent.cloned()),
        }
    }
}
