//! What a member's znode holds, and how znodes are named.

/// The prefix of every member znode; ZooKeeper appends the sequence number.
pub const NODE_PREFIX: &str = "member-";

/// The data of a member znode: the cluster's shared [`MemberInfo`] JSON.
pub use protoactor_cluster::MemberInfo;

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
}
