//! [`Member`] and the topology hash.

pub use crate::proto::{ClusterTopology, Member};

impl Member {
    /// A member at `host:port` with system id `id`, hosting `kinds`.
    pub fn new(host: impl Into<String>, port: u16, id: impl Into<String>, kinds: Vec<String>) -> Self {
        Member { host: host.into(), port: i32::from(port), id: id.into(), kinds }
    }

    /// `host:port`, the member's remote address.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// True if the member hosts `kind`.
    pub fn hosts(&self, kind: &str) -> bool {
        self.kinds.iter().any(|k| k == kind)
    }
}

/// The hash of a set of member ids, independent of order: two members agree
/// on the topology iff their hashes match. FNV-1a (64 bit) over the sorted
/// ids, each terminated by a zero byte so `ab`+`c` differs from `a`+`bc`.
pub fn topology_hash<'a>(ids: impl IntoIterator<Item = &'a str>) -> u64 {
    let mut ids: Vec<&str> = ids.into_iter().collect();
    ids.sort_unstable();
    ids.dedup();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for id in ids {
        for b in id.bytes().chain(std::iter::once(0)) {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_ignores_order_and_separates_ids() {
        assert_eq!(topology_hash(["a", "b", "c"]), topology_hash(["c", "a", "b"]));
        assert_ne!(topology_hash(["ab", "c"]), topology_hash(["a", "bc"]));
        assert_ne!(topology_hash(["a"]), topology_hash(["a", "b"]));
        // Frozen: a change here changes what members on different versions agree on.
        assert_eq!(topology_hash(["member-1", "member-2"]), 0x54d4_deef_bcee_2976_u64);
    }
}
