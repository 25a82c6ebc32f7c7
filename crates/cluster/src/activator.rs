//! The cluster's activator: an actor on every member that spawns a grain of
//! a kind the member hosts when another member asks, so any identity
//! lookup can place grains on any member.

use protoactor_actor::prelude::*;
use tracing::Instrument;

use crate::cluster::Cluster;
use crate::error::Error;
use crate::identity::ClusterIdentity;
use crate::member::Member;
use crate::proto::{ActivationRequest, ActivationResponse};

/// The registered id of the activator on every member.
pub const ACTIVATOR: &str = "$cluster-activator";

pub(crate) struct Activator {
    pub(crate) cluster: Cluster,
}

fn response(result: Result<Pid, Error>) -> ActivationResponse {
    match result {
        Ok(pid) => ActivationResponse { pid: Some(pid.to_proto()), ..Default::default() },
        Err(e) => ActivationResponse {
            pid: None,
            failed: true,
            topology_hash: 0,
            invalid_identity: matches!(e, Error::IdentityBlocked { .. }),
            error: e.to_string(),
        },
    }
}

impl Actor for Activator {
    async fn receive(&mut self, ctx: &mut Context) -> ActorResult {
        if let Some(request) = ctx.take_message::<ActivationRequest>() {
            let result = match request.cluster_identity {
                Some(ci) => self.cluster.spawn_activation(&ci),
                None => Err(Error::Lookup("the activation request has no cluster identity".into())),
            };
            ctx.respond(response(result));
        }
        Ok(())
    }
}

/// Asks `member`'s activator to spawn `identity`; waits at most the
/// configured activation timeout.
pub(crate) async fn activate_remote(cluster: &Cluster, member: &Member, identity: &ClusterIdentity) -> Result<Pid, Error> {
    let target = Pid::new(member.address(), ACTIVATOR);
    let timeout = cluster.config().activation_timeout();
    let request = ActivationRequest {
        cluster_identity: Some(identity.clone()),
        request_id: String::new(),
        topology_hash: cluster.member_list().topology_hash(),
    };
    let span = tracing::debug_span!("remote activation", grain = %identity, member = %member.address());
    let answer = cluster
        .system()
        .root()
        .request_future::<ActivationResponse, _>(&target, request, timeout)
        .instrument(span)
        .await;
    match answer {
        Ok(r) if r.invalid_identity => {
            Err(Error::IdentityBlocked { kind: identity.kind.clone(), identity: identity.identity.clone() })
        }
        Ok(ActivationResponse { pid: Some(pid), failed: false, .. }) => Ok(Pid::from_proto(&pid)),
        Ok(r) => Err(Error::Activation { grain: identity.to_string(), member: member.address(), reason: r.error }),
        Err(e) => Err(Error::Activation {
            grain: identity.to_string(),
            member: member.address(),
            reason: format!("no answer within the activation timeout ({timeout:?}): {e}"),
        }),
    }
}
