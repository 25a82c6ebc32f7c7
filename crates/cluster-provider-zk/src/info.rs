//! What a member's znode holds, and how znodes are named.

use protoactor_cluster::Member;
use serde::{Deserialize, Serialize};

/// The prefix of every member znode; ZooKeeper appends the sequence number.
pub const NODE_PREFIX: &str = "member-";

/// The data of a member znode, as JSON:
/// `{"id":"…","host":"127.0.0.1","port":4020,"kinds":["echo"],"cluster":"shop"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    /// The member id (its actor system id).
    pub id: String,
    /// The remoting host.
    pub host: String,
    /// The remoting port.
    pub port: u16,
    /// The kinds it hosts.
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
}

/// The sequence number of a member znode name (`member-0000000007` -> 7).
pub(crate) fn sequence(node: &str) -> Option<i64> {
    let digits = node.strip_prefix(NODE_PREFIX)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Leadership among the members of a cluster changed: the member with the
/// lowest znode sequence number leads. Published on the actor system's event
/// stream by the [`ZkProvider`](crate::ZkProvider) of every member and
/// client, once per change (and once when the first leader is known).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderChanged {
    /// The cluster name.
    pub cluster: String,
    /// The new leader's member id.
    pub leader_id: String,
    /// The new leader's remoting address (`host:port`).
    pub leader_address: String,
    /// True on the leader itself.
    pub is_self: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_of_member_nodes() {
        assert_eq!(sequence("member-0000000007"), Some(7));
        assert_eq!(sequence("member-0000000000"), Some(0));
        assert_eq!(sequence("member-"), None);
        assert_eq!(sequence("lock-0000000001"), None);
        assert_eq!(sequence("member-12a"), None);
    }

    #[test]
    fn member_info_round_trips_as_json() {
        let member = Member::new("127.0.0.1", 4020, "m1", vec!["echo".into()]);
        let info = MemberInfo::new("shop", &member);
        let json = serde_json::to_string(&info).expect("serialize");
        assert_eq!(json, r#"{"id":"m1","host":"127.0.0.1","port":4020,"kinds":["echo"],"cluster":"shop"}"#);
        let back: MemberInfo = serde_json::from_str(&json).expect("parse");
        assert_eq!(back.to_member(), member);
    }
}
