//! Three cluster members (each its own actor system, all in this process)
//! finding each other through a Consul agent, calling a grain, and one
//! leaving gracefully.
//!
//! ```text
//! consul agent -dev   # in another terminal
//! cargo run -p protoactor-cluster-provider-consul --example consul_cluster
//! CONSUL_HTTP_ADDR=10.0.0.5:8500 CONSUL_HTTP_TOKEN=... cargo run -p protoactor-cluster-provider-consul --example consul_cluster
//! ```
//!
//! The agent defaults to `http://127.0.0.1:8500`.

use std::time::Duration;

use protoactor_actor::prelude::*;
use protoactor_cluster::{Cluster, ClusterConfig, GrainContext, Kind};
use protoactor_cluster_provider_consul::{ConsulConfig, ConsulProvider};
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

async fn member() -> Result<Cluster, Box<dyn std::error::Error>> {
    let provider = ConsulProvider::new(
        ConsulConfig::from_env().with_service_name("protoactor-consul-demo").with_ttl(Duration::from_secs(5)),
    );
    let remote =
        RemoteConfig::bind("127.0.0.1", 0).with_json::<Greet>("example.Greet").with_json::<Greeted>("example.Greeted");
    let config = ClusterConfig::new("consul-demo", provider, PartitionIdentityLookup::new())
        .with_kind(greeter())
        .with_remote(remote);
    let cluster = Cluster::new(&ActorSystem::new(), config)?;
    cluster.start_member().await?;
    println!("member {} joined at {}", cluster.id(), cluster.address());
    Ok(cluster)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut members = Vec::new();
    for _ in 0..3 {
        members.push(member().await?);
    }
    let want = members.len();
    if !members[0].member_list().wait_for(Duration::from_secs(15), |t| t.members.len() == want).await {
        return Err("the members did not see each other within 15 s".into());
    }
    println!("topology: {:?}", members[0].member_list().members().iter().map(|m| m.address()).collect::<Vec<_>>());
    let reply: Greeted = members[1].request("anna", "greeter", Greet { name: "consul".into() }).await?;
    println!("{}", reply.text);

    let leaver = members.pop().ok_or("no member")?;
    let gone = leaver.id().to_string();
    leaver.shutdown(true).await;
    members[0].member_list().wait_for(Duration::from_secs(15), |t| t.member(&gone).is_none()).await;
    println!("member {gone} left; {} remain", members[0].member_list().members().len());
    let reply: Greeted = members[0].request("anna", "greeter", Greet { name: "again".into() }).await?;
    println!("{}", reply.text);
    for m in members {
        m.shutdown(true).await;
    }
    Ok(())
}
