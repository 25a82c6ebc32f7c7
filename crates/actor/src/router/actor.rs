//! The router actor: keeps the routee list, answers management messages and
//! forwards everything else according to its strategy.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::actor::Actor;
use crate::context::Context;
use crate::error::ActorResult;
use crate::message::{
    AnyMessage, Envelope, Message, MessageHeader, ReceiveTimeout, Restarting, Started, Stopped, Stopping, Terminated,
};
use crate::pid::Pid;
use crate::props::Props;

use super::hash::HashRing;
use super::messages::{AddRoutee, BroadcastMessage, GetRoutees, RemoveRoutee, Routees};

/// How a router picks the routee(s) for a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Strategy {
    RoundRobin,
    Random,
    Broadcast,
    ConsistentHash,
}

/// Where the routees come from.
#[derive(Clone)]
pub(crate) enum Source {
    /// Pids given by the user.
    Group(Vec<Pid>),
    /// `size` children spawned from `props` when the router starts.
    Pool { props: Props, size: usize },
}

/// Copies a message of one registered type (`None` if it is another type).
pub(crate) type Cloner = fn(&dyn Any) -> Option<AnyMessage>;

/// Extracts the hash key of a message of one registered type.
pub(crate) type KeyFn = Arc<dyn Fn(&dyn Any) -> Option<String> + Send + Sync>;

pub(crate) fn cloner_for<T: Message + Clone>(message: &dyn Any) -> Option<AnyMessage> {
    message.downcast_ref::<T>().map(|m| AnyMessage::new(m.clone()))
}

/// Everything needed to (re)create a router actor.
#[derive(Clone)]
pub(crate) struct RouterSpec {
    pub(crate) strategy: Strategy,
    pub(crate) source: Source,
    pub(crate) cloners: HashMap<TypeId, Cloner>,
    pub(crate) keys: HashMap<TypeId, KeyFn>,
    pub(crate) replicas: usize,
}

/// Virtual nodes per routee on a consistent-hash ring unless configured otherwise.
pub const DEFAULT_REPLICAS: usize = 100;

impl RouterSpec {
    pub(crate) fn new(strategy: Strategy, source: Source) -> Self {
        RouterSpec { strategy, source, cloners: HashMap::new(), keys: HashMap::new(), replicas: DEFAULT_REPLICAS }
    }

    pub(crate) fn into_props(self) -> Props {
        let spec = Arc::new(self);
        Props::from_producer(move || RouterActor::new(spec.clone()))
    }
}

impl fmt::Debug for RouterSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("RouterSpec");
        d.field("strategy", &self.strategy);
        match &self.source {
            Source::Group(pids) => d.field("group", pids),
            Source::Pool { size, .. } => d.field("pool_size", size),
        };
        d.field("clonable_types", &self.cloners.len())
            .field("keyed_types", &self.keys.len())
            .field("replicas", &self.replicas)
            .finish()
    }
}

/// The actor behind every router. A restart (only possible through a panic in
/// a user-supplied key extractor or `Clone` impl) returns it to its initial
/// configuration.
struct RouterActor {
    spec: Arc<RouterSpec>,
    routees: Vec<Pid>,
    next: usize,
    /// Built on first use after the routees change.
    ring: Option<HashRing>,
}

impl Actor for RouterActor {
    async fn receive(&mut self, ctx: &mut Context) -> ActorResult {
        self.handle(ctx);
        Ok(())
    }
}

impl RouterActor {
    fn new(spec: Arc<RouterSpec>) -> Self {
        RouterActor { spec, routees: Vec::new(), next: 0, ring: None }
    }

    fn handle(&mut self, ctx: &mut Context) {
        let Some(envelope) = ctx.envelope.as_ref() else { return };
        let message: &dyn Any = &*envelope.message;
        if message.is::<Started>() {
            self.start(ctx);
        } else if let Some(t) = message.downcast_ref::<Terminated>() {
            let who = t.who.clone();
            self.forget(&who);
        } else if let Some(AddRoutee(pid)) = message.downcast_ref::<AddRoutee>() {
            let pid = pid.clone();
            self.add(ctx, pid);
        } else if let Some(RemoveRoutee(pid)) = message.downcast_ref::<RemoveRoutee>() {
            let pid = pid.clone();
            self.remove(ctx, &pid);
        } else if message.is::<GetRoutees>() {
            ctx.respond(Routees(self.routees.clone()));
        } else if message.is::<BroadcastMessage>() {
            self.broadcast_wrapped(ctx);
        } else if message.is::<Stopping>()
            || message.is::<Stopped>()
            || message.is::<Restarting>()
            || message.is::<ReceiveTimeout>()
        {
            // Lifecycle of the router itself: nothing to route.
        } else {
            self.route(ctx);
        }
    }

