//! [`PartitionIdentityLookup`]: the `IdentityLookup` implementation.

use std::fmt;
use std::sync::OnceLock;

use futures_util::future::BoxFuture;
use parking_lot::Mutex;
use protoactor_actor::Subscription;
use protoactor_actor::prelude::*;
use protoactor_cluster::proto::{ActivationRequest, ActivationResponse, ActivationTerminated};
use protoactor_cluster::{ActivationTerminating, ClusterHandle, ClusterIdentity, Error, IdentityLookup};

use crate::actor::{Leave, LocalActivations, PARTITION_ACTOR, PartitionActor, TopologyChanged};
use crate::config::PartitionConfig;
use crate::rendezvous::owner;

struct Running {
    cluster: ClusterHandle,
    actor: Option<Pid>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    subscription: Option<Subscription>,
}

/// The default identity lookup: every identity has an owner member, chosen
/// by rendezvous hashing over the members that host its kind. The owner
/// activates the grain on first request (on itself) and remembers its pid;
/// any member or client finds the owner by hashing, with no shared store.
///
/// When the topology changes, grains stay where they are and only their
/// directory entries move: each new owner pulls, from every member, the
/// activations it now owns, and holds requests until it has them all, so an
/// identity is not activated a second time. Activations on a member that
/// left are dropped everywhere and activated again on next request.
///
/// ```no_run
/// use protoactor_cluster::{ClusterConfig, InMemoryAgent, InMemoryProvider};
/// use protoactor_identity_lookup_partition::PartitionIdentityLookup;
///
/// let agent = InMemoryAgent::new();
/// let config = ClusterConfig::new("demo", InMemoryProvider::new(&agent), PartitionIdentityLookup::new());
/// # let _ = config;
/// ```
pub struct PartitionIdentityLookup {
    config: PartitionConfig,
    running: OnceLock<Mutex<Running>>,
}

impl fmt::Debug for PartitionIdentityLookup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartitionIdentityLookup").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Default for PartitionIdentityLookup {
    fn default() -> Self {
        Self::new()
    }
}

impl PartitionIdentityLookup {
    /// With default settings.
    pub fn new() -> Self {
        Self::with_config(PartitionConfig::default())
    }

    /// With `config`.
    pub fn with_config(config: PartitionConfig) -> Self {
        PartitionIdentityLookup { config, running: OnceLock::new() }
    }

    fn cluster(&self) -> Result<ClusterHandle, Error> {
        self.running
            .get()
            .map(|r| r.lock().cluster.clone())
            .ok_or_else(|| Error::Lookup("the partition lookup is not set up; start the cluster first".into()))
    }
}

impl IdentityLookup for PartitionIdentityLookup {
    fn setup<'a>(
        &'a self,
        cluster: &'a ClusterHandle,
        _kinds: &'a [String],
        is_client: bool,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let mut running = Running { cluster: cluster.clone(), actor: None, tasks: Vec::new(), subscription: None };
            if !is_client {
                let system = cluster.system();
                let (c, config) = (cluster.clone(), self.config.clone());
                let pid = system
                    .root()
                    .spawn_named(
                        Props::from_producer(move || PartitionActor::new(c.clone(), config.clone())),
                        PARTITION_ACTOR,
                    )
                    .map_err(|e| Error::Lookup(format!("could not start the partition actor: {e}")))?;
                // Topology changes and local activation stops reach the actor
                // as messages, in order with everything else it handles.
                let mut topology = cluster.member_list().subscribe();
                let root = system.root();
                let target = pid.clone();
                running.tasks.push(system.runtime().spawn(async move {
                    loop {
                        let t = topology.borrow_and_update().clone();
                        root.send(&target, TopologyChanged(t));
                        if topology.changed().await.is_err() {
                            return;
                        }
                    }
                }));
                let root = system.root();
                let target = pid.clone();
                running.subscription = Some(
                    system.event_stream().subscribe::<ActivationTerminating>(move |e| root.send(&target, e.clone())),
                );
                running.actor = Some(pid);
            }
            self.running.set(Mutex::new(running)).map_err(|_| Error::Lookup("set up twice".into()))
        })
    }

    fn get<'a>(&'a self, identity: &'a ClusterIdentity) -> BoxFuture<'a, Result<Option<Pid>, Error>> {
        Box::pin(async move {
            let cluster = self.cluster()?;
            let topology = cluster.member_list().topology();
            let Some(owner) = owner(&topology, identity) else { return Ok(None) };
            let target = Pid::new(owner.address(), PARTITION_ACTOR);
            let request = ActivationRequest {
                cluster_identity: Some(identity.clone()),
                request_id: String::new(),
                topology_hash: topology.hash,
            };
            let response = cluster
                .system()
                .root()
                .request_future::<ActivationResponse, _>(&target, request, self.config.get_pid_timeout)
                .await;
            match response {
                Ok(r) if r.invalid_identity => {
                    Err(Error::IdentityBlocked { kind: identity.kind.clone(), identity: identity.identity.clone() })
                }
                Ok(ActivationResponse { pid: Some(pid), failed: false, .. }) => Ok(Some(Pid::from_proto(&pid))),
                Ok(r) => {
                    tracing::debug!(grain = %identity, owner = %target, error = %r.error, "activation not available");
                    Ok(None)
                }
                Err(e) => {
                    tracing::debug!(grain = %identity, owner = %target, error = %e, "owner did not answer");
                    Ok(None)
                }
            }
        })
    }

    fn remove_pid<'a>(&'a self, identity: &'a ClusterIdentity, pid: &'a Pid) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let cluster = self.cluster()?;
            let topology = cluster.member_list().topology();
            if let Some(owner) = owner(&topology, identity) {
                let message =
                    ActivationTerminated { pid: Some(pid.to_proto()), cluster_identity: Some(identity.clone()) };
                cluster.system().root().send(&Pid::new(owner.address(), PARTITION_ACTOR), message);
            }
            Ok(())
        })
    }

    fn shutdown(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            let Some(running) = self.running.get() else { return Ok(()) };
            let (cluster, actor) = {
                let r = running.lock();
                (r.cluster.clone(), r.actor.clone())
            };
            if let Some(actor) = actor {
                let root = cluster.system().root();
                let timeout = self.config.passivation_timeout;
                // Passivate: queued messages are handled, stop hooks run, and
                // owners are told each activation is gone.
                if let Ok(LocalActivations(pids)) = root.request_future(&actor, Leave, timeout).await {
                    let stops = pids.iter().map(|p| root.poison_future(p));
                    if tokio::time::timeout(timeout, futures_util::future::join_all(stops)).await.is_err() {
                        tracing::warn!("some activations did not stop in time");
                    }
                    tracing::info!(passivated = pids.len(), "local activations passivated");
                }
                let _ = root.poison_future(&actor).await;
            }
            let mut r = running.lock();
            for task in r.tasks.drain(..) {
                task.abort();
            }
            r.subscription.take();
            Ok(())
        })
    }
}
