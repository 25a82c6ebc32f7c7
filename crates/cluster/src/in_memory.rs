//! An in-memory provider: many members in one process share an
//! [`InMemoryAgent`], the way members elsewhere share a registry server.
//! For tests and local development.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::handle::ClusterHandle;
use crate::error::Error;
use crate::member::Member;
use crate::provider::ClusterProvider;

struct Registration {
    member: Member,
    refreshed: Instant,
}

struct AgentState {
    members: BTreeMap<String, Registration>,
}

/// The shared registry of an in-process cluster. Registrations expire when
/// their member stops refreshing them (it died), after the agent's TTL.
#[derive(Clone)]
pub struct InMemoryAgent {
    state: Arc<Mutex<AgentState>>,
    view: Arc<watch::Sender<Vec<Member>>>,
    ttl: Duration,
}

impl fmt::Debug for InMemoryAgent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryAgent").field("members", &self.members().len()).field("ttl", &self.ttl).finish()
    }
}

impl Default for InMemoryAgent {
    fn default() -> Self {
        Self::new()
    }
}

impl InMemoryAgent {
    /// An empty registry whose registrations expire 2 s after their last refresh.
    pub fn new() -> Self {
        Self::with_ttl(Duration::from_secs(2))
    }

    /// An empty registry whose registrations expire `ttl` after their last refresh.
    pub fn with_ttl(ttl: Duration) -> Self {
        let (view, _) = watch::channel(Vec::new());
        InMemoryAgent {
            state: Arc::new(Mutex::new(AgentState { members: BTreeMap::new() })),
            view: Arc::new(view),
            ttl,
        }
    }

    /// Registers (or refreshes) `member`.
    pub fn register(&self, member: Member) {
        let mut state = self.state.lock();
        let new = !state.members.contains_key(&member.id);
        state.members.insert(member.id.clone(), Registration { member, refreshed: Instant::now() });
        if new {
            self.publish(&state);
        }
    }

    /// Removes `id`, as a registry does when a member deregisters or its
    /// lease runs out.
    pub fn deregister(&self, id: &str) {
        let mut state = self.state.lock();
        if state.members.remove(id).is_some() {
            self.publish(&state);
        }
    }

    fn refresh(&self, id: &str) -> bool {
        let mut state = self.state.lock();
        let now = Instant::now();
        let found = state.members.get_mut(id).map(|r| r.refreshed = now).is_some();
        let before = state.members.len();
        let ttl = self.ttl;
        state.members.retain(|_, r| now.duration_since(r.refreshed) < ttl);
        if state.members.len() != before {
            self.publish(&state);
        }
        found
    }

    /// The registered members.
    pub fn members(&self) -> Vec<Member> {
        self.state.lock().members.values().map(|r| r.member.clone()).collect()
    }

    fn publish(&self, state: &AgentState) {
        self.view.send_replace(state.members.values().map(|r| r.member.clone()).collect());
    }
}

/// Membership from an [`InMemoryAgent`] shared by every member of the process.
#[derive(Debug)]
pub struct InMemoryProvider {
    agent: InMemoryAgent,
    member_id: Mutex<Option<String>>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl InMemoryProvider {
    /// A provider reporting the members of `agent`.
    pub fn new(agent: &InMemoryAgent) -> Self {
        InMemoryProvider { agent: agent.clone(), member_id: Mutex::new(None), tasks: Mutex::new(Vec::new()) }
    }

    fn watch(&self, cluster: &ClusterHandle) {
        let mut rx = self.agent.view.subscribe();
        let list = cluster.member_list().clone();
        let system = cluster.system().clone();
        let task = cluster.system().runtime().spawn(async move {
            loop {
                let members = rx.borrow_and_update().clone();
                if system.is_shutting_down() {
                    return;
                }
                list.update_cluster_topology(members);
                if rx.changed().await.is_err() {
                    return;
                }
            }
        });
        self.tasks.lock().push(task);
    }
}

impl ClusterProvider for InMemoryProvider {
    fn start_member<'a>(&'a self, cluster: &'a ClusterHandle) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let me = cluster.self_member();
            *self.member_id.lock() = Some(me.id.clone());
            self.agent.register(me.clone());
            // Refresh like a TTL check; a member whose system stopped stops
            // refreshing and expires, as a crashed process would.
            let agent = self.agent.clone();
            let system = cluster.system().clone();
            let period = (self.agent.ttl / 4).max(Duration::from_millis(10));
            let refresh = cluster.system().runtime().spawn(async move {
                let mut tick = tokio::time::interval(period);
                loop {
                    tick.tick().await;
                    if system.is_shutting_down() || !agent.refresh(&me.id) {
                        return;
                    }
                }
            });
            self.tasks.lock().push(refresh);
            self.watch(cluster);
            Ok(())
        })
    }

    fn start_client<'a>(&'a self, cluster: &'a ClusterHandle) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            // Clients also sweep expired registrations, so a cluster of
            // members that all died is seen as empty.
            let agent = self.agent.clone();
            let system = cluster.system().clone();
            let period = (self.agent.ttl / 4).max(Duration::from_millis(10));
            let sweep = cluster.system().runtime().spawn(async move {
                let mut tick = tokio::time::interval(period);
                loop {
                    tick.tick().await;
                    if system.is_shutting_down() {
                        return;
                    }
                    agent.refresh("");
                }
            });
            self.tasks.lock().push(sweep);
            self.watch(cluster);
            Ok(())
        })
    }

    fn shutdown(&self, graceful: bool) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            for task in self.tasks.lock().drain(..) {
                task.abort();
            }
            if graceful && let Some(id) = self.member_id.lock().take() {
                self.agent.deregister(&id);
            }
            Ok(())
        })
    }
}
