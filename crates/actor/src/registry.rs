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

/// Shards of both maps. [`SeqHasher`] places its shard bits for exactly 64.
const SHARDS: usize = 64;

/// Hashes the number of a generated id so that spawning and stopping walk
/// the table in order instead of missing the cache on every call: consecutive
/// numbers go to consecutive shards (bits 51-56, the ones `DashMap` picks the
/// shard from), and within a shard to consecutive slots (the low bits, where
/// the table starts its probe). The top 7 bits, the table's tag, are mixed.
/// With a scattering hash the registry was about half of what spawning
/// 200,000 short-lived actors cost.
#[derive(Default, Clone, Copy)]
pub(crate) struct SeqHasher(u64);

impl std::hash::Hasher for SeqHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are hashed here; any other input still spreads.
        for &b in bytes {
            self.0 = (self.0 << 8) | b as u64;
        }
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    #[inline]
    fn finish(&self) -> u64 {
        let n = self.0;
        let tag = (n.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 57) << 57;
        let shard = (n & (SHARDS as u64 - 1)) << 51;
        let slot = (n >> 6) & ((1 << 51) - 1);
        tag | shard | slot
    }
}

type SeqHash = std::hash::BuildHasherDefault<SeqHasher>;

type Named = (Arc<str>, ProcessRef);

/// The processes whose ids end in one generated number: nearly always one.
struct Generated {
    id: Arc<str>,
    process: ProcessRef,
    /// Other ids with the same number (`a$5` named by hand beside `$5`).
    /// Boxed: one pointer in every slot, for what almost never happens.
    #[allow(clippy::box_collection)]
    more: Option<Box<Vec<Named>>>,
}

impl Generated {
    fn find(&self, id: &str) -> Option<&ProcessRef> {
        if &*self.id == id {
            return Some(&self.process);
        }
        self.more.as_ref()?.iter().find(|(other, _)| &**other == id).map(|(_, p)| p)
    }
}

