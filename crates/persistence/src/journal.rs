//! The actor-side helper for event sourcing with snapshots.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use protoactor_actor::{ActorSystem, Context, Pid};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::provider::{Provider, Snapshot};

/// State rebuilt from events. [`apply`](Self::apply) is the one place an
/// event changes the state: recovery replays stored events through it and
/// [`Journal::persist`] applies live events through it after they are stored.
///
/// The state itself is the snapshot (serde), so it must serialize.
pub trait EventSourced: Default + Serialize + DeserializeOwned + Send + 'static {
    /// What happened (serde, stored as JSON).
    type Event: Serialize + DeserializeOwned + Send + Sync;

    /// Changes the state by one event. Must not fail: anything that can fail
    /// belongs before [`Journal::persist`], when the event is decided.
    fn apply(&mut self, event: &Self::Event);
}

/// When a [`Journal`] writes a snapshot. Several triggers may be combined.
#[derive(Debug, Clone, Default)]
pub struct SnapshotPolicy {
    every: Option<u64>,
    interval: Option<Duration>,
    on_stop: bool,
    delete_old: bool,
}

impl SnapshotPolicy {
    /// No snapshots: recovery replays the whole journal.
    pub fn none() -> Self {
        Self::default()
    }

    /// A snapshot after every `n` events (`n >= 1`).
    pub fn every(n: u64) -> Self {
        Self::default().and_every(n)
    }

    /// Also snapshot after every `n` events.
    pub fn and_every(mut self, n: u64) -> Self {
        self.every = Some(n.max(1));
        self
    }

    /// Also snapshot when at least `interval` has passed since the last one
    /// and an event was persisted since (checked on each persist, and by
    /// [`Journal::tick`] for a timer message the actor schedules itself).
    pub fn and_interval(mut self, interval: Duration) -> Self {
        self.interval = Some(interval);
        self
    }

    /// Also snapshot when the actor stops (passivation): call
    /// [`Journal::on_stopping`] from the `Stopping` handler.
    pub fn and_on_stop(mut self) -> Self {
        self.on_stop = true;
        self
    }

    /// After a snapshot, delete the events and older snapshots it covers
    /// (the journal's next index is kept, so conflicts are still detected).
    pub fn and_delete_covered(mut self) -> Self {
        self.delete_old = true;
        self
    }
}

/// An event-sourced state bound to one journal in a [`Provider`].
///
/// [`recover`](Self::recover) loads the newest snapshot, then applies the
/// events after it; [`persist`](Self::persist) appends an event at the
/// expected index and only then applies it, so an actor that responds after
/// `persist` returned never acknowledges what is not stored.
///
/// ```
/// use std::sync::Arc;
/// use protoactor_persistence::{EventSourced, InMemoryProvider, Journal, SnapshotPolicy};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Default, Serialize, Deserialize)]
/// struct Counter { total: u64 }
///
/// #[derive(Serialize, Deserialize)]
/// struct Added(u64);
///
/// impl EventSourced for Counter {
///     type Event = Added;
///     fn apply(&mut self, event: &Added) { self.total += event.0; }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), protoactor_persistence::Error> {
/// let provider = Arc::new(InMemoryProvider::new());
/// let mut counter = Journal::<Counter>::recover(provider.clone(), "counter-1", SnapshotPolicy::every(100)).await?;
/// counter.persist(Added(2)).await?;
/// counter.persist(Added(3)).await?;
///
/// let again = Journal::<Counter>::recover(provider, "counter-1", SnapshotPolicy::none()).await?;
/// assert_eq!(again.state().total, 5);
/// # Ok(()) }
/// ```
pub struct Journal<S: EventSourced> {
    provider: Arc<dyn Provider>,
    actor_id: String,
    state: S,
    next_index: u64,
    policy: SnapshotPolicy,
    last_snapshot_index: u64,
    last_snapshot_at: Instant,
    owner: Option<(ActorSystem, Pid)>,
    poisoned: bool,
}

impl<S: EventSourced> fmt::Debug for Journal<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Journal")
            .field("actor_id", &self.actor_id)
            .field("next_index", &self.next_index)
            .field("last_snapshot_index", &self.last_snapshot_index)
            .field("poisoned", &self.poisoned)
            .finish()
    }
}

impl<S: EventSourced> Journal<S> {
    /// Recovers the state of `actor_id`: the newest snapshot, then every
    /// event after it, through [`EventSourced::apply`].
    #[tracing::instrument(level = "debug", skip(provider, policy), fields(events))]
    pub async fn recover(
        provider: Arc<dyn Provider>,
        actor_id: impl Into<String> + fmt::Debug,
        policy: SnapshotPolicy,
    ) -> Result<Self, Error> {
        let actor_id = actor_id.into();
        let (mut state, from) = match provider.get_snapshot(&actor_id).await? {
            Some(snapshot) => (decode::<S>(&actor_id, &snapshot.payload)?, snapshot.index),
            None => (S::default(), 0),
        };
        let events = provider.get_events(&actor_id, from).await?;
        let mut next_index = from;
        for event in &events {
            if event.index != next_index {
                return Err(Error::Store(format!(
                    "the journal of `{actor_id}` has a gap: expected event {next_index}, found {}",
                    event.index
                )));
            }
            state.apply(&decode::<S::Event>(&actor_id, &event.payload)?);
            next_index += 1;
        }
        tracing::Span::current().record("events", events.len());
        Ok(Journal {
            provider,
            actor_id,
            state,
            next_index,
            policy,
            last_snapshot_index: from,
            last_snapshot_at: Instant::now(),
            owner: None,
            poisoned: false,
        })
    }

