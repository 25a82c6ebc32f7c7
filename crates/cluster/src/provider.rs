//! [`ClusterProvider`]: where membership comes from.
//!
//! # Writing a provider
//!
//! A provider connects a member to some source of truth about who is in the
//! cluster (a registry server, a peer list, an orchestrator) and reports
//! what it sees. The contract:
//!
//! * [`start_member`](ClusterProvider::start_member) registers this member
//!   under [`ClusterHandle::self_member`] — its id is the actor system id, new on
//!   every process start — then keeps the registration alive (leases, TTL
//!   checks, heartbeats) and watches the registry.
//! * Whenever its view changes, it calls
//!   [`MemberList::update_cluster_topology`](crate::MemberList::update_cluster_topology)
//!   with the **full** list of healthy members of
//!   [`ClusterHandle::name`], itself included. Never deltas: the member list
//!   computes joins and leaves, blocks members that left, and ignores members
//!   already blocked.
//! * [`start_client`](ClusterProvider::start_client) only watches: a client
//!   is never registered and hosts no kinds.
//! * [`shutdown`](ClusterProvider::shutdown) stops watching; `graceful`
//!   deregisters at once, otherwise the registration is left to expire (as
//!   for a process that died).
//! * A failing backend is logged and retried with backoff; it must not
//!   crash the member or report an empty cluster it did not see.
//!
//! Return from `start_member` once registered; the cluster then waits for
//! this member to appear in a reported topology.

use futures_util::future::BoxFuture;

use crate::handle::ClusterHandle;
use crate::error::Error;

/// Where membership comes from; see the [module docs](self) for the contract.
pub trait ClusterProvider: Send + Sync + 'static {
    /// Registers this member and starts reporting the membership.
    fn start_member<'a>(&'a self, cluster: &'a ClusterHandle) -> BoxFuture<'a, Result<(), Error>>;
    /// Starts reporting the membership without registering.
    fn start_client<'a>(&'a self, cluster: &'a ClusterHandle) -> BoxFuture<'a, Result<(), Error>>;
    /// Stops; deregisters at once if `graceful`.
    fn shutdown(&self, graceful: bool) -> BoxFuture<'_, Result<(), Error>>;
}
