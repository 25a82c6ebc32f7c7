//! # protoactor-persistence
//!
//! State that survives the actor (or the member) holding it: event sourcing
//! with snapshots, or a plain value saved on change, stored through a
//! [`Provider`]. Appends are conditional on the expected event index, so
//! when two activations of one grain exist for a moment the second writer
//! gets [`Error::Conflict`], is stopped, and overwrites nothing.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use protoactor_actor::prelude::*;
//! use protoactor_persistence::{EventSourced, InMemoryProvider, Journal, Provider, SnapshotPolicy};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Default, Serialize, Deserialize)]
//! struct Total { sum: u64 }
//! #[derive(Serialize, Deserialize)]
//! struct Added(u64);
//! impl EventSourced for Total {
//!     type Event = Added;
//!     fn apply(&mut self, event: &Added) { self.sum += event.0; }
//! }
//!
//! struct Add(u64);
//! struct Counter { provider: Arc<dyn Provider>, journal: Option<Journal<Total>> }
//!
//! impl Actor for Counter {
//!     async fn receive(&mut self, ctx: &mut Context) -> ActorResult {
//!         if ctx.message_is::<Started>() {
//!             // Recover before the first message: snapshot, then the events after it.
//!             let policy = SnapshotPolicy::every(100).and_on_stop();
//!             self.journal = Some(Journal::recover_in(ctx, self.provider.clone(), "counter-1", policy).await?);
//!         } else if let Some(Add(n)) = ctx.message::<Add>() {
//!             let n = *n;
//!             let journal = self.journal.as_mut().ok_or_else(|| ActorError::msg("not recovered"))?;
//!             journal.persist(Added(n)).await?; // stored before it is acknowledged
//!             ctx.respond(journal.state().sum);
//!         } else if ctx.message_is::<Stopping>()
//!             && let Some(journal) = self.journal.as_mut()
//!         {
//!             journal.on_stopping().await?; // snapshot on passivation
//!         }
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let provider: Arc<dyn Provider> = Arc::new(InMemoryProvider::new());
//! let system = ActorSystem::new();
//! let p = provider.clone();
//! let props = Props::from_producer(move || Counter { provider: p.clone(), journal: None });
//! let counter = system.root().spawn(props.clone());
//! let sum: u64 = system.root().request_future(&counter, Add(2), Duration::from_secs(5)).await?;
//! assert_eq!(sum, 2);
//! system.root().stop_future(&counter).await;
//!
//! // A new activation continues where the old one stopped.
//! let counter = system.root().spawn(props);
//! let sum: u64 = system.root().request_future(&counter, Add(3), Duration::from_secs(5)).await?;
//! assert_eq!(sum, 5);
//! system.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! Providers: [`InMemoryProvider`] (tests), `SqliteProvider` (feature
//! `sqlite`, on by default: embedded, no server) and `PostgresProvider`
//! (feature `postgres`). Plain values: [`PersistentState`].

mod error;
mod journal;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
mod provider;
#[cfg(feature = "sqlite")]
mod sqlite;
mod state;

pub use error::Error;
pub use journal::{EventSourced, Journal, SnapshotPolicy};
pub use memory::InMemoryProvider;
#[cfg(feature = "postgres")]
pub use postgres::{POSTGRES_SCHEMA_VERSION, PostgresProvider};
pub use provider::{Event, Provider, Snapshot};
#[cfg(feature = "sqlite")]
pub use sqlite::{SQLITE_SCHEMA_VERSION, SqliteProvider};
pub use state::PersistentState;
