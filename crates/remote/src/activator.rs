//! The `$activator`: spawns registered kinds on behalf of other systems.

use std::collections::HashMap;
use std::sync::Arc;

use protoactor_actor::prelude::*;

use crate::proto::{ActorPidRequest, ActorPidResponse, ResponseStatusCode};

/// The registered id of the activator on every system with remoting.
pub const ACTIVATOR: &str = "$activator";

pub(crate) struct Activator {
    pub(crate) kinds: Arc<HashMap<String, Props>>,
}

impl Actor for Activator {
    async fn receive(&mut self, ctx: &mut Context) -> ActorResult {
        let Some(request) = ctx.message::<ActorPidRequest>() else { return Ok(()) };
        let (name, kind) = (request.name.clone(), request.kind.clone());
        let local = ctx.system().address();
        let response = match self.kinds.get(&kind) {
            None => ActorPidResponse {
                pid: None,
                status_code: ResponseStatusCode::UnknownKind as i32,
                error: format!("no kind `{kind}` is registered here"),
            },
            Some(props) => {
                let root = ctx.system().root();
                let spawned = if name.is_empty() {
                    Ok(root.spawn(props.clone()))
                } else {
                    root.spawn_named(props.clone(), &name)
                };
                match spawned {
                    Ok(pid) => ActorPidResponse {
                        pid: Some(crate::wire::pid_to_wire(&pid, &local)),
                        status_code: ResponseStatusCode::Ok as i32,
                        error: String::new(),
                    },
                    Err(protoactor_actor::Error::NameExists(_)) => ActorPidResponse {
                        pid: Some(crate::wire::pid_to_wire(&Pid::new(local.clone(), name.as_str()), &local)),
                        status_code: ResponseStatusCode::ProcessNameAlreadyExist as i32,
                        error: format!("an actor named `{name}` already exists"),
                    },
                    Err(e) => ActorPidResponse {
                        pid: None,
                        status_code: ResponseStatusCode::Error as i32,
                        error: e.to_string(),
                    },
                }
            }
        };
        ctx.respond(response);
        Ok(())
    }
}
