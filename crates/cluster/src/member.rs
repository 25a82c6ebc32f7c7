//! [`Member`] and the topology hash.

pub use crate::proto::{ClusterTopology, Member};

/// A member as providers store it in their registry (etcd key, ZooKeeper
/// znode), as JSON:
/// `{"id":"3f1c…","host":"10.0.0.1","port":4020,"kinds":["cart"],"cluster":"shop"}`.
/// `host`/`port` are the member's remoting address; unknown fields are
/// ignored, so later versions may add some.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MemberInfo {
    /// The member id (its actor system id, new on every start).
    pub id: String,
    /// Remoting host.
    pub host: String,
    /// Remoting port.
    pub port: u16,
    /// Kinds the member hosts.
    pub kinds: Vec<String>,
    /// The cluster name.
    pub cluster: String,
}

impl MemberInfo {
    /// The info of `member` in cluster `cluster`.
    pub fn new(cluster: &str, member: &Member) -> Self {
        MemberInfo {
            id: member.id.clone(),
            host: member.host.clone(),
            port: u16::try_from(member.port).unwrap_or(0),
            kinds: member.kinds.clone(),
            cluster: cluster.to_string(),
        }
    }

    /// The cluster member it describes.
    pub fn to_member(&self) -> Member {
        Member::new(self.host.clone(), self.port, self.id.clone(), self.kinds.clone())
    }

    /// As JSON bytes.
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing plain strings and numbers cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// From JSON bytes; the error says why they are not a member's info.
    pub fn from_json(bytes: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("not a protoactor member's info: {e}"))
    }
}

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
    fn member_info_json_is_frozen_and_round_trips() {
        let member = Member::new("127.0.0.1", 4020, "m1", vec!["echo".into()]);
        let info = MemberInfo::new("shop", &member);
        let json = String::from_utf8(info.to_json()).expect("utf8");
        assert_eq!(json, r#"{"id":"m1","host":"127.0.0.1","port":4020,"kinds":["echo"],"cluster":"shop"}"#);
        assert_eq!(MemberInfo::from_json(json.as_bytes()).expect("parse").to_member(), member);
        assert!(MemberInfo::from_json(b"{}").is_err());
    }

    #[test]
    fn hash_ignores_order_and_separates_ids() {
        assert_eq!(topology_hash(["a", "b", "c"]), topology_hash(["c", "a", "b"]));
        assert_ne!(topology_hash(["ab", "c"]), topology_hash(["a", "bc"]));
        assert_ne!(topology_hash(["a"]), topology_hash(["a", "b"]));
        // Frozen: a change here changes what members on different versions agree on.
        assert_eq!(topology_hash(["member-1", "member-2"]), 0x54d4_deef_bcee_2976_u64);
    }
}
