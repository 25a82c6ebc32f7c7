//! The one error type of the crate.

/// What went wrong while reading or writing persisted state.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// Another writer already holds the event index this append expected:
    /// a second activation of the same actor exists (or existed). Nothing was
    /// written; the writer that got this error is stale and must stop.
    #[error(
        "conflict: event {index} of `{actor_id}` was already written by another activation; \
         nothing was written and this activation must stop (a fresh one recovers the newer state)"
    )]
    Conflict {
        /// The actor whose journal was appended to.
        actor_id: String,
        /// The index the append expected to be free.
        index: u64,
    },

    /// The store failed (connection lost, disk full, server down, ...). The
    /// write may or may not have happened; the journal refuses further writes
    /// until the actor restarts and recovers.
    #[error("the persistence store failed: {0}; the message was not acknowledged (the actor recovers when restarted)")]
    Store(String),

    /// A payload could not be encoded or decoded.
    #[error("cannot encode or decode persisted data of `{actor_id}`: {reason}")]
    Codec {
        /// The actor whose data it was.
        actor_id: String,
        /// What the codec reported.
        reason: String,
    },

    /// The database holds a schema this build does not know.
    #[error(
        "the database schema is version {found}, this build of protoactor-persistence supports up to {supported}; \
         upgrade protoactor-persistence or point it at another database"
    )]
    SchemaVersion {
        /// The version found in the database.
        found: i64,
        /// The newest version this build supports.
        supported: i64,
    },

    /// An earlier write of this journal failed, so its view of the store is
    /// uncertain; it accepts no more writes.
    #[error(
        "the journal of `{0}` refuses writes after an earlier failed write; restart the actor so it recovers from the store"
    )]
    Poisoned(String),

    /// A caller passed something unusable.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl Error {
    /// True for [`Error::Conflict`].
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Conflict { .. })
    }
}
