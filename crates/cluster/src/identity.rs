//! [`ClusterIdentity`]: the name of a virtual actor.

use std::fmt;

pub use crate::proto::ClusterIdentity;

impl ClusterIdentity {
    /// The identity `identity` of kind `kind`.
    pub fn new(identity: impl Into<String>, kind: impl Into<String>) -> Self {
        ClusterIdentity { identity: identity.into(), kind: kind.into() }
    }

    /// `kind/identity`: the form used as a key in logs and external stores.
    pub fn key(&self) -> String {
        format!("{}/{}", self.kind, self.identity)
    }
}

impl fmt::Display for ClusterIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind, self.identity)
    }
}
