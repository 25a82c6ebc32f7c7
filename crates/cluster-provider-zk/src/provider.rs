//! [`ZkProvider`]: the [`ClusterProvider`] on ZooKeeper.

use std::fmt;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use parking_lot::Mutex;
use protoactor_cluster::{ClusterHandle, ClusterProvider, Error, StartOnce, TopologyReporter};
use tokio::task::JoinHandle;

use crate::config::ZkConfig;
use crate::info::LeaderChanged;
use crate::session;
use crate::watch::{Current, Watch};

/// Cluster membership on ZooKeeper: each member owns an ephemeral
/// sequential znode under `/<root>/<cluster>/`; see the [crate docs](crate).
///
/// Cheap to clone; clones are the same provider, so keep one to ask for
/// [`leader`](Self::leader) after handing it to the cluster configuration.
/// One provider serves one cluster member or client, once.
#[derive(Clone)]
pub struct ZkProvider {
    inner: Arc<Inner>,
}

struct Inner {
    config: ZkConfig,
    once: StartOnce,
    current: Arc<Mutex<Current>>,
    leader: Arc<Mutex<Option<LeaderChanged>>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl fmt::Debug for ZkProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZkProvider")
            .field("config", &self.inner.config)
            .field("node", &self.node())
            .field("leader", &*self.inner.leader.lock())
            .finish()
    }
}

impl ZkProvider {
    /// A provider using `config`.
    pub fn new(config: ZkConfig) -> Self {
        ZkProvider {
            inner: Arc::new(Inner {
                config,
                once: StartOnce::new("ZkProvider"),
                current: Arc::default(),
                leader: Arc::default(),
                task: Mutex::new(None),
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ZkConfig {
        &self.inner.config
    }

    /// This member's znode (path relative to the chroot), once registered.
    /// It changes when the session expired and the member registered again.
    pub fn node(&self) -> Option<String> {
        self.inner.current.lock().node.clone()
    }

    /// The ZooKeeper session id in use, once connected.
    pub fn session_id(&self) -> Option<i64> {
        self.inner.current.lock().client.as_ref().map(|c| c.session_id().0)
    }

    /// The last leadership seen (also published as [`LeaderChanged`]).
    pub fn leader(&self) -> Option<LeaderChanged> {
        self.inner.leader.lock().clone()
    }

    async fn start(&self, cluster: &ClusterHandle, member: bool) -> Result<(), Error> {
        let inner = &self.inner;
        inner.once.start()?;
        let dir = inner.config.cluster_dir(cluster.name())?;
        let watch = Watch {
            config: inner.config.clone(),
            cluster: cluster.name().to_string(),
            dir,
            system: cluster.system().clone(),
            me: member.then(|| cluster.self_member()),
            reporter: Mutex::new(TopologyReporter::new(cluster, "zookeeper", member)),
            current: inner.current.clone(),
            leader: inner.leader.clone(),
        };
        watch.open().await?;
        let task = cluster.system().runtime().spawn(watch.run());
        *inner.task.lock() = Some(task);
        Ok(())
    }
}

impl ClusterProvider for ZkProvider {
    /// Connects, creates `/<root>/<cluster>` if missing, registers this
    /// member's znode and starts watching. Fails (within the connect
    /// timeout) if ZooKeeper cannot be reached or refuses access.
    fn start_member<'a>(&'a self, cluster: &'a ClusterHandle) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(self.start(cluster, true))
    }

    /// Connects and watches without registering.
    fn start_client<'a>(&'a self, cluster: &'a ClusterHandle) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(self.start(cluster, false))
    }

    /// Stops watching. Graceful: deletes this member's znode and closes the
    /// session, so the others see it leave at once. Otherwise the session
    /// is abandoned and ZooKeeper removes the znode when it expires.
    fn shutdown(&self, graceful: bool) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            let task = self.inner.task.lock().take();
            if let Some(task) = task {
                task.abort();
                let _ = task.await;
            }
            let (client, node) = {
                let mut current = self.inner.current.lock();
                (current.client.take(), current.node.take())
            };
            if let Some(client) = client {
                if graceful {
                    session::close(&self.inner.config, client, node.as_deref()).await;
                }
                tracing::info!(graceful, "zookeeper provider stopped");
            }
            Ok(())
        })
    }
}
