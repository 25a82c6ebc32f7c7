//! The storage contract every provider meets.

use std::fmt;

use futures_util::future::BoxFuture;

use crate::error::Error;

/// One persisted event: its index in the actor's journal (from 0, no gaps)
/// and its encoded payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Position in the journal.
    pub index: u64,
    /// The encoded event.
    pub payload: Vec<u8>,
}

/// A snapshot: the encoded state after the events `0..index` were applied,
/// so recovery continues with the event at `index`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The index of the first event not contained in the snapshot.
    pub index: u64,
    /// The encoded state.
    pub payload: Vec<u8>,
}

/// Where journals and snapshots live. Object safe: actors hold an
/// `Arc<dyn Provider>`, so a deployment swaps the store in one line.
///
/// The contract (checked by `protoactor_testkit::persistence`):
/// - [`append_events`](Self::append_events) is atomic and conditional: the
///   events land at `expected_index, expected_index + 1, ...` only if the
///   journal's next index is exactly `expected_index`; otherwise nothing is
///   written and the answer is [`Error::Conflict`]. Deleting events does not
///   lower the next index, so a stale writer can never refill a gap.
/// - Reads never see part of an append.
/// - Deletes are inclusive (`up_to` is deleted too) and idempotent.
pub trait Provider: Send + Sync + fmt::Debug + 'static {
    /// Events of `actor_id` with `index >= from`, in index order.
    fn get_events<'a>(&'a self, actor_id: &'a str, from: u64) -> BoxFuture<'a, Result<Vec<Event>, Error>>;

    /// The snapshot with the highest index, if any.
    fn get_snapshot<'a>(&'a self, actor_id: &'a str) -> BoxFuture<'a, Result<Option<Snapshot>, Error>>;

    /// Appends `payloads` at `expected_index..`, all or nothing, if the
    /// journal's next index is `expected_index`; [`Error::Conflict`] if not.
    fn append_events<'a>(
        &'a self,
        actor_id: &'a str,
        expected_index: u64,
        payloads: Vec<Vec<u8>>,
    ) -> BoxFuture<'a, Result<(), Error>>;

    /// Stores a snapshot (replacing one with the same index).
    fn save_snapshot<'a>(&'a self, actor_id: &'a str, snapshot: Snapshot) -> BoxFuture<'a, Result<(), Error>>;

    /// Deletes the events with `index <= up_to`.
    fn delete_events<'a>(&'a self, actor_id: &'a str, up_to: u64) -> BoxFuture<'a, Result<(), Error>>;

    /// Deletes the snapshots with `index <= up_to`.
    fn delete_snapshots<'a>(&'a self, actor_id: &'a str, up_to: u64) -> BoxFuture<'a, Result<(), Error>>;
}
