//! [`AutomanagedProvider`]: serve our health endpoint, poll the peers',
//! report who answered.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::{BoxFuture, join_all};
use parking_lot::Mutex;
use protoactor_cluster::{ClusterHandle, ClusterProvider, Error, MemberList, StartOnce, TopologyReporter};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::config::{AutomanagedConfig, Bind, peer_url};
use crate::health::{self, MemberInfo, Server};
use crate::peers::{Change, PeerView, Peers};
use crate::poll;

/// Membership with no external server: every member serves its
/// [`MemberInfo`] over HTTP and polls the configured peers; the cluster is
/// whoever answered within the missed-poll limit. See the [crate docs](crate).
///
/// Cheap to clone; clones are the same provider, so keep one to ask for
/// [`health_address`](Self::health_address) or [`peers`](Self::peers) after
/// handing the provider to the cluster configuration. One provider serves
/// one cluster member or client, once.
#[derive(Clone)]
pub struct AutomanagedProvider {
    inner: Arc<Inner>,
}

struct Inner {
    peers: Vec<String>,
    poll_interval: Duration,
    timeout: Duration,
    missed_polls: u32,
    bind: Mutex<Option<Bind>>,
    health_address: Mutex<Option<SocketAddr>>,
    /// Set once started; `None` before.
    views: Mutex<Option<Peers>>,
    running: Mutex<Option<Running>>,
    once: StartOnce,
}

struct Running {
    poller: JoinHandle<()>,
    server: Option<Server>,
}

impl fmt::Debug for AutomanagedProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        f.debug_struct("AutomanagedProvider")
            .field("peers", &inner.peers)
            .field("health_address", &*inner.health_address.lock())
            .field("poll_interval", &inner.poll_interval)
            .field("timeout", &inner.timeout)
            .field("missed_polls", &inner.missed_polls)
            .field("running", &inner.running.lock().is_some())
            .finish()
    }
}

impl AutomanagedProvider {
    /// A provider polling `config`'s peers.
    pub fn new(config: AutomanagedConfig) -> Self {
        let health_address = match &config.bind {
            Bind::Listener(listener) => listener.local_addr().ok(),
            Bind::Address { .. } => None,
        };
        AutomanagedProvider {
            inner: Arc::new(Inner {
                peers: config.peers,
                poll_interval: config.poll_interval,
                timeout: config.timeout,
                missed_polls: config.missed_polls,
                bind: Mutex::new(Some(config.bind)),
                health_address: Mutex::new(health_address),
                views: Mutex::new(None),
                running: Mutex::new(None),
                once: StartOnce::new("AutomanagedProvider"),
            }),
        }
    }

    /// The address this member's health endpoint listens on: known from the
    /// start with [`with_listener`](AutomanagedConfig::with_listener),
    /// otherwise once started as a member. `None` for a client.
    pub fn health_address(&self) -> Option<SocketAddr> {
        *self.inner.health_address.lock()
    }

    /// Every configured peer and what its polls said, in configuration
    /// order; empty before the provider starts.
    pub fn peers(&self) -> Vec<(String, PeerView)> {
        self.inner.views.lock().as_ref().map(Peers::views).unwrap_or_default()
    }

    async fn start(&self, cluster: &ClusterHandle, member: bool) -> Result<(), Error> {
        let inner = &self.inner;
        inner.once.start()?;
        let urls = inner.peers.iter().map(|p| peer_url(p)).collect::<Result<Vec<_>, _>>()?;
        if !member && urls.is_empty() {
            return Err(Error::Config("an automanaged client needs at least one peer to poll".into()));
        }
        let client = poll::client(inner.timeout)?;
        let runtime = cluster.system().runtime().clone();
        let me = member.then(|| cluster.self_member());
        let server = match &me {
            Some(me) => {
                let bind =
                    inner.bind.lock().take().ok_or_else(|| Error::Provider("automanaged: no bind address".into()))?;
                let listener = health::bind(bind, &runtime).await?;
                let address = listener.local_addr().ok();
                *inner.health_address.lock() = address;
                tracing::info!(cluster = %cluster.name(), health = ?address, path = health::HEALTH_PATH, "automanaged health endpoint serving");
                Some(health::serve(listener, MemberInfo::new(cluster.name(), me), &runtime))
            }
            None => {
                // A client serves nothing: release a listener it was given.
                drop(inner.bind.lock().take());
                *inner.health_address.lock() = None;
                None
            }
        };
        *inner.views.lock() = Some(Peers::new(cluster.name(), &inner.peers, inner.missed_polls));
        let poller = runtime.spawn(poll_loop(
            self.inner.clone(),
            PollTarget {
                list: cluster.member_list().clone(),
                reporter: TopologyReporter::new(cluster, "automanaged", member),
            },
            client,
            urls,
        ));
        *inner.running.lock() = Some(Running { poller, server });
        Ok(())
    }
}

