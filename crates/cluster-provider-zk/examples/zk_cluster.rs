//! Three cluster members on ZooKeeper in one process: they find each other,
//! elect a leader (lowest znode sequence), serve a grain, and the leadership
//! moves when the leader leaves.
//!
//! ```text
//! cargo run -p protoactor-cluster-provider-zk --example zk_cluster
//! ZK_ADDR=127.0.0.1:2181 cargo run -p protoactor-cluster-provider-zk --example zk_cluster
//! ```
//!
//! Without `ZK_ADDR` it starts its own ZooKeeper (Debian's `zookeeper`
//! package) on a free loopback port through the testkit fixture.

use std::time::Duration;

use protoactor_actor::prelude::*;
use protoactor_cluster::{Cluster, ClusterConfig, GrainContext, Kind};
use protoactor_cluster_provider_zk::{LeaderChanged, ZkConfig, ZkProvider};
use protoactor_identity_lookup_partition::PartitionIdentityLookup;
use protoactor_remote::RemoteConfig;
use protoactor_testkit::zookeeper::ZooKeeperServer;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Hello {
    from: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Greeting {
    text: String,
}

fn greeter() -> Kind {
    Kind::new(
        "greeter",
        Props::from_fn(|ctx| {
            if let Some(hello) = ctx.message::<Hello>() {
                let me = ctx.cluster_identity().map(|i| i.identity.clone()).unwrap_or_default();
                let text = format!("hello {}, I am {me} on {}", hello.from, ctx.system().address());
                ctx.respond(Greeting { text });
            }
            Ok(())
        }),
    )
}

async fn member(connect: &str) -> Result<Cluster, Box<dyn std::error::Error>> {
    let provider = ZkProvider::new(ZkConfig::new(connect).with_session_timeout(Duration::from_secs(4)));
    let remote = RemoteConfig::bind("127.0.0.1", 0)
        .with_json::<Hello>("zk_example.Hello")
        .with_json::<Greeting>("zk_example.Greeting");
    let config = ClusterConfig::new("zk-example", provider, PartitionIdentityLookup::new())
        .with_kind(greeter())
        .with_remote(remote);
    let system = ActorSystem::new();
    // Print every leadership change this member sees.
    system
        .event_stream()
        .subscribe::<LeaderChanged>(|e| {
            println!("  leader is now {} ({})", e.leader_id, if e.is_self { "me" } else { "another member" });
        })
        .forget();
    let cluster = Cluster::new(&system, config)?;
    cluster.start_member().await?;
    println!("member {} joined at {}", cluster.id(), cluster.address());
    Ok(cluster)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Keep our own server alive until the end, if we started one.
    let (_server, connect) = match std::env::var("ZK_ADDR") {
        Ok(address) => (None, address),
        Err(_) => {
            let server = ZooKeeperServer::start()?;
            let connect = server.connect_string();
            println!("started ZooKeeper on {connect}");
            (Some(server), connect)
        }
    };
    let mut members = Vec::new();
    for _ in 0..3 {
        members.push(member(&connect).await?);
    }
    let first = &members[0];
    first.member_list().wait_for(Duration::from_secs(10), |t| t.members.len() == 3).await;
    println!("topology: {:?}", first.member_list().topology().members.iter().map(|m| &m.id).collect::<Vec<_>>());

    for m in &members {
        let reply: Greeting = m.request("anna", "greeter", Hello { from: m.id().to_string() }).await?;
        println!("{}", reply.text);
    }

    println!("the leader leaves gracefully");
    let leader = members.remove(0);
    leader.shutdown(true).await;
    members[0].member_list().wait_for(Duration::from_secs(10), |t| t.members.len() == 2).await;
    let reply: Greeting = members[0].request("anna", "greeter", Hello { from: "a survivor".into() }).await?;
    println!("{}", reply.text);
    for m in members {
        m.shutdown(true).await;
    }
    Ok(())
}
