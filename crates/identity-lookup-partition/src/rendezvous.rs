//! Owner selection: rendezvous (highest random weight) hashing over the
//! members that host the identity's kind.
//!
//! Every member and client computes the same owner from the same topology,
//! with no shared state. When one member of N joins or leaves, only the
//! identities it wins or owned move (about 1/N of them).

use protoactor_cluster::{ClusterIdentity, Member, Topology};

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0100_0000_01b3;

fn fnv1a(seed: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(seed, |h, b| (h ^ u64::from(*b)).wrapping_mul(FNV_PRIME))
}

/// murmur3's 64-bit finalizer: spreads the combined hash so that scores of
/// one key across members are independent.
fn mix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The hash of an identity key (kind and identity, separated).
pub(crate) fn key_hash(identity: &ClusterIdentity) -> u64 {
    fnv1a(fnv1a(fnv1a(FNV_OFFSET, identity.kind.as_bytes()), &[0]), identity.identity.as_bytes())
}

fn score(member_id: &str, key: u64) -> u64 {
    mix(fnv1a(FNV_OFFSET, member_id.as_bytes()) ^ key)
}

/// The owner of `identity` among `topology`'s members that host its kind.
pub(crate) fn owner<'a>(topology: &'a Topology, identity: &ClusterIdentity) -> Option<&'a Member> {
    let key = key_hash(identity);
    // Ties (practically impossible) go to the smaller id: members are sorted by id.
    topology
        .members
        .iter()
        .filter(|m| m.hosts(&identity.kind))
        .fold(None, |best: Option<(&Member, u64)>, m| {
            let s = score(&m.id, key);
            match best {
                Some((_, b)) if b >= s => best,
                _ => Some((m, s)),
            }
        })
        .map(|(m, _)| m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use protoactor_cluster::topology_hash;

    fn topology(n: usize) -> Topology {
        let members: Vec<Member> = (0..n)
            .map(|i| Member::new("127.0.0.1", 9000 + i as u16, format!("member-{i:02}"), vec!["k".into()]))
            .collect();
        Topology { hash: topology_hash(members.iter().map(|m| m.id.as_str())), members }
    }

    fn ids(n: usize) -> Vec<ClusterIdentity> {
        (0..n).map(|i| ClusterIdentity::new(format!("id-{i}"), "k")).collect()
    }

    #[test]
    fn only_members_hosting_the_kind_own() {
        let mut t = topology(3);
        t.members[1].kinds = vec!["other".into()];
        for id in ids(500) {
            let o = owner(&t, &id).expect("an owner");
            assert_ne!(o.id, "member-01");
        }
        assert!(owner(&t, &ClusterIdentity::new("x", "missing")).is_none());
    }

    #[test]
    fn load_is_spread_evenly() {
        let t = topology(5);
        let mut counts = std::collections::HashMap::new();
        for id in ids(20_000) {
            *counts.entry(owner(&t, &id).expect("owner").id.clone()).or_insert(0usize) += 1;
        }
        for (m, c) in counts {
            assert!((3_400..=4_600).contains(&c), "{m} owns {c} of 20000 (expected about 4000)");
        }
    }

    /// Adding or removing one member of N moves about 1/N of identities,
    /// and only identities that involve that member.
    #[test]
    fn one_member_change_moves_about_one_nth() {
        let keys = ids(20_000);
        for n in [3usize, 5, 10] {
            let before = topology(n);
            let after = topology(n + 1);
            let joined = &after.members[n].id;
            let mut moved = 0usize;
            for k in &keys {
                let a = &owner(&before, k).expect("owner").id;
                let b = &owner(&after, k).expect("owner").id;
                if a != b {
                    assert_eq!(b, joined, "an identity moved between two members that did not change");
                    moved += 1;
                }
            }
            let expected = keys.len() / (n + 1);
            assert!(moved.abs_diff(expected) < expected / 5, "join to {}: moved {moved}, expected ~{expected}", n + 1);

            // Removing a member moves exactly the identities it owned.
            let mut smaller = before.clone();
            let gone = smaller.members.remove(1);
            let mut moved = 0usize;
            for k in &keys {
                let a = &owner(&before, k).expect("owner").id;
                let b = &owner(&smaller, k).expect("owner").id;
                if a != b {
                    assert_eq!(a, &gone.id);
                    moved += 1;
                }
            }
            let expected = keys.len() / n;
            assert!(moved.abs_diff(expected) < expected / 5, "leave from {n}: moved {moved}, expected ~{expected}");
        }
    }
}
