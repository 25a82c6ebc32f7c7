//! The `$gossip` actor: receives other members' gossip.

use std::fmt;
use std::sync::Arc;

use protoactor_actor::{Actor, ActorResult, Context};

use super::gossiper::Shared;
use crate::proto::GossipRequest;

/// Answers every [`GossipRequest`] with a `GossipResponse` (rejected when
/// the sender is blocked or not a member).
pub(super) struct GossipActor {
    shared: Arc<Shared>,
}

impl fmt::Debug for GossipActor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GossipActor").field("member", &self.shared.me).finish()
    }
}

impl GossipActor {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        GossipActor { shared }
    }
}

impl Actor for GossipActor {
    async fn receive(&mut self, ctx: &mut Context) -> ActorResult {
        if let Some(request) = ctx.take_message::<GossipRequest>() {
            let response = self.shared.on_request(request);
            ctx.respond(response);
        }
        Ok(())
    }
}
