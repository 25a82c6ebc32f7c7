//! [`Props`]: how to make and run an actor.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use crate::actor::{Actor, FnActor};
use crate::context::Context;
use crate::error::{ActorResult, Error};
use crate::mailbox::MailboxKind;
use crate::middleware::{ReceiverMiddleware, SenderMiddleware, SpawnMiddleware};
use crate::pid::Pid;
use crate::supervision::SupervisorStrategy;
use crate::system::ActorSystem;

/// Default number of user messages an actor handles before yielding its thread.
pub const DEFAULT_THROUGHPUT: usize = 300;

/// Creates the process for one spawn; typed by the actor inside.
pub(crate) trait ActorFactory: Send + Sync + 'static {
    fn spawn(&self, system: &ActorSystem, props: &Props, id: &str, parent: Option<Pid>) -> Result<Pid, Error>;
}

struct TypedFactory<A> {
    producer: Arc<dyn Fn() -> A + Send + Sync>,
}

impl<A: Actor> ActorFactory for TypedFactory<A> {
    fn spawn(&self, system: &ActorSystem, props: &Props, id: &str, parent: Option<Pid>) -> Result<Pid, Error> {
        crate::cell::spawn_actor(system, props, id, parent, self.producer.clone())
    }
}

/// `align(128)`: one `Props` usually serves many actors, and its `Arc`
/// count, bumped on every spawn, must not share a line with the fields each
/// activation reads.
#[derive(Clone)]
#[repr(align(128))]
pub(crate) struct PropsInner {
    factory: Arc<dyn ActorFactory>,
    pub(crate) mailbox: MailboxKind,
    pub(crate) supervisor: Option<Arc<dyn SupervisorStrategy>>,
    pub(crate) receiver_middleware: Vec<Arc<dyn ReceiverMiddleware>>,
    pub(crate) sender_middleware: Vec<Arc<dyn SenderMiddleware>>,
    pub(crate) spawn_middleware: Vec<Arc<dyn SpawnMiddleware>>,
    pub(crate) throughput: usize,
    /// Values the actor reads with [`Context::extension`] (one per type).
    extensions: Vec<Arc<dyn Any + Send + Sync>>,
}

/// A recipe for spawning actors: the producer that makes the actor (again on
/// every restart), its mailbox, the strategy that supervises its children,
/// middleware, and how many messages it handles per turn.
///
/// Props are cheap to clone and reusable for any number of spawns.
#[derive(Clone)]
pub struct Props(Arc<PropsInner>);

impl fmt::Debug for Props {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Props")
            .field("mailbox", &self.0.mailbox)
            .field("throughput", &self.0.throughput)
            .field("receiver_middleware", &self.0.receiver_middleware.len())
            .field("sender_middleware", &self.0.sender_middleware.len())
            .field("spawn_middleware", &self.0.spawn_middleware.len())
            .finish()
    }
}

impl Props {
    /// Props whose actors are made by `producer`; it is called again for each
    /// restart, so the new instance starts from fresh state.
    pub fn from_producer<A: Actor>(producer: impl Fn() -> A + Send + Sync + 'static) -> Self {
        Props(Arc::new(PropsInner {
            factory: Arc::new(TypedFactory::<A> { producer: Arc::new(producer) }),
            mailbox: MailboxKind::Unbounded,
            supervisor: None,
            receiver_middleware: Vec::new(),
            sender_middleware: Vec::new(),
            spawn_middleware: Vec::new(),
            throughput: DEFAULT_THROUGHPUT,
            extensions: Vec::new(),
        }))
    }

    /// Props for an actor that is just a closure over `&mut Context`. Each
    /// instance (and each restart) gets a clone of `f`.
    pub fn from_fn<F>(f: F) -> Self
    where
        F: FnMut(&mut Context) -> ActorResult + Clone + Send + Sync + 'static,
    {
        Props::from_producer(move || FnActor(f.clone()))
    }

    fn edit(mut self, f: impl FnOnce(&mut PropsInner)) -> Self {
        f(Arc::make_mut(&mut self.0));
        self
    }

    /// Uses the given mailbox kind.
    pub fn with_mailbox(self, mailbox: MailboxKind) -> Self {
        self.edit(|p| p.mailbox = mailbox)
    }

    /// Supervises this actor's children with `strategy` (default:
    /// [`OneForOneStrategy::default`](crate::supervision::OneForOneStrategy)).
    pub fn with_supervisor(self, strategy: impl SupervisorStrategy) -> Self {
        self.edit(|p| p.supervisor = Some(Arc::new(strategy)))
    }

    /// Adds a receiver middleware layer (the first added runs outermost).
    pub fn with_receiver_middleware(self, middleware: impl ReceiverMiddleware) -> Self {
        self.edit(|p| p.receiver_middleware.push(Arc::new(middleware)))
    }

    /// Adds a sender middleware layer.
    pub fn with_sender_middleware(self, middleware: impl SenderMiddleware) -> Self {
        self.edit(|p| p.sender_middleware.push(Arc::new(middleware)))
    }

    /// Adds a spawn middleware layer.
    pub fn with_spawn_middleware(self, middleware: impl SpawnMiddleware) -> Self {
        self.edit(|p| p.spawn_middleware.push(Arc::new(middleware)))
    }

    /// How many user messages the actor handles before yielding its thread to
    /// other actors (default [`DEFAULT_THROUGHPUT`]; at least 1).
    pub fn with_throughput(self, throughput: usize) -> Self {
        self.edit(|p| p.throughput = throughput.max(1))
    }

    /// Attaches `value` for actors spawned from these props to read with
    /// [`Context::extension`]; replaces an earlier value of the same type.
    /// The cluster uses it to tell a grain its identity.
    pub fn with_extension<T: Any + Send + Sync>(self, value: T) -> Self {
        self.edit(|p| {
            p.extensions.retain(|e| !(**e).is::<T>());
            p.extensions.push(Arc::new(value));
        })
    }

    /// The value of type `T` attached with [`with_extension`](Self::with_extension).
    pub fn extension<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.0.extensions.iter().find_map(|e| e.downcast_ref::<T>())
    }

    /// The mailbox kind.
    pub fn mailbox(&self) -> MailboxKind {
        self.0.mailbox
    }

    /// The dispatcher throughput.
    pub fn throughput(&self) -> usize {
        self.0.throughput
    }

    pub(crate) fn inner(&self) -> &PropsInner {
        &self.0
    }

    pub(crate) fn factory(&self) -> &dyn ActorFactory {
        &*self.0.factory
    }
}
