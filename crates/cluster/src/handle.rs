//! [`ClusterHandle`]: what a provider or identity lookup may touch.

use std::fmt;
use std::sync::Arc;

use protoactor_actor::prelude::*;

use crate::activator;
use crate::cluster::Cluster;
use crate::config::ClusterConfig;
use crate::error::Error;
use crate::identity::ClusterIdentity;
use crate::member::Member;
use crate::member_list::MemberList;

/// The part of a [`Cluster`] that plug-ins (providers, identity lookups)
/// receive: the member list, this member, the configuration, the actor
/// system and activation. The pid cache, gossip and block-list internals stay
/// with the cluster, so a contributor sees at once what a plug-in may use.
///
/// Cheap to clone.
#[derive(Clone)]
pub struct ClusterHandle {
    cluster: Cluster,
}

impl fmt::Debug for ClusterHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterHandle").field("name", &self.name()).field("id", &self.id()).finish()
    }
}

impl ClusterHandle {
    pub(crate) fn new(cluster: &Cluster) -> Self {
        ClusterHandle { cluster: cluster.clone() }
    }

    /// The cluster name.
    pub fn name(&self) -> &str {
        self.cluster.name()
    }

    /// This member's id (its actor system id, new on every process start).
    pub fn id(&self) -> &str {
        self.cluster.id()
    }

    /// This member's remote address (`host:port`).
    pub fn address(&self) -> Arc<str> {
        self.cluster.address()
    }

    /// This member as providers register it: address, id, kinds (none for a client).
    pub fn self_member(&self) -> Member {
        self.cluster.self_member()
    }

    /// True once the member or client started shutting down.
    pub fn is_stopping(&self) -> bool {
        self.cluster.is_stopping()
    }

    /// True if started as a client (hosts no kinds).
    pub fn is_client(&self) -> bool {
        self.cluster.is_client()
    }

    /// The membership: providers report topologies to it, lookups read it.
    pub fn member_list(&self) -> &MemberList {
        self.cluster.member_list()
    }

    /// The actor system this member runs on.
    pub fn system(&self) -> &ActorSystem {
        self.cluster.system()
    }

    /// The cluster configuration.
    pub fn config(&self) -> &ClusterConfig {
        self.cluster.config()
    }

    /// True if this member hosts `kind`.
    pub fn hosts_kind(&self, kind: &str) -> bool {
        self.cluster.hosts_kind(kind)
    }

    /// Spawns an activation of `identity` on this member (the kind's props,
    /// with the identity and the cluster in the grain's context).
    ///
    /// Fails with [`Error::UnknownKind`] if this member does not host the
    /// kind, [`Error::IdentityBlocked`] if the kind refuses the identity, and
    /// [`Error::NotRunning`] while the member is leaving.
    pub fn spawn_activation(&self, identity: &ClusterIdentity) -> Result<Pid, Error> {
        self.cluster.spawn_activation(identity)
    }

    /// Activates `identity` on `member` (this one or another that hosts the
    /// kind) through the cluster's activator, waiting at most
    /// [`ClusterConfig::activation_timeout`]. Every member runs the
    /// activator, so any lookup can place a grain anywhere.
    pub async fn activate(&self, member: &Member, identity: &ClusterIdentity) -> Result<Pid, Error> {
        if member.id == self.id() {
            return self.spawn_activation(identity);
        }
        activator::activate_remote(&self.cluster, member, identity).await
    }

    /// The activations living on this member.
    pub fn local_activations(&self) -> Vec<(ClusterIdentity, Pid)> {
        self.cluster.local_activations()
    }
}