    fn start(&mut self, ctx: &mut Context) {
        match &self.spec.source {
            Source::Group(pids) => {
                for pid in pids.clone() {
                    self.add(ctx, pid);
                }
            }
            Source::Pool { props, size } => {
                let dead_letters = ctx.system().dead_letter_pid();
                for _ in 0..*size {
                    let pid = ctx.spawn(props.clone());
                    // Spawning fails only while the system shuts down.
                    if pid != dead_letters {
                        self.routees.push(pid);
                    }
                }
                self.ring = None;
            }
        }
    }

    fn add(&mut self, ctx: &mut Context, pid: Pid) {
        if self.routees.contains(&pid) {
            return;
        }
        ctx.watch(&pid);
        self.routees.push(pid);
        self.ring = None;
    }

    fn remove(&mut self, ctx: &mut Context, pid: &Pid) {
        if !self.forget(pid) {
            return;
        }
        ctx.unwatch(pid);
        let is_child = ctx.extras.as_ref().is_some_and(|e| e.children.contains(pid));
        if is_child {
            ctx.poison(pid);
        }
    }

    /// Drops `pid` from the routees; true if it was one.
    fn forget(&mut self, pid: &Pid) -> bool {
        match self.routees.iter().position(|r| r == pid) {
            Some(index) => {
                self.routees.remove(index);
                self.ring = None;
                true
            }
            None => false,
        }
    }

    fn route(&mut self, ctx: &mut Context) {
        if self.routees.is_empty() {
            return dead_letter(ctx);
        }
        let target = match self.spec.strategy {
            Strategy::RoundRobin => {
                let index = self.next % self.routees.len();
                self.next = self.next.wrapping_add(1);
                index
            }
            Strategy::Random => fastrand::usize(..self.routees.len()),
            Strategy::ConsistentHash => match self.hash_target(ctx) {
                Some(index) => index,
                None => return dead_letter(ctx),
            },
            Strategy::Broadcast => return self.broadcast(ctx),
        };
        ctx.forward(&self.routees[target]);
    }

    fn hash_target(&mut self, ctx: &Context) -> Option<usize> {
        let envelope = ctx.envelope.as_ref()?;
        let message: &dyn Any = &*envelope.message;
        let Some(extract) = self.spec.keys.get(&message.type_id()) else {
            tracing::warn!(
                router = %ctx.self_pid,
                message = envelope.type_name(),
                "consistent-hash router has no key extractor for this message type \
                 (register one with `.with_key::<T>(..)`); sending it to dead letters"
            );
            return None;
        };
        let key = extract(message)?;
        let ring = self.ring.get_or_insert_with(|| HashRing::new(&self.routees, self.spec.replicas));
        ring.lookup(key.as_bytes())
    }

    fn broadcast(&mut self, ctx: &mut Context) {
        if self.routees.len() == 1 {
            return ctx.forward(&self.routees[0]);
        }
        let Some(envelope) = ctx.envelope.as_ref() else { return };
        let message: &dyn Any = &*envelope.message;
        let Some(clone) = self.spec.cloners.get(&message.type_id()) else {
            tracing::warn!(
                router = %ctx.self_pid,
                message = envelope.type_name(),
                "broadcast router cannot copy this message type (register it with `.with_clone::<T>()` \
                 or wrap it in `BroadcastMessage`); sending it to dead letters"
            );
            return dead_letter(ctx);
        };
        let Some((last, rest)) = self.routees.split_last() else { return dead_letter(ctx) };
        let Some(envelope) = ctx.envelope.take() else { return };
        let (message, sender, header) = envelope.into_parts();
        for routee in rest {
            if let Some(copy) = clone(&*message) {
                ctx.send_envelope(routee, envelope_of(copy, &sender, &header));
            }
        }
        ctx.send_envelope(last, envelope_of(message, &sender, &header));
    }

    fn broadcast_wrapped(&mut self, ctx: &mut Context) {
        let Some(wrapped) = ctx.take_message::<BroadcastMessage>() else { return };
        let sender = ctx.sender().cloned();
        let header = ctx.header().cloned();
        match self.routees.split_last() {
            Some((last, rest)) => {
                for routee in rest {
                    ctx.send_envelope(routee, envelope_of(wrapped.copy(), &sender, &header));
                }
                ctx.send_envelope(last, envelope_of(wrapped.into_inner(), &sender, &header));
            }
            None => {
                let envelope = envelope_of(wrapped.into_inner(), &sender, &header);
                ctx.system.dead_letter(&ctx.self_pid, envelope);
            }
        }
    }
}

fn envelope_of(message: AnyMessage, sender: &Option<Pid>, header: &Option<MessageHeader>) -> Envelope {
    let envelope = Envelope::from_boxed(message).with_sender(sender.clone());
    match header {
        Some(h) => envelope.with_header(h.clone()),
        None => envelope,
    }
}

/// Hands the current message to dead letters; a waiting requester is told at once.
fn dead_letter(ctx: &mut Context) {
    if let Some(envelope) = ctx.envelope.take() {
        ctx.system.dead_letter(&ctx.self_pid, envelope);
    }
}
