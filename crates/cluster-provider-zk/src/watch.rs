//! The membership loop: list the member znodes, report them, wait for a
//! change; ride out disconnections and rebuild the session on expiry.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use protoactor_actor::ActorSystem;
use protoactor_cluster::{Member, Retry, TopologyReporter};
use tokio::time::Instant;
use zookeeper_client::{Client, SessionState};

use crate::config::ZkConfig;
use crate::info::{self, LeaderChanged, MemberInfo};
use crate::session;

/// The session in use and this member's znode in it; shared with
/// [`ZkProvider::shutdown`](crate::ZkProvider) so it can close them.
#[derive(Debug, Default)]
pub(crate) struct Current {
    pub(crate) client: Option<Client>,
    pub(crate) node: Option<String>,
}

/// What the loop needs; owned by its task.
pub(crate) struct Watch {
    pub(crate) config: ZkConfig,
    pub(crate) cluster: String,
    pub(crate) dir: String,
    pub(crate) system: ActorSystem,
    /// This member, registered and always reported; `None` for a client.
    pub(crate) me: Option<Member>,
    /// Behind a lock only so `run` can borrow it while `self` is shared.
    pub(crate) reporter: Mutex<TopologyReporter>,
    pub(crate) current: Arc<Mutex<Current>>,
    pub(crate) leader: Arc<Mutex<Option<LeaderChanged>>>,
}

/// Parsed member znodes by name; their data never changes.
type Cache = HashMap<String, Option<MemberInfo>>;

/// After this member's own connection was interrupted, members missing from
/// ZooKeeper are kept until they re-register or this passes: when the whole
/// ensemble was away every session expired at once, and the others need a
/// moment to come back under new znodes.
struct Settle {
    until: Instant,
    keep: Vec<Member>,
}

impl Watch {
    pub(crate) async fn run(self) {
        let mut cache = Cache::new();
        let mut settle: Option<Settle> = None;
        let mut retry =
            Retry::new("zookeeper", self.cluster.clone(), Duration::from_millis(100), Duration::from_secs(2));
        loop {
            if self.system.is_shutting_down() {
                return;
            }
            let Some(client) = self.current.lock().client.clone() else { return };
            let mut states = client.state_watcher();
            match states.state() {
                SessionState::Disconnected => {
                    // Keep the last topology; the client reconnects by itself.
                    tracing::info!(cluster = %self.cluster, "zookeeper disconnected; keeping the last known topology");
                    let state = states.changed().await;
                    if !state.is_terminated() {
                        settle = Some(self.settle());
                    }
                    continue;
                }
                state if state.is_terminated() => {
                    tracing::warn!(cluster = %self.cluster, %state, "zookeeper session ended; opening a new one");
                    drop(client);
                    self.rebuild().await;
                    settle = Some(self.settle());
                    cache.clear();
                    continue;
                }
                _ => {}
            }
            let (seen, watcher) = match self.list(&client, &mut cache).await {
                Ok(listed) => {
                    retry.succeeded();
                    listed
                }
                Err(e) => {
                    if !session::is_dead(&client) {
                        retry.failed(format!("listing members: {e}")).await;
                    }
                    continue;
                }
            };
            self.publish_leader(&seen);
            let mut changed = std::pin::pin!(watcher.changed());
            loop {
                if let Some(s) = &settle
                    && (Instant::now() >= s.until || s.keep.iter().all(|k| seen.iter().any(|(_, m)| m.id == k.id)))
                {
                    settle = None;
                }
                self.report(&seen, settle.as_ref());
                let until = settle.as_ref().map(|s| s.until);
                tokio::select! {
                    _ = &mut changed => break,
                    _ = states.changed() => break,
                    _ = sleep_until(until) => {}
                }
            }
        }
    }

    fn settle(&self) -> Settle {
        let grace = self.config.session_timeout.max(Duration::from_secs(1)) * 2;
        let keep = self.reporter.lock().last().map(<[Member]>::to_vec).unwrap_or_default();
        Settle { until: Instant::now() + grace, keep }
    }

    /// Opens a new session and registers again, retrying until it works (or
    /// the system stops).
    async fn rebuild(&self) {
        let mut retry =
            Retry::new("zookeeper", self.cluster.clone(), Duration::from_millis(100), Duration::from_secs(2));
        loop {
            if self.system.is_shutting_down() {
                return;
            }
            match self.open().await {
                Ok(()) => return retry.succeeded(),
                Err(e) => retry.failed(format!("registering again: {e}")).await,
            }
        }
    }

