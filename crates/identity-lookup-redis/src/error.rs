//! The crate's error type.

/// What went wrong talking to Redis; each message says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The connection URL could not be parsed.
    #[error("invalid Redis URL `{url}`: {source}; use redis://host:port/ (or rediss:// for TLS)")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// Why it is invalid.
        #[source]
        source: redis::RedisError,
    },
    /// Redis could not be reached or refused a command.
    #[error("redis at {address}: {source}")]
    Redis {
        /// The address used.
        address: String,
        /// The client error.
        #[source]
        source: redis::RedisError,
    },
    /// The storage was used before the cluster started it.
    #[error("the Redis identity storage is not initialised; start the cluster first")]
    NotInitialised,
}

impl From<Error> for protoactor_cluster::Error {
    fn from(e: Error) -> Self {
        let address = match &e {
            Error::InvalidUrl { url, .. } => url.clone(),
            Error::Redis { address, .. } => address.clone(),
            Error::NotInitialised => "(not connected)".to_string(),
        };
        let reason = match &e {
            Error::Redis { source, .. } => source.to_string(),
            other => other.to_string(),
        };
        protoactor_cluster::Error::Storage { store: "redis".into(), address, reason }
    }
}
