//! [`ZkConfig`]: where the ZooKeeper ensemble is and how to use it.

use std::fmt;
use std::time::Duration;

use protoactor_cluster::Error;

/// The default root znode under which clusters register.
pub const DEFAULT_ROOT: &str = "/protoactor";

/// How a [`ZkProvider`](crate::ZkProvider) reaches ZooKeeper.
///
/// Members register under `<chroot>/<root>/<cluster name>/`; every member
/// of one cluster must use the same connect string, chroot and root.
#[derive(Clone)]
pub struct ZkConfig {
    pub(crate) connect: String,
    pub(crate) root: String,
    pub(crate) chroot: Option<String>,
    pub(crate) session_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) auth: Option<(String, String)>,
}

impl fmt::Debug for ZkConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZkConfig")
            .field("connect", &self.connect)
            .field("root", &self.root)
            .field("chroot", &self.chroot)
            .field("session_timeout", &self.session_timeout)
            .field("connect_timeout", &self.connect_timeout)
            // Never print the password.
            .field("auth_user", &self.auth.as_ref().map(|(user, _)| user))
            .finish()
    }
}

impl ZkConfig {
    /// Connects to `connect`, a ZooKeeper connect string such as
    /// `"zk1:2181,zk2:2181,zk3:2181"`. Defaults: root [`DEFAULT_ROOT`], no
    /// chroot, session timeout 10 s, connect timeout 10 s, no auth.
    pub fn new(connect: impl Into<String>) -> Self {
        ZkConfig {
            connect: connect.into(),
            root: DEFAULT_ROOT.to_string(),
            chroot: None,
            session_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            auth: None,
        }
    }

    /// The znode under which clusters register (absolute, e.g. `/protoactor`).
    pub fn with_root(mut self, root: impl Into<String>) -> Self {
        self.root = root.into();
        self
    }

    /// Roots every path of this provider at `chroot` (absolute, e.g.
    /// `/apps/shop`); the chroot znode is created if missing.
    pub fn with_chroot(mut self, chroot: impl Into<String>) -> Self {
        self.chroot = Some(chroot.into());
        self
    }

    /// The session timeout asked of the server (which clamps it to its
    /// `minSessionTimeout`..`maxSessionTimeout`). A member that dies leaves
    /// the cluster about this long after its last heartbeat.
    pub fn with_session_timeout(mut self, timeout: Duration) -> Self {
        self.session_timeout = timeout;
        self
    }

    /// How long `start_member` / `start_client` wait for a session before
    /// failing.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Authenticates with ZooKeeper's `digest` scheme as `user:password`.
    /// The znodes this provider creates are then readable and writable only
    /// by that identity (ZooKeeper's `CREATOR_ALL` ACL), so every member of
    /// the cluster must use the same credentials.
    pub fn with_auth(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.auth = Some((user.into(), password.into()));
        self
    }

    /// The connect string.
    pub fn connect_string(&self) -> &str {
        &self.connect
    }

    /// The session timeout asked for.
    pub fn session_timeout(&self) -> Duration {
        self.session_timeout
    }

    /// The directory of cluster `name`, relative to the chroot.
    pub(crate) fn cluster_dir(&self, name: &str) -> Result<String, Error> {
        check_path("root", &self.root)?;
        if let Some(chroot) = &self.chroot {
            check_path("chroot", chroot)?;
        }
        if name.contains('/') || name == "." || name == ".." {
            return Err(Error::Config(format!(
                "zookeeper: the cluster name `{name}` cannot be a znode name (no `/`, `.` or `..`)"
            )));
        }
        if self.connect.trim().is_empty() {
            return Err(Error::Config("zookeeper: the connect string is empty".into()));
        }
        let root = self.root.trim_end_matches('/');
        Ok(format!("{root}/{name}"))
    }
}

fn check_path(what: &str, path: &str) -> Result<(), Error> {
    let ok = path.starts_with('/')
        && (path == "/" || !path.ends_with('/'))
        && !path.contains("//")
        && path.split('/').skip(1).all(|s| path == "/" || (s != "." && s != ".." && !s.is_empty()));
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!("zookeeper: the {what} `{path}` is not an absolute znode path like `/protoactor`")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_dir_joins_root_and_name() {
        let c = ZkConfig::new("127.0.0.1:2181");
        assert_eq!(c.cluster_dir("shop").expect("valid"), "/protoactor/shop");
        assert_eq!(c.clone().with_root("/").cluster_dir("shop").expect("valid"), "/shop");
        assert_eq!(c.clone().with_root("/a/b").cluster_dir("x").expect("valid"), "/a/b/x");
    }

    #[test]
    fn bad_paths_and_names_are_config_errors() {
        let c = ZkConfig::new("127.0.0.1:2181");
        for root in ["protoactor", "/a/", "/a//b", "", "/a/../b"] {
            assert!(c.clone().with_root(root).cluster_dir("x").is_err(), "root {root:?}");
        }
        assert!(c.clone().with_chroot("apps").cluster_dir("x").is_err());
        assert!(c.cluster_dir("a/b").is_err());
        assert!(ZkConfig::new(" ").cluster_dir("x").is_err());
    }

    #[test]
    fn debug_hides_the_password() {
        let text = format!("{:?}", ZkConfig::new("h:1").with_auth("alice", "s3cret"));
        assert!(text.contains("alice") && !text.contains("s3cret"), "{text}");
    }
}
