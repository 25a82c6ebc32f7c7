//! Three cluster members (each its own actor system, all in this process)
//! finding each other through etcd, calling a grain, and one leaving.
//!
//! ```text
//! cargo run -p protoactor-cluster-provider-etcd --example etcd_cluster
//! ETCD_ENDPOINTS=http://127.0.0.1:2379 cargo run -p protoactor-cluster-provider-etcd --example etcd_cluster
//! ```
//!
//! Without `ETCD_ENDPOINTS` (comma-separated) it starts its own etcd on free
//! ports (needs `/usr/bin/etcd`: `apt-get install etcd-server`).

use std::time::Duration;

use protoactor_actor::prelude::*;
use protoactor_cluster::{Cluster, ClusterConfig, GrainContext, Kind};
use protoactor_cluster_provider_etcd::{EtcdConfig, EtcdProvider};
use protoactor_identity_lookup_partition::PartitionIdentityLookup;
use protoactor_remote::RemoteConfig;
use protoactor_testkit::etcd::EtcdServer;
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

async fn member(endpoints: &[String]) -> Result<Cluster, Box<dyn std::error::Error>> {
    let provider = EtcdProvider::new(
        EtcdConfig::new(endpoints.iter().cloned())
            .with_prefix("/protoactor-example")
            .with_ttl(Duration::from_secs(3))
            .with_connect_timeout(Duration::from_secs(3)),
    );
    let remote =
        RemoteConfig::bind("127.0.0.1", 0).with_json::<Greet>("example.Greet").with_json::<Greeted>("example.Greeted");
    let config = ClusterConfig::new("etcd-demo", provider, PartitionIdentityLookup::new())
        .with_kind(greeter())
        .with_remote(remote);
    let cluster = Cluster::new(&ActorSystem::new(), config)?;
    cluster.start_member().await?;
    println!("member {} joined at {}", cluster.id(), cluster.address());
    Ok(cluster)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (endpoints, _server) = match std::env::var("ETCD_ENDPOINTS") {
        Ok(list) => (list.split(',').map(|e| e.trim().to_string()).collect::<Vec<_>>(), None),
        Err(_) => {
            let server = tokio::task::spawn_blocking(EtcdServer::start).await??;
            println!("started etcd at {}", server.endpoint());
            (vec![server.endpoint()], Some(server))
        }
    };

    let mut members = Vec::new();
    for _ in 0..3 {
        members.push(member(&endpoints).await?);
    }
    let want = members.len();
    if !members[0].member_list().wait_for(Duration::from_secs(10), |t| t.members.len() == want).await {
        return Err("the members did not see each other within 10 s".into());
    }
    println!("topology: {} members", members[0].member_list().members().len());

    for (i, m) in members.iter().enumerate() {
        let reply: Greeted = m.request("anna", "greeter", Greet { name: format!("member {i}") }).await?;
        println!("{}", reply.text);
    }

    let leaving = members.pop().ok_or("no member")?;
    let gone = leaving.id().to_string();
    leaving.shutdown(true).await;
    let left = members[0].member_list().wait_for(Duration::from_secs(10), |t| t.member(&gone).is_none()).await;
    println!("member {gone} left gracefully (lease revoked): seen by the others: {left}");

    for m in members {
        m.shutdown(true).await;
    }
    Ok(())
}
