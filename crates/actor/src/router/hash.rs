//! A stable hash and the consistent-hash ring.

use std::fmt::Write as _;

use crate::pid::Pid;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// A 64-bit hash of `bytes` that is the same in every process, build and
/// platform: FNV-1a followed by murmur3's `fmix64` finaliser.
///
/// FNV-1a alone leaves the high bits of short, similar inputs (`"node#1"`,
/// `"node#2"`) poorly mixed; the finaliser spreads them over the whole ring.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut hash = FNV_OFFSET;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    fmix64(hash)
}

fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

/// A hash ring with `replicas` virtual nodes per member. A key belongs to the
/// first virtual node at or after its hash (wrapping), so adding or removing a
/// member only moves the keys adjacent to that member's virtual nodes.
#[derive(Debug)]
pub(crate) struct HashRing {
    /// (position, member index), sorted by position and then member name so
    /// the ring does not depend on the order members were added in.
    nodes: Vec<(u64, usize)>,
}

impl HashRing {
    pub(crate) fn new(members: &[Pid], replicas: usize) -> Self {
        let names: Vec<String> = members.iter().map(|m| m.to_string()).collect();
        let mut nodes = Vec::with_capacity(members.len() * replicas);
        let mut buf = String::new();
        for (index, name) in names.iter().enumerate() {
            for replica in 0..replicas {
                buf.clear();
                let _ = write!(buf, "{name}#{replica}");
                nodes.push((stable_hash(buf.as_bytes()), index));
            }
        }
        nodes.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| names[a.1].cmp(&names[b.1])));
        HashRing { nodes }
    }

    /// The index (into the members given to [`new`](Self::new)) owning `key`.
    pub(crate) fn lookup(&self, key: &[u8]) -> Option<usize> {
        if self.nodes.is_empty() {
            return None;
        }
        let hash = stable_hash(key);
        let pos = self.nodes.partition_point(|(h, _)| *h < hash);
        let (_, index) = self.nodes[if pos == self.nodes.len() { 0 } else { pos }];
        Some(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pids(n: usize) -> Vec<Pid> {
        (0..n).map(|i| Pid::new("nonhost", format!("routee-{i}"))).collect()
    }

    #[test]
    fn hash_is_stable_and_known() {
        // FNV-1a of "" is the offset basis; the finaliser of it is fixed too.
        assert_eq!(stable_hash(b""), fmix64(FNV_OFFSET));
        assert_eq!(stable_hash(b"a"), fmix64(0xaf63_dc4c_8601_ec8c));
        assert_ne!(stable_hash(b"node#1"), stable_hash(b"node#2"));
    }

    #[test]
    fn removing_a_member_moves_only_its_keys() {
        let members = pids(5);
        let ring = HashRing::new(&members, 100);
        let removed = members[2].clone();
        let rest: Vec<Pid> = members.iter().filter(|p| **p != removed).cloned().collect();
        let smaller = HashRing::new(&rest, 100);
        let mut moved = 0;
        for key in 0..1000 {
            let key = format!("key-{key}");
            let before = &members[ring.lookup(key.as_bytes()).expect("non-empty ring")];
            let after = &rest[smaller.lookup(key.as_bytes()).expect("non-empty ring")];
            if *before == removed {
                moved += 1;
            } else {
                assert_eq!(before, after, "{key} moved although its member stayed");
            }
        }
        // With 100 replicas each member owns roughly a fifth of the keys.
        assert!((100..=320).contains(&moved), "member 2 owned {moved} of 1000 keys");
    }

    #[test]
    fn member_order_does_not_matter() {
        let members = pids(4);
        let mut reversed = members.clone();
        reversed.reverse();
        let a = HashRing::new(&members, 50);
        let b = HashRing::new(&reversed, 50);
        for key in 0..200 {
            let key = key.to_string();
            let x = &members[a.lookup(key.as_bytes()).expect("non-empty")];
            let y = &reversed[b.lookup(key.as_bytes()).expect("non-empty")];
            assert_eq!(x, y);
        }
    }

    #[test]
    fn empty_ring_has_no_owner() {
        assert_eq!(HashRing::new(&[], 100).lookup(b"k"), None);
    }
}
