//! The event stream: a per-system publish/subscribe bus for events such as
//! dead letters, supervision decisions and (later) cluster topology changes.

use std::any::{Any, TypeId};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::RwLock;
use tokio::sync::mpsc;

type Handler = Arc<dyn Fn(&dyn Any) + Send + Sync>;

struct Entry {
    id: u64,
    type_id: Option<TypeId>,
    handler: Handler,
}

#[derive(Default)]
struct Inner {
    // Copy-on-write: publishing clones an `Arc`, never holds the lock while
    // handlers run, so a handler may subscribe or unsubscribe.
    entries: RwLock<Arc<Vec<Entry>>>,
    next_id: AtomicU64,
}

/// A publish/subscribe bus. Handlers run synchronously on the publisher's
/// thread, so they must be quick and must not block; forward to a channel
/// ([`subscribe_channel`](Self::subscribe_channel)) or an actor for real work.
#[derive(Clone, Default)]
pub struct EventStream(Arc<Inner>);

impl fmt::Debug for EventStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventStream").field("subscriptions", &self.0.entries.read().len()).finish()
    }
}

/// A live subscription; [`unsubscribe`](Self::unsubscribe) ends it (dropping
/// it does not, so a subscription can be made and forgotten).
#[derive(Debug)]
#[must_use = "keep the subscription to unsubscribe later, or call `forget()`"]
pub struct Subscription {
    id: u64,
    stream: Weak<Inner>,
}

impl Subscription {
    /// Stops delivery to this subscription's handler.
    pub fn unsubscribe(self) {
        if let Some(inner) = self.stream.upgrade() {
            let mut entries = inner.entries.write();
            let mut next: Vec<Entry> = Vec::with_capacity(entries.len());
            for e in entries.iter() {
                if e.id != self.id {
                    next.push(Entry { id: e.id, type_id: e.type_id, handler: e.handler.clone() });
                }
            }
            *entries = Arc::new(next);
        }
    }

    /// Keeps the subscription for the life of the system.
    pub fn forget(self) {}
}

impl EventStream {
    /// A new, empty stream.
    pub fn new() -> Self {
        Self::default()
    }

    fn add(&self, type_id: Option<TypeId>, handler: Handler) -> Subscription {
        let id = self.0.next_id.fetch_add(1, Ordering::Relaxed);
        let mut entries = self.0.entries.write();
        let mut next: Vec<Entry> = Vec::with_capacity(entries.len() + 1);
        for e in entries.iter() {
            next.push(Entry { id: e.id, type_id: e.type_id, handler: e.handler.clone() });
        }
        next.push(Entry { id, type_id, handler });
        *entries = Arc::new(next);
        Subscription { id, stream: Arc::downgrade(&self.0) }
    }

    /// Calls `handler` for every published event of type `T`.
    pub fn subscribe<T: Any>(&self, handler: impl Fn(&T) + Send + Sync + 'static) -> Subscription {
        self.add(
            Some(TypeId::of::<T>()),
            Arc::new(move |event: &dyn Any| {
                if let Some(e) = event.downcast_ref::<T>() {
                    handler(e)
                }
            }),
        )
    }

    /// Calls `handler` for every published event, whatever its type.
    pub fn subscribe_all(&self, handler: impl Fn(&dyn Any) + Send + Sync + 'static) -> Subscription {
        self.add(None, Arc::new(handler))
    }

    /// Delivers clones of every event of type `T` to a channel, for async consumers.
    pub fn subscribe_channel<T: Any + Clone + Send>(&self) -> (Subscription, mpsc::UnboundedReceiver<T>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let sub = self.subscribe::<T>(move |e| {
            let _ = tx.send(e.clone());
        });
        (sub, rx)
    }

    /// Publishes an event to every matching subscription.
    pub fn publish<T: Any>(&self, event: T) {
        self.publish_ref(&event)
    }

    /// Publishes a borrowed event.
    pub fn publish_ref(&self, event: &dyn Any) {
        let entries = self.0.entries.read().clone();
        if entries.is_empty() {
            return;
        }
        let type_id = event.type_id();
        for e in entries.iter() {
            if e.type_id.is_none_or(|t| t == type_id) {
                (e.handler)(event);
            }
        }
    }

    /// Number of live subscriptions.
    pub fn subscription_count(&self) -> usize {
        self.0.entries.read().len()
    }
}