/// Value of each character of [`ID_ALPHABET`]; 255 for any other byte.
const DIGIT_VALUES: [u8; 256] = {
    let mut values = [255u8; 256];
    let mut i = 0;
    while i < ID_ALPHABET.len() {
        values[ID_ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    values
};

/// The number at the end of an id of the generated form (`<prefix>$` and 1
/// to 10 base-64 digits), which is where such an id is stored. Ids named by
/// hand may have that form too (`$gossip`): the registry routes by form
/// alone and compares whole ids, so they are found and kept unique all the same.
#[inline]
fn generated_number(id: &str) -> Option<u64> {
    let bytes = id.as_bytes();
    let dollar = bytes.iter().rposition(|&b| b == b'$')?;
    let digits = &bytes[dollar + 1..];
    if digits.is_empty() || digits.len() > 10 {
        return None;
    }
    let mut n = 0u64;
    for &b in digits {
        let value = DIGIT_VALUES[b as usize];
        if value == 255 {
            return None;
        }
        n = (n << 6) | value as u64;
    }
    Some(n)
}

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
    /// Ids of the generated form, by their number (see [`SeqHasher`]).
    generated: DashMap<u64, Generated, SeqHash>,
    next_id: AtomicU64,
    resolvers: RwLock<Vec<Arc<dyn AddressResolver>>>,
}

const ID_ALPHABET: &[u8; 64] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ~+";

impl ProcessRegistry {
    pub(crate) fn new() -> Self {
        ProcessRegistry {
            local: DashMap::with_capacity_and_hasher_and_shard_amount(0, IdHash::default(), SHARDS),
            generated: DashMap::with_capacity_and_hasher_and_shard_amount(0, SeqHash::default(), SHARDS),
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
        if let Some(n) = generated_number(id) {
            return match self.generated.entry(n) {
                Entry::Vacant(v) => {
                    v.insert(Generated { id: id.clone(), process, more: None });
                    true
                }
                Entry::Occupied(mut o) => {
                    if o.get().find(id).is_some() {
                        return false;
                    }
                    o.get_mut().more.get_or_insert_with(Default::default).push((id.clone(), process));
                    true
                }
            };
        }
        match self.local.entry(id.clone()) {
            Entry::Occupied(_) => false,
            Entry::Vacant(v) => {
                v.insert(process);
                true
            }
        }
    }

    pub(crate) fn remove(&self, id: &str) {
        let Some(n) = generated_number(id) else {
            self.local.remove(id);
            return;
        };
        if let Entry::Occupied(mut o) = self.generated.entry(n) {
            let slot = o.get_mut();
            if &*slot.id == id {
                match slot.more.as_mut().and_then(|more| more.pop()) {
                    Some((other, process)) => {
                        slot.id = other;
                        slot.process = process;
                    }
                    None => {
                        o.remove();
                    }
                }
            } else if let Some(more) = slot.more.as_mut() {
                more.retain(|(other, _)| &**other != id);
            }
        }
    }

    pub(crate) fn get_local(&self, id: &str) -> Option<ProcessRef> {
        match generated_number(id) {
            Some(n) => self.generated.get(&n)?.find(id).cloned(),
            None => self.local.get(id).map(|p| p.value().clone()),
        }
    }

    pub(crate) fn resolve_remote(&self, pid: &Pid) -> Option<ProcessRef> {
        self.resolvers.read().iter().find_map(|r| r.resolve(pid))
    }

    pub(crate) fn add_resolver(&self, resolver: Arc<dyn AddressResolver>) {
        self.resolvers.write().push(resolver);
    }

    pub(crate) fn all(&self) -> Vec<(String, ProcessRef)> {
        let mut all: Vec<_> = self.local.iter().map(|e| (e.key().to_string(), e.value().clone())).collect();
        for e in self.generated.iter() {
            all.push((e.id.to_string(), e.process.clone()));
            all.extend(e.more.iter().flat_map(|more| more.iter()).map(|(id, p)| (id.to_string(), p.clone())));
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Envelope, SystemMessage};
    use crate::process::Process;

    struct Nobody;
    impl Process for Nobody {
        fn send_user_message(&self, _: &Pid, _: Envelope) {}
        fn send_system_message(&self, _: &Pid, _: SystemMessage) {}
    }

    fn process() -> ProcessRef {
        Arc::new(Nobody)
    }

    #[test]
    fn generated_ids_read_back_as_their_number() {
        let registry = ProcessRegistry::new();
        for _ in 0..5000 {
            let id = registry.next_id();
            let n = registry.next_id.load(Ordering::Relaxed) - 1;
            assert_eq!(generated_number(id.as_str()), Some(n), "{}", id.as_str());
            assert_eq!(generated_number(&format!("kind/x$${}", &id.as_str()[1..])), Some(n));
        }
        for named in ["plain", "$", "a$", "a$b/c", "$héllo", "$12345678901", "a$b-c"] {
            assert_eq!(generated_number(named), None, "{named}");
        }
    }

    #[test]
    fn consecutive_numbers_take_consecutive_shards_and_slots() {
        use std::hash::BuildHasher;
        let hash = |n: u64| SeqHash::default().hash_one(n);
        let shard = |h: u64| ((h << 7) >> (64 - 6)) as usize;
        for n in 0..1000u64 {
            assert_eq!(shard(hash(n)), (n % 64) as usize);
            assert_eq!(hash(n) & ((1 << 51) - 1), n / 64);
        }
        let tags: std::collections::HashSet<u64> = (0..1000u64).map(|n| hash(n) >> 57).collect();
        assert!(tags.len() > 100, "tags do not vary: {}", tags.len());
    }

    #[test]
    fn ids_of_the_generated_form_named_by_hand_stay_unique_and_found() {
        let registry = ProcessRegistry::new();
        let ids: Vec<Arc<str>> = ["$5", "a$5", "b/c$$5", "$gossip", "plain"].iter().map(|s| Arc::from(*s)).collect();
        for id in &ids {
            assert!(registry.try_add(id, process()), "{id}");
        }
        for id in &ids {
            assert!(!registry.try_add(id, process()), "{id} registered twice");
            assert!(registry.get_local(id).is_some(), "{id}");
        }
        assert_eq!(registry.all().len(), ids.len());
        assert!(registry.get_local("c$5").is_none());
        registry.remove("$5");
        assert!(registry.get_local("$5").is_none());
        assert!(registry.get_local("a$5").is_some() && registry.get_local("b/c$$5").is_some());
        registry.remove("b/c$$5");
        assert!(registry.get_local("a$5").is_some() && registry.get_local("b/c$$5").is_none());
        registry.remove("a$5");
        registry.remove("$gossip");
        registry.remove("plain");
        assert!(registry.all().is_empty());
        assert!(registry.try_add(&ids[0], process()));
    }
}
