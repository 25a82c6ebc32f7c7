//! The `$partition` actor on every member: the directory of identities this
//! member owns, the activations it hosts, and the handover between them
//! when the topology changes.
//!
//! One actor holds both roles so that, per member, activating and answering
//! a handover are sequential: once a member has answered a handover request
//! for topology H, it is on H, and it will activate only identities it owns
//! under H. A new owner takes requests only after every member answered.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use protoactor_actor::DeadLetterResponse;
use protoactor_actor::prelude::*;
use protoactor_cluster::proto::{
    Activation, ActivationRequest, ActivationResponse, ActivationTerminated, IdentityHandover, IdentityHandoverRequest,
    identity_handover_request,
};
use protoactor_cluster::{ActivationTerminating, ClusterHandle, ClusterIdentity, Error as ClusterError, Topology};

use crate::config::PartitionConfig;
use crate::handover::HandoverSink;
use crate::rendezvous::owner;

/// The registered id of the partition actor on every member.
pub const PARTITION_ACTOR: &str = "$partition";

/// A new topology, from the member list watcher.
#[derive(Debug, Clone)]
pub(crate) struct TopologyChanged(pub(crate) Arc<Topology>);

/// A graceful leave: stop activating; answer with the local activations.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Leave;

/// The answer to [`Leave`].
#[derive(Debug, Clone)]
pub(crate) struct LocalActivations(pub(crate) Vec<Pid>);

/// Local diagnostics: how many identities this member owns and hosts.
#[derive(Debug, Clone, Copy)]
pub struct PartitionStats;

/// The answer to [`PartitionStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionStatsResponse {
    /// Identities whose directory entry this member holds.
    pub owned: usize,
    /// Activations living on this member.
    pub hosted: usize,
    /// True while a handover is in progress.
    pub rebalancing: bool,
}

struct Rebalance {
    hash: u64,
    started: Instant,
    /// Address -> chunks received from that member.
    sinks: HashMap<String, HandoverSink>,
    /// Address -> number of the latest pull sent to it. A retry (timer or
    /// "not ready" answer) acts only if no newer pull went out since, so
    /// retries never multiply.
    attempts: HashMap<String, u32>,
}

pub(crate) struct PartitionActor {
    cluster: ClusterHandle,
    config: PartitionConfig,
    me: String,
    topology: Arc<Topology>,
    /// Hash of the last topology a rebalance started for. The topology read
    /// at construction is only a first guess for routing: the first
    /// [`TopologyChanged`] always rebalances, even for the same hash, or a
    /// member whose actor starts after the join would never pull the
    /// identities it owns.
    rebalanced: Option<u64>,
    /// Identities this member owns -> their activation (anywhere).
    directory: HashMap<ClusterIdentity, Pid>,
    /// Activations living on this member.
    local: HashMap<ClusterIdentity, Pid>,
    rebalance: Option<Rebalance>,
    /// Activation requests waiting for the rebalance to finish.
    parked: Vec<(ActivationRequest, Option<Pid>)>,
    leaving: bool,
}

fn failed(error: impl Into<String>, hash: u64) -> ActivationResponse {
    ActivationResponse { pid: None, failed: true, topology_hash: hash, invalid_identity: false, error: error.into() }
}

impl PartitionActor {
    pub(crate) fn new(cluster: ClusterHandle, config: PartitionConfig) -> Self {
        let me = cluster.id().to_string();
        let topology = cluster.member_list().topology();
        PartitionActor {
            cluster,
            config,
            me,
            topology,
            rebalanced: None,
            directory: HashMap::new(),
            local: HashMap::new(),
            rebalance: None,
            parked: Vec::new(),
            leaving: false,
        }
    }

    fn partition_of(address: &str) -> Pid {
        Pid::new(address, PARTITION_ACTOR)
    }

    // ----- activation -----

    fn activate(&mut self, ctx: &mut Context, request: ActivationRequest, reply_to: Option<Pid>) {
        let hash = self.topology.hash;
        let response = match request.cluster_identity.clone() {
            None => failed("the activation request has no cluster identity", hash),
            Some(ci) => {
                if let Some(pid) = self.directory.get(&ci) {
                    ActivationResponse { pid: Some(pid.to_proto()), topology_hash: hash, ..Default::default() }
                } else if self.leaving {
                    failed("the owner is leaving the cluster", hash)
                } else if self.rebalance.is_some() {
                    self.parked.push((request, reply_to));
                    return;
                } else {
                    match owner(&self.topology, &ci) {
                        None => failed(format!("no member hosts kind `{}`", ci.kind), hash),
                        Some(o) if o.id != self.me => {
                            failed(format!("{} is not the owner of {ci}; {} is", self.me, o.address()), hash)
                        }
                        Some(_) => self.spawn(&ci, hash),
                    }
                }
            }
        };
        if let Some(to) = reply_to {
            ctx.send(&to, response);
        }
    }

