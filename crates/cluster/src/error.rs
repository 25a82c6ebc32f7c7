//! The cluster's error type.

use std::time::Duration;

/// What went wrong in the cluster; each message says what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No member in the topology hosts this kind.
    #[error(
        "no member of cluster `{cluster}` hosts kind `{kind}`; register it with ClusterConfig::with_kind on the members that should host it"
    )]
    UnknownKind {
        /// The cluster name.
        cluster: String,
        /// The kind asked for.
        kind: String,
    },
    /// The kind refused to activate this identity (its identity filter said no).
    #[error("kind `{kind}` refuses identity `{identity}`; retrying will not help")]
    IdentityBlocked {
        /// The kind.
        kind: String,
        /// The identity.
        identity: String,
    },
    /// A cluster request gave up after its retries.
    #[error(
        "request to {kind}/{identity} failed after {attempts} attempt(s) in {elapsed:?} (last member tried: {member}): {reason}"
    )]
    RequestFailed {
        /// The kind.
        kind: String,
        /// The identity.
        identity: String,
        /// The address of the last activation tried, or `none`.
        member: String,
        /// How many attempts were made.
        attempts: u32,
        /// How long it took.
        elapsed: Duration,
        /// What happened on the last attempt.
        reason: String,
    },
    /// A request that no retry can deliver: the receiving member does not
    /// know the message's type, cannot decode it, it is too large, or the
    /// member belongs to another cluster. Returned at once, without retries.
    #[error(
        "request to {kind}/{identity} cannot be delivered to {member} ({failure}); retrying will not help: {reason}"
    )]
    Undeliverable {
        /// The kind.
        kind: String,
        /// The identity.
        identity: String,
        /// The address of the activation tried.
        member: String,
        /// Why, as a kind.
        failure: protoactor_actor::DeliveryFailureKind,
        /// Why, in words (what to do about it).
        reason: String,
    },
    /// The grain answered with a type the caller did not ask for.
    #[error("request to {kind}/{identity}: {source}")]
    UnexpectedResponse {
        /// The kind.
        kind: String,
        /// The identity.
        identity: String,
        /// The actor-level error.
        #[source]
        source: protoactor_actor::Error,
    },
    /// This member did not appear in the topology in time.
    #[error(
        "member {member} did not join cluster `{cluster}` within {after:?}; check that the cluster provider can reach its backend"
    )]
    JoinTimeout {
        /// The cluster name.
        cluster: String,
        /// This member's id.
        member: String,
        /// How long we waited.
        after: Duration,
    },
    /// The cluster was already started.
    #[error("the cluster is already started; call start_member or start_client once")]
    AlreadyStarted,
    /// The cluster is not started, or is shutting down.
    #[error("the cluster is not running; call start_member or start_client first")]
    NotRunning,
    /// The cluster provider failed.
    #[error("cluster provider: {0}")]
    Provider(String),
    /// The identity lookup failed.
    #[error("identity lookup: {0}")]
    Lookup(String),
    /// A member could not activate a grain (it did not answer in time, does
    /// not host the kind, or is leaving).
    #[error("activating {grain} on {member} failed: {reason}")]
    Activation {
        /// The grain (`kind/identity`).
        grain: String,
        /// The address of the member asked.
        member: String,
        /// What went wrong.
        reason: String,
    },
    /// The identity storage (Redis, MongoDB, ...) failed or is unreachable.
    #[error("identity storage {store} at {address}: {reason}; check that the store is running and reachable")]
    Storage {
        /// Which store (`redis`, `mongodb`, ...).
        store: String,
        /// The address the store was reached at.
        address: String,
        /// What went wrong.
        reason: String,
    },
    /// Remoting failed (binding, starting).
    #[error(transparent)]
    Remote(#[from] protoactor_remote::Error),
    /// The configuration is invalid.
    #[error("invalid cluster configuration: {0}")]
    Config(String),
}

impl Error {
    /// The delivery failure behind this error, if a message could not be
    /// delivered for a reason retrying cannot fix.
    pub fn delivery_kind(&self) -> Option<protoactor_actor::DeliveryFailureKind> {
        match self {
            Error::Undeliverable { failure, .. } => Some(*failure),
            _ => None,
        }
    }
}
