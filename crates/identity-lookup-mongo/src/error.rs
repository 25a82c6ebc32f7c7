//! The crate's error type.

/// What went wrong talking to MongoDB; each message says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The connection string could not be parsed.
    #[error("invalid MongoDB connection string `{uri}`: {source}; use mongodb://host:port/")]
    InvalidUri {
        /// The connection string given.
        uri: String,
        /// Why it is invalid.
        #[source]
        source: mongodb::error::Error,
    },
    /// MongoDB could not be reached or refused an operation.
    #[error("mongodb at {address}: {source}")]
    Mongo {
        /// The connection string used.
        address: String,
        /// The driver error.
        #[source]
        source: mongodb::error::Error,
    },
    /// An operation got no answer in time (the server is stalled or overloaded).
    #[error("mongodb at {address}: no answer to `{operation}` within {after:?}")]
    Timeout {
        /// The servers used.
        address: String,
        /// What was asked.
        operation: String,
        /// The operation timeout.
        after: std::time::Duration,
    },
    /// The storage was used before the cluster started it.
    #[error("the MongoDB identity storage is not initialised; start the cluster first")]
    NotInitialised,
}

impl From<Error> for protoactor_cluster::Error {
    fn from(e: Error) -> Self {
        let address = match &e {
            Error::InvalidUri { uri, .. } => uri.clone(),
            Error::Mongo { address, .. } | Error::Timeout { address, .. } => address.clone(),
            Error::NotInitialised => "(not connected)".to_string(),
        };
        let reason = match &e {
            Error::Mongo { source, .. } => source.to_string(),
            Error::Timeout { operation, after, .. } => format!("no answer to `{operation}` within {after:?}"),
            other => other.to_string(),
        };
        protoactor_cluster::Error::Storage { store: "mongodb".into(), address, reason }
    }
}