    fn spawn(&mut self, ci: &ClusterIdentity, hash: u64) -> ActivationResponse {
        match self.cluster.spawn_activation(ci) {
            Ok(pid) => {
                self.directory.insert(ci.clone(), pid.clone());
                self.local.insert(ci.clone(), pid.clone());
                ActivationResponse { pid: Some(pid.to_proto()), topology_hash: hash, ..Default::default() }
            }
            Err(ClusterError::IdentityBlocked { .. }) => ActivationResponse {
                invalid_identity: true,
                failed: true,
                topology_hash: hash,
                error: format!("kind `{}` refuses identity `{}`", ci.kind, ci.identity),
                pid: None,
            },
            Err(e) => failed(e.to_string(), hash),
        }
    }

    // ----- termination -----

    fn local_terminated(&mut self, ctx: &mut Context, event: &ActivationTerminating) {
        let ci = &event.identity;
        if self.local.get(ci).is_some_and(|p| p == &event.pid) {
            self.local.remove(ci);
        }
        self.forget(ci, &event.pid);
        // Owners elsewhere drop their entry; during a topology change the
        // owner is uncertain, so tell every member. Sent as a request: the
        // sender (this host's partition actor) marks it as the host's word.
        let message = ActivationTerminated { pid: Some(event.pid.to_proto()), cluster_identity: Some(ci.clone()) };
        for m in &self.topology.members {
            if m.id != self.me {
                ctx.request(&Self::partition_of(&m.address()), message.clone());
            }
        }
    }

    /// An activation is reported gone. From its host (after its `Stopped`
    /// ran) the entry is forgotten. From anyone else it is a hint: a request
    /// that met a dead letter, possibly while the activation is still
    /// stopping (unregistered, its `Stopped` hook not yet over), or a message
    /// dropped by a live one. Forgetting then would let a second activation
    /// start beside the first, so the host is asked; it answers as the host
    /// once the activation is really gone.
    fn terminated(&mut self, ctx: &mut Context, ci: ClusterIdentity, pid: Pid) {
        let from_host = ctx.sender().is_some_and(|s| s.id() == PARTITION_ACTOR && s.address() == pid.address());
        if from_host {
            return self.forget(&ci, &pid);
        }
        if pid.address() == ctx.system().address().as_ref() {
            if !self.local.get(&ci).is_some_and(|p| p == &pid) {
                // Hosted here and already gone: tell whoever asked.
                self.forget(&ci, &pid);
                if let Some(asker) = ctx.sender().cloned() {
                    let message = ActivationTerminated { pid: Some(pid.to_proto()), cluster_identity: Some(ci) };
                    ctx.request(&asker, message);
                }
            }
            // Still hosted: `local_terminated` tells everyone once it stopped.
            return;
        }
        if self.has_entry(&ci, &pid) {
            let message = ActivationTerminated { pid: Some(pid.to_proto()), cluster_identity: Some(ci) };
            ctx.request(&Self::partition_of(pid.address()), message);
        }
    }

    /// Whether the directory maps `ci` to this very activation.
    fn has_entry(&self, ci: &ClusterIdentity, pid: &Pid) -> bool {
        self.directory.get(ci).is_some_and(|p| p.id() == pid.id() && p.address() == pid.address())
    }

    fn forget(&mut self, ci: &ClusterIdentity, pid: &Pid) {
        if self.has_entry(ci, pid) {
            self.directory.remove(ci);
        }
    }

    // ----- topology change and handover -----

