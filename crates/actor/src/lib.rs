//! # protoactor-actor
//!
//! The local actor runtime of protoactor-rs: actors that own their state and
//! handle one message at a time, addressed by [`Pid`], supervised by their
//! parents, and cheap enough to have hundreds of thousands of.
//!
//! ```
//! use std::time::Duration;
//! use protoactor_actor::prelude::*;
//!
//! struct Greeter;
//! struct Hello(String);
//!
//! impl Actor for Greeter {
//!     async fn receive(&mut self, ctx: &mut Context) -> ActorResult {
//!         if let Some(Hello(name)) = ctx.message::<Hello>() {
//!             let reply = format!("hello, {name}");
//!             ctx.respond(reply);
//!         }
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> Result<(), Error> {
//! let system = ActorSystem::new();
//! let greeter = system.root().spawn(Props::from_producer(|| Greeter));
//! let reply: String = system
//!     .root()
//!     .request_future(&greeter, Hello("world".into()), Duration::from_secs(1))
//!     .await?;
//! assert_eq!(reply, "hello, world");
//! system.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! The pieces:
//! - [`ActorSystem`]: registry, [`EventStream`], dead letters, [`RootContext`], [`Scheduler`].
//! - [`Props`]: producer, [`MailboxKind`], supervisor strategy, middleware, throughput.
//! - [`Context`]: what an actor sees and does while handling a message.
//! - [`supervision`]: strategies and directives for failing children.
//! - [`router`]: group and pool routers (round-robin, random, broadcast, consistent hash).
//!
//! Delivery guarantees are in `docs/semantics.md` at the repository root.

mod actor;
mod any_message;
mod cell;
mod context;
mod error;
mod event_stream;
mod future;
mod lane;
mod mailbox;
mod message;
pub mod middleware;
mod pid;
mod process;
mod props;
mod registry;
mod root;
pub mod router;
mod spin;
pub mod supervision;
mod system;
mod throttle;
mod timer;

/// Types generated from `protos/actor.proto`.
#[allow(missing_docs, unreachable_pub, missing_debug_implementations)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/actor.rs"));
    pub use self::Pid as PidProto;
}

pub use actor::{Actor, FnActor};
pub use context::{Context, Forwarded, Reentered, Taken};
pub use error::{ActorError, ActorResult, Error};
pub use event_stream::{EventStream, Subscription};
pub use future::{RequestFuture, ResponseFuture, StopFuture};
pub use lane::deliver_inline;
pub use mailbox::{MailboxKind, OverflowPolicy};
pub use message::{
    AnyMessage, DeadLetterResponse, DeliveryFailure, DeliveryFailureKind, Envelope, Failure, Internal, Message,
    MessageHeader, PoisonPill, ReceiveTimeout, Restarting, Started, Stopped, Stopping, SystemMessage, Terminated,
    TerminatedReason,
};
pub use pid::{LOCAL_ADDRESS, Pid};
pub use process::{AddressResolver, Process, ProcessRef};
pub use props::{DEFAULT_THROUGHPUT, Props};
pub use root::RootContext;
pub use supervision::{
    AllForOneStrategy, AlwaysRestartStrategy, Directive, ExponentialBackoffStrategy, OneForOneStrategy,
    SupervisorEvent, SupervisorStrategy,
};
pub use system::{ActorSystem, ActorSystemConfig, DeadLetterEvent};
pub use throttle::{Throttle, Valve};
pub use timer::{Scheduler, TimerHandle};

/// The everyday surface in one import.
pub mod prelude {
    pub use crate::{
        Actor, ActorError, ActorResult, ActorSystem, Context, Envelope, Error, MailboxKind, Message, OverflowPolicy,
        Pid, PoisonPill, Props, ReceiveTimeout, Restarting, RootContext, Started, Stopped, Stopping, Terminated,
    };
}
