//! Plain state persistence: load on activate, save on change.

use std::fmt;
use std::sync::Arc;

use protoactor_actor::{ActorSystem, Context, Pid};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::journal::{decode, encode};
use crate::provider::Provider;

/// A value saved whole on every change, for actors that want no events.
///
/// Each save is a conditional append of the full value (so two activations
/// cannot overwrite each other: the second gets [`Error::Conflict`]),
/// followed by deleting the older versions.
///
/// ```
/// use std::sync::Arc;
/// use protoactor_persistence::{InMemoryProvider, PersistentState};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), protoactor_persistence::Error> {
/// let provider = Arc::new(InMemoryProvider::new());
/// let mut cart = PersistentState::<Vec<String>>::load(provider.clone(), "cart-7").await?;
/// cart.update(|items| items.push("apple".into())).await?;
///
/// let again = PersistentState::<Vec<String>>::load(provider, "cart-7").await?;
/// assert_eq!(again.get(), &vec!["apple".to_string()]);
/// # Ok(()) }
/// ```
pub struct PersistentState<T> {
    provider: Arc<dyn Provider>,
    actor_id: String,
    value: T,
    version: u64,
    owner: Option<(ActorSystem, Pid)>,
    poisoned: bool,
}

impl<T: fmt::Debug> fmt::Debug for PersistentState<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PersistentState")
            .field("actor_id", &self.actor_id)
            .field("version", &self.version)
            .field("value", &self.value)
            .finish()
    }
}

impl<T: Serialize + DeserializeOwned + Default + Send + 'static> PersistentState<T> {
    /// Loads the saved value of `actor_id` (`T::default()` if none).
    #[tracing::instrument(level = "debug", skip(provider))]
    pub async fn load(provider: Arc<dyn Provider>, actor_id: &str) -> Result<Self, Error> {
        let versions = provider.get_events(actor_id, 0).await?;
        let (value, version) = match versions.last() {
            Some(last) => (decode(actor_id, &last.payload)?, last.index + 1),
            None => (T::default(), 0),
        };
        Ok(PersistentState { provider, actor_id: actor_id.to_string(), value, version, owner: None, poisoned: false })
    }

    /// [`load`](Self::load) for the actor behind `ctx`, which is stopped if
    /// a save conflicts with another activation.
    ///
    /// The returned future does not borrow `ctx` (a `Context` is not `Sync`).
    pub fn load_in(
        ctx: &Context,
        provider: Arc<dyn Provider>,
        actor_id: &str,
    ) -> impl Future<Output = Result<Self, Error>> + Send + 'static {
        let owner = (ctx.system().clone(), ctx.self_pid().clone());
        let actor_id = actor_id.to_string();
        async move {
            let mut state = Self::load(provider, &actor_id).await?;
            state.owner = Some(owner);
            Ok(state)
        }
    }

    /// The current value.
    pub fn get(&self) -> &T {
        &self.value
    }

    /// How many saves this value has seen.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Saves `value`; it becomes current only once stored.
    pub async fn set(&mut self, value: T) -> Result<(), Error> {
        if self.poisoned {
            return Err(Error::Poisoned(self.actor_id.clone()));
        }
        let payload = encode(&self.actor_id, &value)?;
        if let Err(e) = self.provider.append_events(&self.actor_id, self.version, vec![payload]).await {
            self.poisoned = true;
            if e.is_conflict()
                && let Some((system, pid)) = &self.owner
            {
                system.stop(pid);
            }
            return Err(e);
        }
        self.value = value;
        if self.version > 0
            && let Err(e) = self.provider.delete_events(&self.actor_id, self.version - 1).await
        {
            // Only space is lost: load reads the newest version.
            tracing::debug!(actor_id = %self.actor_id, error = %e, "old state versions not deleted");
        }
        self.version += 1;
        Ok(())
    }

    /// Changes a copy of the value with `change` and saves it.
    pub async fn update(&mut self, change: impl FnOnce(&mut T)) -> Result<(), Error>
    where
        T: Clone,
    {
        let mut next = self.value.clone();
        change(&mut next);
        self.set(next).await
    }
}