    fn topology_changed(&mut self, ctx: &mut Context, topology: Arc<Topology>) {
        if self.rebalanced == Some(topology.hash) && self.rebalance.is_none() && !topology.members.is_empty() {
            return;
        }
        self.rebalanced = Some(topology.hash);
        let alive: std::collections::HashSet<String> = topology.members.iter().map(|m| m.address()).collect();
        self.topology = topology;
        let (before, me) = (self.directory.len(), self.me.clone());
        let topology = self.topology.clone();
        // Activations on departed members are gone; identities now owned by
        // someone else move to that owner through its pull.
        self.directory
            .retain(|ci, pid| alive.contains(pid.address()) && owner(&topology, ci).is_some_and(|o| o.id == me));
        let span = tracing::info_span!("rebalance", member = %self.me, hash = topology.hash);
        let _guard = span.enter();
        tracing::debug!(dropped = before - self.directory.len(), "topology changed");
        if topology.member(&self.me).is_none() {
            // Not (or no longer) a member: nothing to own.
            self.rebalance = None;
            return;
        }
        // What this member hosts and now owns needs no message.
        let own: Vec<(ClusterIdentity, Pid)> = self
            .local
            .iter()
            .filter(|(ci, _)| owner(&topology, ci).is_some_and(|o| o.id == me))
            .map(|(ci, p)| (ci.clone(), p.clone()))
            .collect();
        for (ci, pid) in own {
            self.take_over(ctx, ci, pid);
        }
        let mut sinks = HashMap::new();
        for m in topology.members.iter().filter(|m| m.id != self.me) {
            sinks.insert(m.address(), HandoverSink::default());
        }
        self.rebalance =
            Some(Rebalance { hash: topology.hash, started: Instant::now(), sinks, attempts: HashMap::new() });
        let addresses: Vec<String> = topology.members.iter().filter(|m| m.id != self.me).map(|m| m.address()).collect();
        for address in addresses {
            self.pull(ctx, &address);
        }
        // A rebalance that cannot complete (a member that does not answer and
        // is not yet declared dead) must not park requests forever.
        let hash = topology.hash;
        ctx.reenter_after(
            tokio::time::sleep(self.config.rebalance_timeout),
            move |me: &mut PartitionActor, ctx, ()| {
                if me.rebalance.as_ref().is_some_and(|r| r.hash == hash) {
                    let missing: Vec<String> = me.rebalance.as_ref().map_or_else(Vec::new, |r| {
                        r.sinks.iter().filter(|(_, s)| !s.is_complete()).map(|(a, _)| a.clone()).collect()
                    });
                    tracing::warn!(
                        hash,
                        ?missing,
                        "rebalance timed out; continuing without the members that did not answer"
                    );
                    me.finish_rebalance(ctx);
                }
                Ok(())
            },
        );
        self.maybe_finish(ctx);
    }

    fn pull(&mut self, ctx: &mut Context, address: &str) {
        let Some(rebalance) = &mut self.rebalance else { return };
        let hash = rebalance.hash;
        let attempt = rebalance.attempts.entry(address.to_string()).or_insert(0);
        *attempt += 1;
        let attempt = *attempt;
        let request = IdentityHandoverRequest {
            current_topology: Some(identity_handover_request::Topology {
                topology_hash: hash,
                members: self.topology.members.clone(),
            }),
            address: self.cluster.address().to_string(),
            delta_topology: None,
        };
        ctx.request(&Self::partition_of(address), request);
        self.retry_pull_after(ctx, address, attempt, self.config.handover_request_timeout);
    }

    /// Pulls from `address` again after `delay`, unless its handover
    /// completed or another pull was sent meanwhile.
    fn retry_pull_after(&self, ctx: &mut Context, address: &str, attempt: u32, delay: Duration) {
        let Some(hash) = self.rebalance.as_ref().map(|r| r.hash) else { return };
        let address = address.to_string();
        ctx.reenter_after(tokio::time::sleep(delay), move |me: &mut PartitionActor, ctx, ()| {
            let due = me.rebalance.as_ref().is_some_and(|r| {
                r.hash == hash
                    && r.attempts.get(&address) == Some(&attempt)
                    && r.sinks.get(&address).is_some_and(|s| !s.is_complete())
            });
            if due {
                tracing::debug!(%address, attempt, "handover not complete; asking again");
                me.pull(ctx, &address);
            }
            Ok(())
        });
    }

    /// Answers a pull: the activations here that the requester owns under
    /// its topology, in chunks. If this member is not on that topology yet,
    /// says so (chunk 0) and the requester asks again.
    fn handover(&mut self, ctx: &mut Context, request: &IdentityHandoverRequest) {
        let Some(requester) = ctx.sender().cloned() else { return };
        let Some(theirs) = &request.current_topology else { return };
        if theirs.topology_hash != self.topology.hash {
            let not_ready = IdentityHandover {
                chunk_id: 0,
                r#final: true,
                topology_hash: self.topology.hash,
                ..Default::default()
            };
            ctx.request(&requester, not_ready);
            return;
        }
        let requester_member =
            self.topology.members.iter().find(|m| m.address() == request.address).map(|m| m.id.clone());
        let Some(requester_id) = requester_member else { return };
        let topology = self.topology.clone();
        let owned: Vec<Activation> = self
            .local
            .iter()
            .filter(|(ci, _)| owner(&topology, ci).is_some_and(|o| o.id == requester_id))
            .map(|(ci, pid)| Activation { pid: Some(pid.to_proto()), cluster_identity: Some(ci.clone()) })
            .collect();
        let total = owned.len();
        let size = self.config.handover_chunk_size.max(1);
        let chunks: Vec<&[Activation]> = if owned.is_empty() { vec![&[]] } else { owned.chunks(size).collect() };
        let n = chunks.len();
        for (i, chunk) in chunks.into_iter().enumerate() {
            let message = IdentityHandover {
                actors: chunk.to_vec(),
                chunk_id: i32::try_from(i + 1).unwrap_or(i32::MAX),
                r#final: i + 1 == n,
                topology_hash: topology.hash,
                skipped: 0,
                sent: i32::try_from(total).unwrap_or(i32::MAX),
            };
            ctx.request(&requester, message);
        }
        tracing::debug!(to = %request.address, activations = total, chunks = n, "handed over");
    }

