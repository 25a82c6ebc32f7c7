//! # protoactor-grain
//!
//! The run-time half of typed grains: what the code that
//! `protoactor-codegen` writes from a
//! `build.rs` calls (as `::protoactor_grain::…`), the wire messages, the error
//! types, and the helpers that dispatch a request to a grain method and carry
//! its outcome back to the caller. A crate with generated grains depends on
//! `protoactor-grain` and `prost`; `protoactor-codegen` (prost-build, protoc)
//! stays a build dependency, out of the binary's dependency tree.
//!
//! Users meet [`GrainError`] (returned by grain methods), [`CallError`]
//! (returned by clients) and [`CallOptions`] (per-call timeout, deadline,
//! retries); the rest is used by the generated code only.
//!
//! ```
//! use protoactor_grain::{CallError, CallOptions, GrainError};
//! use std::time::Duration;
//!
//! // What a grain method returns on failure; the caller gets it back.
//! let e = GrainError::with_reason("not_found", "no such account").with_metadata("account", "42");
//! let call_error = CallError::from(e.clone());
//! assert_eq!(call_error.grain_error(), Some(&e));
//! // What a caller passes to a generated client method.
//! let options = CallOptions::default().with_timeout(Duration::from_secs(2));
//! assert_eq!(options.timeout, Some(Duration::from_secs(2)));
//! ```

use std::collections::BTreeMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures_util::FutureExt;
use protoactor_actor::{ActorError, ActorResult, AnyMessage, Context, Message};

pub use protoactor_actor as actor;
pub use protoactor_cluster as cluster;
pub use protoactor_cluster::CallOptions;
pub use protoactor_remote as remote;

/// The wire messages of typed grains (`protos/grain.proto`, package `grain`).
#[allow(missing_docs, unreachable_pub, missing_debug_implementations, clippy::all)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/grain.rs"));
}

pub use proto::{GrainErrorResponse, GrainRequest};

/// The `reason` of a grain method that panicked.
pub const REASON_PANIC: &str = "panic";
/// The `reason` of a request the grain could not decode, or for an rpc it
/// does not have.
pub const REASON_INVALID_REQUEST: &str = "invalid_request";
/// The default `reason` of [`GrainError::new`].
pub const REASON_UNKNOWN: &str = "unknown";

/// What a grain method returns instead of a response; the caller's client
/// gets it back as [`CallError::Grain`].
///
/// ```
/// use protoactor_grain::GrainError;
///
/// let e = GrainError::with_reason("not_found", "no such account").with_metadata("account", "42");
/// assert_eq!(e.reason, "not_found");
/// assert_eq!(e.to_string(), "grain error not_found: no such account");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("grain error {reason}: {message}")]
pub struct GrainError {
    /// A short machine-readable code (`unknown` unless set).
    pub reason: String,
    /// What went wrong, for people.
    pub message: String,
    /// Extra details.
    pub metadata: BTreeMap<String, String>,
}

impl GrainError {
    /// An error with reason `unknown`.
    pub fn new(message: impl Into<String>) -> Self {
        Self::with_reason(REASON_UNKNOWN, message)
    }

    /// An error with a machine-readable `reason`.
    pub fn with_reason(reason: impl Into<String>, message: impl Into<String>) -> Self {
        GrainError { reason: reason.into(), message: message.into(), metadata: BTreeMap::new() }
    }

    /// Adds one detail.
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }
}

impl From<GrainError> for GrainErrorResponse {
    fn from(e: GrainError) -> Self {
        GrainErrorResponse { reason: e.reason, message: e.message, metadata: e.metadata }
    }
}

impl From<GrainErrorResponse> for GrainError {
    fn from(e: GrainErrorResponse) -> Self {
        GrainError { reason: e.reason, message: e.message, metadata: e.metadata }
    }
}

/// Why a typed client call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The grain method returned an error (or panicked: reason `panic`).
    #[error(transparent)]
    Grain(#[from] GrainError),
    /// The cluster could not deliver the request or got no reply in time.
    #[error(transparent)]
    Cluster(#[from] protoactor_cluster::Error),
    /// The grain answered with a type the rpc does not return (mixed-up
    /// kinds, or grains built from different .proto versions).
    #[error(
        "the grain answered {got} where {expected} was expected; are all members built from the same .proto files?"
    )]
    UnexpectedReply {
        /// The response type of the rpc.
        expected: &'static str,
        /// The type that came back.
        got: &'static str,
    },
}

