//! [`DirProvider`]: a test-only cluster provider whose registry is a shared
//! directory, so members in different OS processes on one machine find each
//! other.
//!
//! Each member writes its [`Member`] (protobuf) to `<pid>-<id>.member` and
//! removes the file when it leaves gracefully. Everyone lists the directory
//! every poll interval; a file whose process is no longer alive
//! (`/proc/<pid>` missing or a zombie) is a dead member: left out, and the
//! file removed. Linux only. A pid reused by an unrelated process within a
//! test run would keep a dead member listed; the cluster's gossip heartbeat
//! expiry would still remove it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::future::BoxFuture;
use parking_lot::Mutex;
use prost::Message as _;
use protoactor_cluster::{ClusterHandle, ClusterProvider, Error, Member};

/// Membership from a directory shared by processes on one machine.
#[derive(Debug)]
pub struct DirProvider {
    dir: PathBuf,
    poll: Duration,
    /// Leave out (and remove) the files of dead processes.
    check_liveness: bool,
    file: Mutex<Option<PathBuf>>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl DirProvider {
    /// A provider on `dir` (created if missing), polled every 100 ms.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        DirProvider {
            dir: dir.into(),
            poll: Duration::from_millis(100),
            check_liveness: true,
            file: Mutex::new(None),
            task: Mutex::new(None),
        }
    }

    /// Lists a dead process's member until its file is removed by hand: a
    /// provider that never notices a crash (an infinite TTL), so that only
    /// the cluster itself can remove a killed member.
    pub fn without_liveness_check(mut self) -> Self {
        self.check_liveness = false;
        self
    }

    fn watch(&self, cluster: &ClusterHandle) {
        let (dir, poll, check_liveness) = (self.dir.clone(), self.poll, self.check_liveness);
        let list = cluster.member_list().clone();
        let system = cluster.system().clone();
        let task = cluster.system().runtime().spawn(async move {
            let mut tick = tokio::time::interval(poll);
            loop {
                tick.tick().await;
                if system.is_shutting_down() {
                    return;
                }
                match read_members_checked(&dir, check_liveness) {
                    Ok(members) => list.update_cluster_topology(members),
                    // Never report a cluster we did not see; try again next tick.
                    Err(e) => tracing::warn!(dir = %dir.display(), error = %e, "could not read the member directory"),
                }
            }
        });
        if let Some(old) = self.task.lock().replace(task) {
            old.abort();
        }
    }
}

/// The live members registered in `dir`; removes the files of dead ones.
pub fn read_members(dir: &Path) -> std::io::Result<Vec<Member>> {
    read_members_checked(dir, true)
}

/// The members registered in `dir`; with `check_liveness`, only live ones
/// (the files of dead ones are removed).
pub fn read_members_checked(dir: &Path, check_liveness: bool) -> std::io::Result<Vec<Member>> {
    let mut members = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
        let Some(stem) = name.strip_suffix(".member") else { continue };
        let Some(pid) = stem.split_once('-').and_then(|(p, _)| p.parse::<u32>().ok()) else { continue };
        if check_liveness && !process_alive(pid) {
            // Best effort: another member may have removed it already.
            let _ = std::fs::remove_file(&path);
            continue;
        }
        // A file being replaced or removed right now is skipped this tick.
        let Ok(bytes) = std::fs::read(&path) else { continue };
        match Member::decode(bytes.as_slice()) {
            Ok(member) => members.push(member),
            Err(e) => tracing::warn!(file = %path.display(), error = %e, "unreadable member file"),
        }
    }
    Ok(members)
}

/// True if process `pid` exists and is not a zombie.
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state is the first field after the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

impl ClusterProvider for DirProvider {
    fn start_member<'a>(&'a self, cluster: &'a ClusterHandle) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let me = cluster.self_member();
            let safe_id: String = me.id.chars().filter(char::is_ascii_alphanumeric).collect();
            let name = format!("{}-{safe_id}.member", std::process::id());
            let file = self.dir.join(&name);
            let tmp = self.dir.join(format!("{name}.tmp"));
            let written = std::fs::create_dir_all(&self.dir)
                .and_then(|()| std::fs::write(&tmp, me.encode_to_vec()))
                // Readers see the whole file or none.
                .and_then(|()| std::fs::rename(&tmp, &file));
            written.map_err(|e| Error::Provider(format!("could not register in {}: {e}", self.dir.display())))?;
            *self.file.lock() = Some(file);
            self.watch(cluster);
            Ok(())
        })
    }

    fn start_client<'a>(&'a self, cluster: &'a ClusterHandle) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            self.watch(cluster);
            Ok(())
        })
    }

    fn shutdown(&self, graceful: bool) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            if let Some(task) = self.task.lock().take() {
                task.abort();
            }
            if graceful && let Some(file) = self.file.lock().take() {
                std::fs::remove_file(&file)
                    .map_err(|e| Error::Provider(format!("could not deregister {}: {e}", file.display())))?;
            }
            Ok(())
        })
    }
}
