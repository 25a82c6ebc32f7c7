//! The process registry: local ids to processes, plus resolvers for other addresses.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use parking_lot::RwLock;

use crate::pid::Pid;
use crate::process::{AddressResolver, ProcessRef};

/// A fast hasher for registry ids (FxHash-style multiply-rotate over 8-byte
/// words). Ids are generated here or chosen by the program; ids read from
/// the wire are only looked up, never inserted, so flooding is not a concern.
#[derive(Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl IdHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl std::hash::Hasher for IdHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_u8(&mut self, byte: u8) {
        self.add(byte as u64);
    }

    /// Mixes every input bit into the low bits (the table index) and the
    /// high bits (the tag and the shard). Without it, ids that differ only
    /// in their last characters share their low bits and pile up in a few
    /// buckets (long probes, key compares on every spawn and stop).
    #[inline]
    fn finish(&self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h
    }
}

type IdHash = std::hash::BuildHasherDefault<IdHasher>;

/// An id made by [`ProcessRegistry::next_id`].
pub(crate) struct GeneratedId {
    buf: [u8; 12],
    start: usize,
}

impl GeneratedId {
    pub(crate) fn as_str(&self) -> &str {
        // `$` and the id alphabet are ASCII, so this never fails.
        std::str::from_utf8(&self.buf[self.start..]).unwrap_or("$")
    }
}

/// `prefix` + `suffix` as one shared string, copied once (through the stack
/// when short).
pub(crate) fn joined(prefix: &str, suffix: &str) -> Arc<str> {
    let mut buf = [0u8; 64];
    let len = prefix.len() + suffix.len();
    if len > buf.len() {
        return Arc::from(format!("{prefix}{suffix}"));
    }
    buf[..prefix.len()].copy_from_slice(prefix.as_bytes());
    buf[prefix.len()..len].copy_from_slice(suffix.as_bytes());
    // Two whole `str`s back to back are valid UTF-8.
    Arc::from(std::str::from_utf8(&buf[..len]).unwrap_or(prefix))
}

/// Maps local process ids to processes. Sharded, so concurrent spawns and
/// lookups rarely meet on one lock; most sends skip it entirely through the
/// resolution cached in each [`Pid`].
pub(crate) struct ProcessRegistry {
    local: DashMap<Arc<str>, ProcessRef, IdHash>,
    next_id: AtomicU64,
    resolvers: RwLock<Vec<Arc<dyn AddressResolver>>>,
}

const ID_ALPHABET: &[u8; 64] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ~+";

impl ProcessRegistry {
    pub(crate) fn new() -> Self {
        ProcessRegistry {
            local: DashMap::with_capacity_and_hasher_and_shard_amount(0, IdHash::default(), 64),
            next_id: AtomicU64::new(1),
            resolvers: RwLock::new(Vec::new()),
        }
    }

    /// Appends a fresh unique id (`$` and a base-64 counter) to `prefix`.
    /// A fresh `$`-prefixed id, on the stack (no allocation).
    pub(crate) fn next_id(&self) -> GeneratedId {
        let mut n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut buf = [0u8; 12];
        let mut i = buf.len();
        loop {
            i -= 1;
            buf[i] = ID_ALPHABET[(n & 63) as usize];
            n >>= 6;
            if n == 0 {
                break;
            }
        }
        i -= 1;
        buf[i] = b'$';
        GeneratedId { buf, start: i }
    }

    /// Registers `process` under `id`; false if the id is taken.
    pub(crate) fn try_add(&self, id: &Arc<str>, process: ProcessRef) -> bool {
        match self.local.entry(id.clone()) {
            Entry::Occupied(_) => false,
            Entry::Vacant(v) => {
                v.insert(process);
                true
            }
        }
    }

    pub(crate) fn remove(&self, id: &str) {
        self.local.remove(id);
    }

    pub(crate) fn get_local(&self, id: &str) -> Option<ProcessRef> {
        self.local.get(id).map(|p| p.value().clone())
    }

    pub(crate) fn resolve_remote(&self, pid: &Pid) -> Option<ProcessRef> {
        self.resolvers.read().iter().find_map(|r| r.resolve(pid))
    }

    pub(crate) fn add_resolver(&self, resolver: Arc<dyn AddressResolver>) {
        self.resolvers.write().push(resolver);
    }

    pub(crate) fn all(&self) -> Vec<(String, ProcessRef)> {
        self.local.iter().map(|e| (e.key().to_string(), e.value().clone())).collect()
    }
}
