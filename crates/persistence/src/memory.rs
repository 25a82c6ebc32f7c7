//! The in-memory provider, for tests and local development.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use futures_util::future::{BoxFuture, FutureExt};
use parking_lot::Mutex;

use crate::error::Error;
use crate::provider::{Event, Provider, Snapshot};

#[derive(Debug, Default)]
struct Journal {
    next_index: u64,
    events: BTreeMap<u64, Arc<Vec<u8>>>,
    snapshots: BTreeMap<u64, Arc<Vec<u8>>>,
}

/// Journals and snapshots in a map in this process: lost when the process
/// ends. Clones share the same data (like one database used by many actors).
///
/// ```
/// use std::sync::Arc;
/// use protoactor_persistence::{InMemoryProvider, Provider};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), protoactor_persistence::Error> {
/// let provider = InMemoryProvider::new();
/// provider.append_events("counter-1", 0, vec![b"+1".to_vec()]).await?;
/// assert!(provider.append_events("counter-1", 0, vec![b"+1".to_vec()]).await.unwrap_err().is_conflict());
/// assert_eq!(provider.get_events("counter-1", 0).await?.len(), 1);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
pub struct InMemoryProvider {
    journals: Arc<Mutex<HashMap<String, Journal>>>,
}

impl InMemoryProvider {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Provider for InMemoryProvider {
    fn get_events<'a>(&'a self, actor_id: &'a str, from: u64) -> BoxFuture<'a, Result<Vec<Event>, Error>> {
        // Clone the Arcs under the lock, copy the bytes outside it.
        let found: Vec<(u64, Arc<Vec<u8>>)> = {
            let journals = self.journals.lock();
            journals
                .get(actor_id)
                .map(|j| j.events.range(from..).map(|(i, p)| (*i, p.clone())).collect())
                .unwrap_or_default()
        };
        let events = found.into_iter().map(|(index, p)| Event { index, payload: p.as_ref().clone() }).collect();
        std::future::ready(Ok(events)).boxed()
    }

    fn get_snapshot<'a>(&'a self, actor_id: &'a str) -> BoxFuture<'a, Result<Option<Snapshot>, Error>> {
        let found = {
            let journals = self.journals.lock();
            journals.get(actor_id).and_then(|j| j.snapshots.last_key_value().map(|(i, p)| (*i, p.clone())))
        };
        let snapshot = found.map(|(index, p)| Snapshot { index, payload: p.as_ref().clone() });
        std::future::ready(Ok(snapshot)).boxed()
    }

    fn append_events<'a>(
        &'a self,
        actor_id: &'a str,
        expected_index: u64,
        payloads: Vec<Vec<u8>>,
    ) -> BoxFuture<'a, Result<(), Error>> {
        let result = (|| {
            if payloads.is_empty() {
                return Ok(());
            }
            let mut journals = self.journals.lock();
            let journal = journals.entry(actor_id.to_string()).or_default();
            if journal.next_index != expected_index {
                return Err(Error::Conflict { actor_id: actor_id.to_string(), index: expected_index });
            }
            for (i, payload) in payloads.into_iter().enumerate() {
                journal.events.insert(expected_index + i as u64, Arc::new(payload));
            }
            journal.next_index = journal.events.last_key_value().map(|(i, _)| i + 1).unwrap_or(expected_index);
            Ok(())
        })();
        std::future::ready(result).boxed()
    }

    fn save_snapshot<'a>(&'a self, actor_id: &'a str, snapshot: Snapshot) -> BoxFuture<'a, Result<(), Error>> {
        let mut journals = self.journals.lock();
        journals.entry(actor_id.to_string()).or_default().snapshots.insert(snapshot.index, Arc::new(snapshot.payload));
        std::future::ready(Ok(())).boxed()
    }

    fn delete_events<'a>(&'a self, actor_id: &'a str, up_to: u64) -> BoxFuture<'a, Result<(), Error>> {
        if let Some(journal) = self.journals.lock().get_mut(actor_id) {
            match up_to.checked_add(1) {
                Some(keep_from) => journal.events = journal.events.split_off(&keep_from),
                None => journal.events.clear(),
            }
        }
        std::future::ready(Ok(())).boxed()
    }

    fn delete_snapshots<'a>(&'a self, actor_id: &'a str, up_to: u64) -> BoxFuture<'a, Result<(), Error>> {
        if let Some(journal) = self.journals.lock().get_mut(actor_id) {
            match up_to.checked_add(1) {
                Some(keep_from) => journal.snapshots = journal.snapshots.split_off(&keep_from),
                None => journal.snapshots.clear(),
            }
        }
        std::future::ready(Ok(())).boxed()
    }
}
