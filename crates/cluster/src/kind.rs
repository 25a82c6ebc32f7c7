//! [`Kind`]: a named recipe for virtual actors, and what the cluster wraps
//! around every activation of it.

use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use protoactor_actor::middleware::{ReceiveNext, ReceiverMiddleware};
use protoactor_actor::prelude::*;

use crate::cluster::Cluster;
use crate::identity::ClusterIdentity;

type InitHook = Arc<dyn Fn(&mut Context, &ClusterIdentity) + Send + Sync>;
type IdentityFilter = Arc<dyn Fn(&ClusterIdentity) -> bool + Send + Sync>;

/// A kind of virtual actor: the props its activations are spawned from,
/// under a name every member agrees on.
///
/// ```
/// use std::time::Duration;
/// use protoactor_actor::prelude::*;
/// use protoactor_cluster::Kind;
///
/// let kind = Kind::new("counter", Props::from_fn(|_ctx| Ok(())))
///     .with_idle_timeout(Duration::from_secs(60));
/// assert_eq!(kind.name(), "counter");
/// ```
#[derive(Clone)]
pub struct Kind {
    pub(crate) name: String,
    pub(crate) props: Props,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) init: Option<InitHook>,
    pub(crate) filter: Option<IdentityFilter>,
}

impl fmt::Debug for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kind")
            .field("name", &self.name)
            .field("idle_timeout", &self.idle_timeout)
            .field("init", &self.init.is_some())
            .field("filter", &self.filter.is_some())
            .finish()
    }
}

impl Kind {
    /// Activations of kind `name` are spawned from `props`.
    pub fn new(name: impl Into<String>, props: Props) -> Self {
        Kind { name: name.into(), props, idle_timeout: None, init: None, filter: None }
    }

    /// Passivates an activation (stops it; its `Stopping`/`Stopped` run)
    /// once it has received no message for `timeout`. The next message to
    /// its identity activates it again, with fresh state.
    pub fn with_idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = Some(timeout);
        self
    }

    /// Runs `hook` when an activation starts, before the actor sees `Started`.
    pub fn with_init(mut self, hook: impl Fn(&mut Context, &ClusterIdentity) + Send + Sync + 'static) -> Self {
        self.init = Some(Arc::new(hook));
        self
    }

    /// Only identities for which `filter` returns true are activated; others
    /// fail at once with [`Error::IdentityBlocked`](crate::Error::IdentityBlocked).
    pub fn with_identity_filter(mut self, filter: impl Fn(&ClusterIdentity) -> bool + Send + Sync + 'static) -> Self {
        self.filter = Some(Arc::new(filter));
        self
    }

    /// The kind's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The props activations are spawned from.
    pub fn props(&self) -> &Props {
        &self.props
    }
}

/// A kind registered on a running member: its props wrapped with the
/// cluster's middleware, and a count of live activations for the heartbeat.
pub(crate) struct ActivatedKind {
    pub(crate) kind: Kind,
    pub(crate) props: Props,
    pub(crate) count: Arc<AtomicI64>,
}

impl ActivatedKind {
    pub(crate) fn new(kind: Kind) -> Self {
        let count = Arc::new(AtomicI64::new(0));
        let middleware =
            GrainMiddleware { count: count.clone(), idle_timeout: kind.idle_timeout, init: kind.init.clone() };
        let props = kind.props.clone().with_receiver_middleware(middleware);
        ActivatedKind { kind, props, count }
    }
}

/// Published on the local event stream when an activation stops, so the
/// identity lookup can forget it and tell the owners.
#[derive(Debug, Clone)]
pub struct ActivationTerminating {
    /// The activation that stopped.
    pub pid: Pid,
    /// Its identity.
    pub identity: ClusterIdentity,
}

/// What a grain can ask its context about the cluster.
pub trait GrainContext {
    /// The identity of this virtual actor (`None` for plain actors).
    fn cluster_identity(&self) -> Option<&ClusterIdentity>;
    /// The cluster this virtual actor lives in (`None` for plain actors).
    fn cluster(&self) -> Option<&Cluster>;
}

impl GrainContext for Context {
    fn cluster_identity(&self) -> Option<&ClusterIdentity> {
        self.extension::<ClusterIdentity>()
    }

    fn cluster(&self) -> Option<&Cluster> {
        self.extension::<Cluster>()
    }
}

struct GrainMiddleware {
    count: Arc<AtomicI64>,
    idle_timeout: Option<Duration>,
    init: Option<InitHook>,
}

impl ReceiverMiddleware for GrainMiddleware {
    fn receive<'a>(&'a self, ctx: &'a mut Context, next: ReceiveNext<'a>) -> BoxFuture<'a, ActorResult> {
        Box::pin(async move {
            if ctx.message_is::<Started>() {
                self.count.fetch_add(1, Ordering::Relaxed);
                if let Some(idle) = self.idle_timeout {
                    ctx.set_receive_timeout(idle);
                }
                if let (Some(init), Some(identity)) = (&self.init, ctx.cluster_identity().cloned()) {
                    init(ctx, &identity);
                }
                return next.run(ctx).await;
            }
            if ctx.message_is::<ReceiveTimeout>() && self.idle_timeout.is_some() {
                let result = next.run(ctx).await;
                tracing::debug!(grain = ?ctx.cluster_identity().map(|i| i.to_string()), "passivating idle activation");
                let me = ctx.self_pid().clone();
                ctx.stop(&me);
                return result;
            }
            if ctx.message_is::<Restarting>() {
                self.count.fetch_sub(1, Ordering::Relaxed);
                return next.run(ctx).await;
            }
            if ctx.message_is::<Stopped>() {
                // The lookup must hear of the stop even if the grain's own
                // `Stopped` panics: until then the identity stays taken.
                let result = AssertUnwindSafe(next.run(ctx)).catch_unwind().await;
                self.count.fetch_sub(1, Ordering::Relaxed);
                if let Some(identity) = ctx.cluster_identity().cloned() {
                    let pid = ctx.self_pid().clone();
                    if let Some(cluster) = ctx.cluster() {
                        cluster.pid_cache().remove_by_value(&identity.identity, &identity.kind, &pid);
                        cluster.forget_local_activation(&identity, &pid);
                    }
                    tracing::debug!(grain = %identity, "activation stopped");
                    ctx.system().event_stream().publish(ActivationTerminating { pid, identity });
                }
                return result.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            }
            next.run(ctx).await
        })
    }
}
