//! A cluster member for a Kubernetes pod (see `examples/k8s/` at the
//! repository root): joins the cluster `k8s-demo` through
//! `KubernetesProvider`, hosts `greeter` grains, and every 5 s asks one and
//! prints which member answered, until SIGTERM (then it leaves gracefully).
//!
//! Needs `POD_NAME`, `POD_NAMESPACE` and `POD_IP` from the downward API and
//! `REMOTE_PORT` (default 4020), and a service account allowed to get, list,
//! watch and patch pods. Outside a pod it fails at once, saying what is
//! missing.

use std::time::Duration;

use protoactor_actor::prelude::*;
use protoactor_cluster::{Cluster, ClusterConfig, GrainContext, Kind};
use protoactor_cluster_provider_k8s::{KubernetesConfig, KubernetesProvider};
use protoactor_identity_lookup_partition::PartitionIdentityLookup;
use protoactor_remote::RemoteConfig;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Greet {
    name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Greeted {
    text: String,
}

fn greeter() -> Kind {
    Kind::new(
        "greeter",
        Props::from_fn(|ctx| {
            if let Some(greet) = ctx.message::<Greet>() {
                let me = ctx.cluster_identity().map(|i| i.identity.clone()).unwrap_or_default();
                let text = format!("hello {}, I am {me} on {}", greet.name, ctx.system().address());
                ctx.respond(Greeted { text });
            }
            Ok(())
        }),
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    let pod_ip = std::env::var("POD_IP").map_err(|_| "set POD_IP from the downward API (status.podIP)")?;
    let port: u16 = std::env::var("REMOTE_PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(4020);
    let remote = RemoteConfig::bind("0.0.0.0", port)
        .with_advertised_host(pod_ip)
        .with_json::<Greet>("example.Greet")
        .with_json::<Greeted>("example.Greeted");
    let provider = KubernetesProvider::new(KubernetesConfig::from_env());
    let config = ClusterConfig::new("k8s-demo", provider, PartitionIdentityLookup::new())
        .with_kind(greeter())
        .with_remote(remote);
    let cluster = Cluster::new(&ActorSystem::new(), config)?;
    cluster.start_member().await?;
    println!("member {} joined at {}", cluster.id(), cluster.address());

    let mut tick = tokio::time::interval(Duration::from_secs(5));
    let mut n = 0u64;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                n += 1;
                let members: Vec<String> = cluster.member_list().members().iter().map(|m| m.address()).collect();
                match cluster.request::<Greeted, _>(&format!("grain-{}", n % 10), "greeter", Greet { name: cluster.id().to_string() }).await {
                    Ok(reply) => println!("{} members {members:?}: {}", members.len(), reply.text),
                    Err(e) => println!("{} members {members:?}: request failed: {e}", members.len()),
                }
            }
            _ = tokio::signal::ctrl_c() => break,
            _ = sigterm() => break,
        }
    }
    cluster.shutdown(true).await;
    Ok(())
}

#[cfg(unix)]
async fn sigterm() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut s) => {
            s.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}

#[cfg(not(unix))]
async fn sigterm() {
    std::future::pending().await
}