    /// Connects and (for a member) registers; stores the new session.
    pub(crate) async fn open(&self) -> Result<(), protoactor_cluster::Error> {
        let client = session::connect(&self.config, &self.dir).await?;
        let node = match &self.me {
            Some(me) => {
                let data = serde_json::to_vec(&MemberInfo::new(&self.cluster, me))
                    .map_err(|e| protoactor_cluster::Error::Provider(format!("zookeeper: member info: {e}")))?;
                let node = session::register(&self.config, &client, &self.dir, &data).await?;
                tracing::info!(cluster = %self.cluster, %node, session = ?client.session_id(), "registered in zookeeper");
                Some(node)
            }
            None => None,
        };
        let mut current = self.current.lock();
        current.client = Some(client);
        current.node = node;
        Ok(())
    }

    /// The member znodes of the cluster by sequence, and a watch on the list.
    async fn list(
        &self,
        client: &Client,
        cache: &mut Cache,
    ) -> Result<(Vec<(i64, Member)>, zookeeper_client::OneshotWatcher), zookeeper_client::Error> {
        let (children, _, watcher) = session::bounded(&self.config, client.get_and_watch_children(&self.dir)).await?;
        cache.retain(|name, _| children.contains(name));
        let mut seen = Vec::new();
        for child in children {
            let Some(sequence) = info::sequence(&child) else { continue };
            if !cache.contains_key(&child) {
                let path = format!("{}/{child}", self.dir);
                let parsed = match session::bounded(&self.config, client.get_data(&path)).await {
                    Ok((data, _)) => self.parse(&child, &data),
                    // Gone between the listing and now: the next event tells.
                    Err(zookeeper_client::Error::NoNode) => continue,
                    Err(e) => return Err(e),
                };
                cache.insert(child.clone(), parsed);
            }
            if let Some(Some(info)) = cache.get(&child) {
                seen.push((sequence, info.to_member()));
            }
        }
        seen.sort_by_key(|(sequence, _)| *sequence);
        // One entry per member: a member re-registering may briefly own two.
        let mut ids = std::collections::HashSet::new();
        seen.retain(|(_, m)| ids.insert(m.id.clone()));
        Ok((seen, watcher))
    }

    fn parse(&self, node: &str, data: &[u8]) -> Option<MemberInfo> {
        match serde_json::from_slice::<MemberInfo>(data) {
            Ok(info) if info.cluster == self.cluster => Some(info),
            Ok(info) => {
                tracing::warn!(%node, their = %info.cluster, ours = %self.cluster, "znode of another cluster in our directory; ignoring it");
                None
            }
            Err(e) => {
                tracing::warn!(%node, error = %e, "znode that is not a member's info; ignoring it");
                None
            }
        }
    }

    /// Hands the full member set (plus the members kept while settling)
    /// to the member list if it changed.
    fn report(&self, seen: &[(i64, Member)], settle: Option<&Settle>) {
        let kept = settle.map(|s| s.keep.clone()).unwrap_or_default();
        self.reporter.lock().report(seen.iter().map(|(_, m)| m.clone()).chain(kept));
    }

    /// Publishes [`LeaderChanged`] when the lowest sequence changed hands.
    fn publish_leader(&self, seen: &[(i64, Member)]) {
        let Some((_, first)) = seen.first() else { return };
        let event = LeaderChanged {
            cluster: self.cluster.clone(),
            leader_id: first.id.clone(),
            leader_address: first.address(),
            is_self: self.me.as_ref().is_some_and(|me| me.id == first.id),
        };
        {
            let mut leader = self.leader.lock();
            if leader.as_ref() == Some(&event) {
                return;
            }
            *leader = Some(event.clone());
        }
        tracing::info!(cluster = %self.cluster, leader = %event.leader_id, is_self = event.is_self, "zookeeper leader changed");
        self.system.event_stream().publish(event);
    }
}

async fn sleep_until(until: Option<Instant>) {
    match until {
        Some(until) => tokio::time::sleep_until(until).await,
        None => std::future::pending().await,
    }
}
