//! Hello cluster: two members in one process share an in-memory membership
//! provider and host the kind "greeter". A grain is addressed by identity,
//! not pid: the first request activates it on one member, and every later
//! request, from either member, reaches that same activation with its state.
//! After 2 s without messages it passivates; the next request activates it
//! afresh.
//!
//! `cargo run --example hello_cluster`

#![forbid(unsafe_code)]
use std::time::Duration;

use protoactor_actor::prelude::*;
use protoactor_cluster::{Cluster, ClusterConfig, GrainContext, InMemoryAgent, InMemoryProvider, Kind};
use protoactor_identity_lookup_partition::PartitionIdentityLookup;
use protoactor_remote::RemoteConfig;

/// A request: greet `name`. Crosses the wire as JSON.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct Greet {
    name: String,
}

/// The answer.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct Greeting {
    text: String,
    greeted_so_far: u32,
}

/// A virtual actor: plain state, lives wherever the cluster put it.
struct Greeter {
    greeted: u32,
}

impl Actor for Greeter {
    async fn receive(&mut self, ctx: &mut Context) -> ActorResult {
        let me = ctx.cluster_identity().map(|i| i.identity.clone()).unwrap_or_default();
        if ctx.message_is::<Started>() {
            println!("  [{me}] activated on {}", ctx.system().address());
        } else if let Some(Greet { name }) = ctx.message::<Greet>() {
            self.greeted += 1;
            let text = format!("hello {name}, from {me} on {}", ctx.system().address());
            ctx.respond(Greeting { text, greeted_so_far: self.greeted });
        } else if ctx.message_is::<Stopped>() {
            println!("  [{me}] passivated after greeting {} time(s)", self.greeted);
        }
        Ok(())
    }
}

fn config(agent: &InMemoryAgent) -> ClusterConfig {
    let remote = RemoteConfig::bind("127.0.0.1", 0)
        .with_json::<Greet>("hello_cluster.Greet")
        .with_json::<Greeting>("hello_cluster.Greeting");
    let greeter =
        Kind::new("greeter", Props::from_producer(|| Greeter { greeted: 0 })).with_idle_timeout(Duration::from_secs(2));
    ClusterConfig::new("hello", InMemoryProvider::new(agent), PartitionIdentityLookup::new())
        .with_remote(remote)
        .with_kind(greeter)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), protoactor_cluster::Error> {
    let agent = InMemoryAgent::new();
    let one = Cluster::new(&ActorSystem::new(), config(&agent))?;
    let two = Cluster::new(&ActorSystem::new(), config(&agent))?;
    one.start_member().await?;
    two.start_member().await?;
    let both = one.member_list().wait_for(Duration::from_secs(5), |t| t.members.len() == 2).await;
    println!("members: {} and {} (joined: {both})", one.address(), two.address());

    for (member, name) in [(&one, "Alice"), (&two, "Bob"), (&one, "Carol")] {
        let g: Greeting = member.request("anna", "greeter", Greet { name: name.into() }).await?;
        println!("{} asked anna -> {} (greeted so far: {})", member.address(), g.text, g.greeted_so_far);
    }

    println!("waiting for anna to passivate...");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let g: Greeting = two.request("anna", "greeter", Greet { name: "Dave".into() }).await?;
    println!("{} asked anna -> {} (greeted so far: {})", two.address(), g.text, g.greeted_so_far);

    one.shutdown(true).await;
    two.shutdown(true).await;
    Ok(())
}
