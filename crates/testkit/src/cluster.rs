//! Shared pieces of the cluster provider tests (feature `cluster`): an echo
//! grain that reports who answered from where, and poll-with-deadline
//! helpers for conditions that have no event to wait on.

use std::future::Future;
use std::time::{Duration, Instant};

use protoactor_actor::prelude::*;
use protoactor_cluster::{Cluster, ClusterConfig, GrainContext, Kind};
use serde::{Deserialize, Serialize};

/// Asks an echo grain to answer with [`Echoed`] (register it as JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hello {
    /// Echoed back.
    pub text: String,
}

/// An echo grain's answer: the text, and which grain answered from which member.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Echoed {
    /// The hello's text.
    pub text: String,
    /// The grain's identity.
    pub identity: String,
    /// The address of the member hosting it.
    pub address: String,
}

/// A kind named `name` whose grains answer every [`Hello`] with an [`Echoed`].
pub fn echo_kind(name: &str) -> Kind {
    Kind::new(
        name,
        Props::from_fn(|ctx| {
            if let Some(hello) = ctx.message::<Hello>() {
                let identity = ctx.cluster_identity().map(|i| i.identity.clone()).unwrap_or_default();
                let reply = Echoed { text: hello.text.clone(), identity, address: ctx.system().address().to_string() };
                ctx.respond(reply);
            }
            Ok(())
        }),
    )
}

/// Installs a tracing subscriber honouring `RUST_LOG` (once per process).
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Starts a member on a new actor system (panics if it cannot: a test fixture).
pub async fn start_member(config: ClusterConfig) -> Cluster {
    let cluster = Cluster::new(&ActorSystem::new(), config).expect("cluster config");
    cluster.start_member().await.expect("member starts");
    cluster
}

/// Starts a client on a new actor system (panics if it cannot: a test fixture).
pub async fn start_client(config: ClusterConfig) -> Cluster {
    let cluster = Cluster::new(&ActorSystem::new(), config).expect("cluster config");
    cluster.start_client().await.expect("client starts");
    cluster
}

/// Polls `cond` every 20 ms until it holds (true) or `within` has passed
/// (its last answer).
pub async fn wait_until(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cond()
}

/// [`wait_until`] for a condition that must be awaited (a store query, say);
/// polls every 50 ms.
pub async fn wait_until_async<F: Future<Output = bool>>(within: Duration, mut cond: impl FnMut() -> F) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if cond().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cond().await
}
