//! The [`Actor`] trait and function actors.

use std::future::Future;

use crate::context::Context;
use crate::error::ActorResult;

/// An actor: state plus a `receive` that handles one message at a time.
///
/// `receive` sees the message and everything else through the [`Context`]:
/// ```
/// use protoactor_actor::prelude::*;
///
/// struct Counter { count: u64 }
/// struct Add(u64);
///
/// impl Actor for Counter {
///     async fn receive(&mut self, ctx: &mut Context) -> ActorResult {
///         if let Some(Add(n)) = ctx.message::<Add>() {
///             self.count += n;
///             ctx.respond(self.count);
///         }
///         Ok(())
///     }
/// }
/// ```
/// An error (or a panic) returned from `receive` is a failure handled by the
/// actor's supervisor; the runtime keeps running. While `receive` awaits, the
/// actor handles nothing else: use [`Context::reenter_after`] to wait for a
/// future without blocking the mailbox.
pub trait Actor: Send + 'static {
    /// Handles the current message (`ctx.message::<T>()`).
    fn receive(&mut self, ctx: &mut Context) -> impl Future<Output = ActorResult> + Send;
}

/// An actor made from a closure; see [`Props::from_fn`](crate::Props::from_fn).
pub struct FnActor<F>(pub(crate) F);

impl<F> std::fmt::Debug for FnActor<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FnActor")
    }
}

impl<F> Actor for FnActor<F>
where
    F: FnMut(&mut Context) -> ActorResult + Send + 'static,
{
    fn receive(&mut self, ctx: &mut Context) -> impl Future<Output = ActorResult> + Send {
        std::future::ready((self.0)(ctx))
    }
}