    fn received_handover(&mut self, ctx: &mut Context, chunk: IdentityHandover) {
        let Some(from) = ctx.sender().map(|p| p.address().to_string()) else { return };
        let Some(rebalance) = &mut self.rebalance else { return };
        if chunk.topology_hash != rebalance.hash {
            if chunk.chunk_id == 0 {
                // The member is not on our topology yet; ask again shortly.
                let attempt = rebalance.attempts.get(&from).copied().unwrap_or(0);
                self.retry_pull_after(ctx, &from, attempt, Duration::from_millis(50));
            }
            return;
        }
        let Some(sink) = rebalance.sinks.get_mut(&from) else { return };
        if !sink.receive(chunk.chunk_id, chunk.r#final) {
            return;
        }
        for activation in chunk.actors {
            if let (Some(ci), Some(pid)) = (activation.cluster_identity, activation.pid) {
                self.take_over(ctx, ci, Pid::from_proto(&pid));
            }
        }
        self.maybe_finish(ctx);
    }

    fn take_over(&mut self, ctx: &mut Context, ci: ClusterIdentity, pid: Pid) {
        match self.directory.get(&ci) {
            None => {
                self.directory.insert(ci, pid);
            }
            Some(existing) if existing == &pid => {}
            Some(existing) => {
                // Two activations of one identity (views diverged while it was
                // activated): keep the one requests already go to.
                tracing::error!(grain = %ci, kept = %existing, stopped = %pid, "duplicate activation found in handover; stopping one");
                ctx.stop(&pid);
            }
        }
    }

    fn maybe_finish(&mut self, ctx: &mut Context) {
        if self.rebalance.as_ref().is_some_and(|r| r.sinks.values().all(HandoverSink::is_complete)) {
            self.finish_rebalance(ctx);
        }
    }

    fn finish_rebalance(&mut self, ctx: &mut Context) {
        if let Some(r) = self.rebalance.take() {
            tracing::debug!(hash = r.hash, owned = self.directory.len(), took = ?r.started.elapsed(), "rebalance complete");
        }
        for (request, reply_to) in std::mem::take(&mut self.parked) {
            self.activate(ctx, request, reply_to);
        }
    }
}

impl Actor for PartitionActor {
    async fn receive(&mut self, ctx: &mut Context) -> ActorResult {
        if let Some(request) = ctx.take_message::<ActivationRequest>() {
            let reply_to = ctx.sender().cloned();
            self.activate(ctx, request, reply_to);
        } else if let Some(chunk) = ctx.take_message::<IdentityHandover>() {
            self.received_handover(ctx, chunk);
        } else if let Some(request) = ctx.take_message::<IdentityHandoverRequest>() {
            self.handover(ctx, &request);
        } else if let Some(TopologyChanged(t)) = ctx.take_message::<TopologyChanged>() {
            self.topology_changed(ctx, t);
        } else if let Some(event) = ctx.take_message::<ActivationTerminating>() {
            self.local_terminated(ctx, &event);
        } else if let Some(t) = ctx.take_message::<ActivationTerminated>() {
            if let (Some(ci), Some(pid)) = (t.cluster_identity, t.pid) {
                self.terminated(ctx, ci, Pid::from_proto(&pid));
            }
        } else if ctx.message_is::<Leave>() {
            self.leaving = true;
            let pids: Vec<Pid> = self.local.values().cloned().collect();
            for (request, reply_to) in std::mem::take(&mut self.parked) {
                self.activate(ctx, request, reply_to);
            }
            ctx.respond(LocalActivations(pids));
        } else if ctx.message_is::<PartitionStats>() {
            ctx.respond(PartitionStatsResponse {
                owned: self.directory.len(),
                hosted: self.local.len(),
                rebalancing: self.rebalance.is_some(),
            });
        } else if ctx.message_is::<DeadLetterResponse>() {
            // A pull to a member that is gone; the topology change that
            // removes it restarts the rebalance.
        }
        Ok(())
    }
}