    /// [`recover`](Self::recover) for the actor behind `ctx`: a conflict on a
    /// later [`persist`](Self::persist) also stops that actor, since a newer
    /// activation owns the journal.
    ///
    /// The returned future does not borrow `ctx` (a `Context` is not `Sync`,
    /// so a borrow held across the await would make `receive` not `Send`).
    pub fn recover_in(
        ctx: &Context,
        provider: Arc<dyn Provider>,
        actor_id: impl Into<String> + fmt::Debug,
        policy: SnapshotPolicy,
    ) -> impl Future<Output = Result<Self, Error>> + Send + 'static {
        let owner = (ctx.system().clone(), ctx.self_pid().clone());
        let actor_id: String = actor_id.into();
        async move {
            let mut journal = Self::recover(provider, actor_id, policy).await?;
            journal.owner = Some(owner);
            Ok(journal)
        }
    }

    /// The current state.
    pub fn state(&self) -> &S {
        &self.state
    }

    /// The index the next event gets (= events applied so far).
    pub fn next_index(&self) -> u64 {
        self.next_index
    }

    /// The actor id of the journal.
    pub fn actor_id(&self) -> &str {
        &self.actor_id
    }

    /// Stores `event`, then applies it. On error nothing is applied; see
    /// [`persist_all`](Self::persist_all).
    pub async fn persist(&mut self, event: S::Event) -> Result<(), Error> {
        self.persist_all(vec![event]).await
    }

    /// Stores `events` atomically at the expected index, then applies them,
    /// then snapshots if the policy says so. On [`Error::Conflict`] the
    /// journal is stale (and the owning actor, if any, is stopped); on a store
    /// failure the journal refuses further writes until recovered again.
    #[tracing::instrument(level = "trace", skip_all, fields(actor_id = %self.actor_id, index = self.next_index))]
    pub async fn persist_all(&mut self, events: Vec<S::Event>) -> Result<(), Error> {
        if self.poisoned {
            return Err(Error::Poisoned(self.actor_id.clone()));
        }
        if events.is_empty() {
            return Ok(());
        }
        let payloads = events.iter().map(|e| encode(&self.actor_id, e)).collect::<Result<Vec<_>, _>>()?;
        let count = payloads.len() as u64;
        if let Err(e) = self.provider.append_events(&self.actor_id, self.next_index, payloads).await {
            self.poisoned = true;
            if e.is_conflict() {
                tracing::warn!(actor_id = %self.actor_id, index = self.next_index, "persist conflict: another activation wrote first; stopping this one");
                if let Some((system, pid)) = &self.owner {
                    system.stop(pid);
                }
            }
            return Err(e);
        }
        for event in &events {
            self.state.apply(event);
        }
        self.next_index += count;
        if self.snapshot_due() {
            self.snapshot_quietly().await;
        }
        Ok(())
    }

    /// Writes a snapshot of the current state now.
    pub async fn snapshot(&mut self) -> Result<(), Error> {
        let payload = encode(&self.actor_id, &self.state)?;
        let index = self.next_index;
        self.provider.save_snapshot(&self.actor_id, Snapshot { index, payload }).await?;
        self.last_snapshot_index = index;
        self.last_snapshot_at = Instant::now();
        if self.policy.delete_old && index > 0 {
            self.provider.delete_events(&self.actor_id, index - 1).await?;
            self.provider.delete_snapshots(&self.actor_id, index - 1).await?;
        }
        Ok(())
    }

    /// For a timer message: snapshots if the policy's interval has passed
    /// and events were persisted since the last snapshot.
    pub async fn tick(&mut self) -> Result<(), Error> {
        if self.interval_due() { self.snapshot().await } else { Ok(()) }
    }

    /// For the `Stopping` handler: snapshots if the policy asks for a
    /// snapshot on stop (passivation) and events were persisted since.
    pub async fn on_stopping(&mut self) -> Result<(), Error> {
        if self.policy.on_stop && !self.poisoned && self.next_index > self.last_snapshot_index {
            self.snapshot().await
        } else {
            Ok(())
        }
    }

    fn interval_due(&self) -> bool {
        matches!(self.policy.interval, Some(i) if self.last_snapshot_at.elapsed() >= i)
            && self.next_index > self.last_snapshot_index
    }

    fn snapshot_due(&self) -> bool {
        let every = matches!(self.policy.every, Some(n) if self.next_index - self.last_snapshot_index >= n);
        every || self.interval_due()
    }

    // A failed snapshot loses nothing (the events are stored): log it and
    // let the next trigger try again.
    async fn snapshot_quietly(&mut self) {
        if let Err(e) = self.snapshot().await {
            tracing::warn!(actor_id = %self.actor_id, error = %e, "snapshot failed; the events are stored, recovery replays them");
        }
    }
}

pub(crate) fn encode<T: Serialize>(actor_id: &str, value: &T) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(value).map_err(|e| Error::Codec { actor_id: actor_id.to_string(), reason: e.to_string() })
}

pub(crate) fn decode<T: DeserializeOwned>(actor_id: &str, bytes: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(bytes).map_err(|e| Error::Codec { actor_id: actor_id.to_string(), reason: e.to_string() })
}
