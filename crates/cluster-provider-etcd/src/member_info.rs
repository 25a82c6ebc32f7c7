//! [`MemberInfo`]: the JSON value stored under a member's key, and the view
//! of the registered members built from those keys.

use std::collections::BTreeMap;

use protoactor_cluster::Member;

/// The value under `<prefix>/<cluster>/<member-id>`: the cluster's shared
/// [`MemberInfo`] JSON.
pub use protoactor_cluster::MemberInfo;

/// What one key of the watched prefix holds, once read.
#[derive(Debug)]
pub(crate) enum Entry {
    /// A member of our cluster.
    Member(Member),
    /// Something else; says why it does not count.
    Ignored(String),
}

/// Reads the value of `key` for `cluster`.
pub(crate) fn parse(cluster: &str, key: &str, value: &[u8]) -> Entry {
    let info = match MemberInfo::from_json(value) {
        Ok(info) => info,
        Err(e) => return Entry::Ignored(e),
    };
    if info.cluster != cluster {
        return Entry::Ignored(format!("belongs to cluster `{}`, not `{cluster}`", info.cluster));
    }
    if !key.ends_with(&format!("/{}", info.id)) {
        return Entry::Ignored(format!("holds member id `{}`, which is not the key's last segment", info.id));
    }
    Entry::Member(info.to_member())
}

/// The registered members by key, as last read from etcd.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    members: BTreeMap<String, Member>,
}

impl Registry {
    /// Forgets everything (before a full re-list).
    pub(crate) fn clear(&mut self) {
        self.members.clear();
    }

    /// Records a put; returns why it was ignored, if it was.
    pub(crate) fn put(&mut self, cluster: &str, key: &str, value: &[u8]) -> Option<String> {
        match parse(cluster, key, value) {
            Entry::Member(m) => {
                self.members.insert(key.to_string(), m);
                None
            }
            Entry::Ignored(why) => {
                self.members.remove(key);
                Some(why)
            }
        }
    }

    /// Records a delete.
    pub(crate) fn delete(&mut self, key: &str) {
        self.members.remove(key);
    }

    /// The full member list: `me` (always, while registered or trying to
    /// be: our own key may be briefly gone after a lost lease) and every
    /// other registered member, sorted by id.
    pub(crate) fn members(&self, me: Option<&Member>) -> Vec<Member> {
        let mut members: Vec<Member> = me.into_iter().cloned().collect();
        members.extend(self.members.values().filter(|m| me.is_none_or(|me| me.id != m.id)).cloned());
        members.sort_by(|a, b| a.id.cmp(&b.id));
        members.dedup_by(|a, b| a.id == b.id);
        members
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(cluster: &str, id: &str) -> Vec<u8> {
        serde_json::to_vec(&MemberInfo::new(cluster, &Member::new("127.0.0.1", 4000, id, vec!["echo".into()])))
            .expect("json")
    }

    #[test]
    fn members_of_other_clusters_and_garbage_are_ignored() {
        let mut r = Registry::default();
        assert!(r.put("c", "/p/c/m1", &value("c", "m1")).is_none());
        assert!(r.put("c", "/p/c/m2", &value("other", "m2")).is_some());
        assert!(r.put("c", "/p/c/m3", b"not json").is_some());
        assert!(r.put("c", "/p/c/m4", &value("c", "m5")).is_some(), "id must match the key");
        let ids: Vec<String> = r.members(None).into_iter().map(|m| m.id).collect();
        assert_eq!(ids, ["m1"]);
        assert_eq!(r.members(None)[0].kinds, ["echo"]);
    }

    #[test]
    fn self_is_always_listed_once_and_deletes_apply() {
        let mut r = Registry::default();
        let me = Member::new("h", 1, "m2", vec![]);
        r.put("c", "/p/c/m1", &value("c", "m1"));
        r.put("c", "/p/c/m2", &value("c", "m2"));
        let ids: Vec<String> = r.members(Some(&me)).into_iter().map(|m| m.id).collect();
        assert_eq!(ids, ["m1", "m2"]);
        r.delete("/p/c/m2");
        r.delete("/p/c/m1");
        let ids: Vec<String> = r.members(Some(&me)).into_iter().map(|m| m.id).collect();
        assert_eq!(ids, ["m2"]);
        let unknown = br#"{"id":"m9","host":"h","port":1,"kinds":[],"cluster":"c","zone":"eu"}"#;
        assert!(r.put("c", "/p/c/m9", unknown).is_none(), "unknown fields are fine");
    }
}