struct PollTarget {
    list: MemberList,
    reporter: TopologyReporter,
}

/// One poll round per interval until shutdown: poll every peer at once,
/// record the answers, report the members when the set changed.
async fn poll_loop(inner: Arc<Inner>, mut target: PollTarget, client: reqwest::Client, urls: Vec<reqwest::Url>) {
    let self_id = target.list.self_id().to_string();
    let mut tick = tokio::time::interval(inner.poll_interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if target.reporter.is_stopping() {
            return;
        }
        let answers = join_all(urls.iter().map(|url| poll::poll(&client, url))).await;
        let now = Instant::now();
        let (changes, peers) = {
            let mut views = inner.views.lock();
            let Some(views) = views.as_mut() else { return };
            let changes: Vec<Change> =
                answers.into_iter().enumerate().flat_map(|(i, answer)| views.record(i, answer, now)).collect();
            (changes, views.members())
        };
        let span = tracing::info_span!("automanaged poll", cluster = %target.reporter.cluster(), member = %self_id);
        let _entered = span.enter();
        for change in changes {
            log_change(&target.list, target.reporter.cluster(), change);
        }
        target.reporter.report(peers.into_iter().filter(|m| m.id != self_id));
    }
}

fn log_change(list: &MemberList, cluster: &str, change: Change) {
    match change {
        Change::Joined { peer, member } if list.is_blocked(&member.id) => tracing::debug!(
            %peer, member = %member.id,
            "peer answers with a member id that left the cluster; it stays out (restart it to rejoin)"
        ),
        Change::Joined { peer, member } => tracing::info!(
            %peer, member = %member.id, address = %member.address(), kinds = ?member.kinds, "peer answers: member seen"
        ),
        Change::Restarted { peer, old, new } => tracing::info!(
            %peer, old = %old.id, new = %new.id, address = %new.address(),
            "peer answers with a new member id: it restarted; the old member leaves"
        ),
        Change::Left { peer, member, misses } => tracing::info!(
            %peer, member = %member.id, misses, "peer stopped answering: the member leaves"
        ),
        Change::OtherCluster { peer, name, dropped } => tracing::warn!(
            %peer, peer_cluster = %name, cluster = %cluster, dropped = ?dropped.map(|m| m.id),
            "peer belongs to cluster `{name}`, not `{cluster}`; ignoring it (fix the peer list or the cluster name)"
        ),
        Change::Missed { peer, misses, reason } => tracing::debug!(%peer, misses, %reason, "peer poll missed"),
    }
}

impl ClusterProvider for AutomanagedProvider {
    fn start_member<'a>(&'a self, cluster: &'a ClusterHandle) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(self.start(cluster, true))
    }

    fn start_client<'a>(&'a self, cluster: &'a ClusterHandle) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(self.start(cluster, false))
    }

    /// Stops polling and serving. Graceful or not, the health endpoint stops
    /// answering at once; peers drop this member after their missed-poll limit.
    fn shutdown(&self, graceful: bool) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            let running = self.inner.running.lock().take();
            if let Some(running) = running {
                running.poller.abort();
                if let Some(server) = running.server {
                    server.stop().await;
                }
                tracing::info!(graceful, "automanaged provider stopped");
            }
            Ok(())
        })
    }
}