impl CallError {
    /// The grain's error, if the grain answered with one.
    pub fn grain_error(&self) -> Option<&GrainError> {
        match self {
            CallError::Grain(e) => Some(e),
            _ => None,
        }
    }
}

/// Calls rpc `method_index` of grain `kind/identity` with `request` and
/// waits for its typed response (generated clients call this).
pub async fn call<Req, Resp>(
    cluster: &protoactor_cluster::Cluster,
    identity: &str,
    kind: &str,
    method_index: i32,
    request: &Req,
    options: &CallOptions,
) -> Result<Resp, CallError>
where
    Req: prost::Message,
    Resp: Message,
{
    let message = GrainRequest { method_index, message_data: request.encode_to_vec() };
    let reply: AnyMessage = cluster.request_with(identity, kind, message, options).await?;
    match reply.downcast::<Resp>() {
        Ok(response) => Ok(response),
        Err(other) => match other.downcast::<GrainErrorResponse>() {
            Ok(error) => Err(CallError::Grain(error.into())),
            Err(other) => {
                Err(CallError::UnexpectedReply { expected: std::any::type_name::<Resp>(), got: other.type_name() })
            }
        },
    }
}

/// Decodes the request of a [`GrainRequest`]; answers the caller with an
/// `invalid_request` error and returns `None` if it does not decode.
pub fn decode_request<Req>(ctx: &Context, request: &GrainRequest, method: &str) -> Option<Req>
where
    Req: prost::Message + Default,
{
    match Req::decode(request.message_data.as_slice()) {
        Ok(decoded) => Some(decoded),
        Err(e) => {
            let error =
                GrainError::with_reason(REASON_INVALID_REQUEST, format!("{method}: cannot decode the request: {e}"));
            ctx.respond(GrainErrorResponse::from(error));
            None
        }
    }
}

/// Answers a [`GrainRequest`] for an rpc index the grain does not have.
pub fn unknown_method(ctx: &Context, service: &str, method_index: i32) -> ActorResult {
    let error = GrainError::with_reason(
        REASON_INVALID_REQUEST,
        format!("{service} has no rpc number {method_index}; are all members built from the same .proto files?"),
    );
    ctx.respond(GrainErrorResponse::from(error));
    Ok(())
}

/// How a grain method ended: its result, or the panic's message.
pub type Outcome<Resp> = Result<Result<Resp, GrainError>, String>;

/// Runs a grain method, catching a panic (the method's future borrows the
/// context, so answering happens afterwards, in [`respond`]).
pub async fn run_method<Resp, F>(call: F) -> Outcome<Resp>
where
    F: Future<Output = Result<Resp, GrainError>> + Send,
{
    AssertUnwindSafe(call).catch_unwind().await.map_err(|panic| panic_text(panic.as_ref()))
}

/// Answers the caller with a method's outcome: the response, or its error
/// as a [`GrainErrorResponse`]. A panic is answered with reason `panic` and
/// then returned as a failure, so the supervisor restarts the grain (fresh
/// state) while the caller already has its answer.
pub fn respond<Resp: Message>(ctx: &Context, method: &str, outcome: Outcome<Resp>) -> ActorResult {
    match outcome {
        Ok(Ok(response)) => {
            ctx.respond(response);
            Ok(())
        }
        Ok(Err(error)) => {
            ctx.respond(GrainErrorResponse::from(error));
            Ok(())
        }
        Err(panic) => {
            let message = format!("{method} panicked: {panic}");
            ctx.respond(GrainErrorResponse::from(GrainError::with_reason(REASON_PANIC, message.clone())));
            Err(ActorError::msg(message))
        }
    }
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-string panic payload)".to_string()
    }
}

/// `options` with the rpc's own defaults (set per method in `build.rs`) where
/// the caller left a field `None` (generated clients call this).
pub fn method_options(options: &CallOptions, timeout: Option<Duration>, deadline: Option<Duration>) -> CallOptions {
    CallOptions { timeout: options.timeout.or(timeout), deadline: options.deadline.or(deadline), ..*options }
}
