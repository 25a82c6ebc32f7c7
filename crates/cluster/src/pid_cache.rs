//! [`PidCache`]: where this member last found each grain.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use parking_lot::RwLock;
use protoactor_actor::Pid;

struct Entry {
    pid: Pid,
    /// Milliseconds since the cache was created, at the last hit.
    last_used: AtomicU64,
}

/// Identity -> entry, for one kind. Identities are hashed on every cluster
/// request: a fast seeded hash instead of SipHash.
type KindMap = Arc<DashMap<Arc<str>, Entry, foldhash::fast::RandomState>>;

/// How stale an entry's `last_used` may get before a hit rewrites it. The
/// idle sweep works in minutes; rewriting on every hit would dirty the
/// entry's cache line on every request from every thread.
const TOUCH_MS: u64 = 1_000;

/// Identity -> pid of its activation, as last resolved by this member.
/// Lookups take no lock but the map's shard and allocate nothing.
pub struct PidCache {
    kinds: RwLock<HashMap<Arc<str>, KindMap>>,
    epoch: Instant,
}

impl fmt::Debug for PidCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PidCache").field("len", &self.len()).finish()
    }
}

impl Default for PidCache {
    fn default() -> Self {
        PidCache { kinds: RwLock::new(HashMap::new()), epoch: Instant::now() }
    }
}

impl PidCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn kind(&self, kind: &str) -> Option<KindMap> {
        self.kinds.read().get(kind).cloned()
    }

    /// The cached pid of `kind/identity`.
    pub fn get(&self, identity: &str, kind: &str) -> Option<Pid> {
        // Under the read guard rather than cloning the kind's map: two
        // atomic updates less on a line every requesting thread shares.
        let kinds = self.kinds.read();
        let entry = kinds.get(kind)?.get(identity)?;
        let now = self.now();
        if now.saturating_sub(entry.last_used.load(Ordering::Relaxed)) >= TOUCH_MS {
            entry.last_used.store(now, Ordering::Relaxed);
        }
        Some(entry.pid.clone())
    }

    /// Caches `pid` for `kind/identity`, replacing any earlier entry.
    pub fn set(&self, identity: &str, kind: &str, pid: Pid) {
        let map = match self.kind(kind) {
            Some(map) => map,
            None => self.kinds.write().entry(Arc::from(kind)).or_default().clone(),
        };
        map.insert(Arc::from(identity), Entry { pid, last_used: AtomicU64::new(self.now()) });
    }

    /// Forgets `kind/identity`.
    pub fn remove(&self, identity: &str, kind: &str) -> bool {
        self.kind(kind).is_some_and(|m| m.remove(identity).is_some())
    }

    /// Forgets `kind/identity` only if it still points at `pid` (a newer
    /// activation found meanwhile stays).
    pub fn remove_by_value(&self, identity: &str, kind: &str, pid: &Pid) -> bool {
        self.kind(kind).is_some_and(|m| {
            m.remove_if(identity, |_, e| e.pid.id() == pid.id() && e.pid.address() == pid.address()).is_some()
        })
    }

    /// Forgets every activation at `address` (a member that left). Returns how many.
    pub fn remove_by_address(&self, address: &str) -> usize {
        self.remove_where(|pid| pid.address() == address)
    }

    /// Forgets every entry whose pid matches `pred`. Returns how many.
    pub fn remove_where(&self, mut pred: impl FnMut(&Pid) -> bool) -> usize {
        let maps: Vec<_> = self.kinds.read().values().cloned().collect();
        let mut removed = 0;
        for map in maps {
            map.retain(|_, e| {
                let keep = !pred(&e.pid);
                removed += usize::from(!keep);
                keep
            });
        }
        removed
    }

    /// Forgets entries for pids not at `local_address` unused for `ttl`.
    pub fn remove_idle_remote(&self, local_address: &str, ttl: Duration) -> usize {
        let now = self.now();
        let ttl = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let maps: Vec<_> = self.kinds.read().values().cloned().collect();
        let mut removed = 0;
        for map in maps {
            map.retain(|_, e| {
                let idle = now.saturating_sub(e.last_used.load(Ordering::Relaxed)) >= ttl;
                let keep = !(idle && e.pid.address() != local_address);
                removed += usize::from(!keep);
                keep
            });
        }
        removed
    }

    /// Entries cached.
    pub fn len(&self) -> usize {
        self.kinds.read().values().map(|m| m.len()).sum()
    }

    /// True if nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_get_remove() {
        let cache = PidCache::new();
        let a = Pid::new("h:1", "a");
        cache.set("x", "k", a.clone());
        assert_eq!(cache.get("x", "k"), Some(a.clone()));
        assert_eq!(cache.get("x", "other"), None);
        assert!(!cache.remove_by_value("x", "k", &Pid::new("h:1", "b")));
        assert!(cache.remove_by_value("x", "k", &a));
        assert_eq!(cache.get("x", "k"), None);
    }

    #[test]
    fn remove_by_address_and_idle() {
        let cache = PidCache::new();
        cache.set("1", "k", Pid::new("h:1", "a"));
        cache.set("2", "k", Pid::new("h:2", "b"));
        cache.set("3", "j", Pid::new("h:2", "c"));
        assert_eq!(cache.remove_by_address("h:2"), 2);
        assert_eq!(cache.len(), 1);
        cache.set("4", "k", Pid::new("h:3", "d"));
        assert_eq!(cache.remove_idle_remote("h:1", Duration::ZERO), 1);
        assert_eq!(cache.get("1", "k").map(|p| p.id().to_string()), Some("a".into()));
    }
}
