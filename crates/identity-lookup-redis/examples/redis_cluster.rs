//! Three cluster members in this process placing grains through Redis:
//! 200 counters requested from every member at once, each activated once;
//! then one member leaves and its grains move.
//!
//! ```text
//! cargo run -p protoactor-identity-lookup-redis --example redis_cluster
//! REDIS_URL=redis://127.0.0.1:6379/ cargo run -p protoactor-identity-lookup-redis --example redis_cluster
//! ```
//!
//! Without `REDIS_URL` it starts its own `redis-server` on a free port
//! (`apt-get install redis-server`).

use std::collections::HashMap;
use std::time::Duration;

use futures_util::future::join_all;
use protoactor_cluster::{Cluster, InMemoryAgent};
use protoactor_identity_lookup_redis::RedisIdentityLookup;
use protoactor_testkit::lookup::{Counts, KIND, Probe, Probed, start_member};
use protoactor_testkit::redis::RedisServer;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (_server, url) = match std::env::var("REDIS_URL") {
        Ok(url) => (None, url),
        Err(_) => {
            let server = RedisServer::start()?;
            let url = server.url();
            (Some(server), url)
        }
    };
    println!("redis at {url}");
    let agent = InMemoryAgent::new();
    let counts = std::sync::Arc::new(Counts::default());
    let mut members: Vec<Cluster> = Vec::new();
    for _ in 0..3 {
        members.push(start_member(&agent, "redis-example", RedisIdentityLookup::new(&url)?, &counts).await);
    }
    for m in &members {
        m.member_list().wait_for(Duration::from_secs(10), |t| t.members.len() == 3).await;
    }
    let ids: Vec<String> = (0..200).map(|i| format!("counter-{i}")).collect();
    let answers =
        join_all(members.iter().flat_map(|m| ids.iter().map(move |id| m.request::<Probed, _>(id, KIND, Probe)))).await;
    let mut per_member: HashMap<String, usize> = HashMap::new();
    for a in answers.iter().take(ids.len()) {
        *per_member.entry(a.as_ref().map_err(|e| e.to_string())?.address.clone()).or_default() += 1;
    }
    println!("{} requests, {} activations; grains per member: {per_member:?}", answers.len(), counts.started());
    let leaver = members.pop().ok_or("no member")?;
    leaver.shutdown(true).await;
    for id in &ids {
        members[0].request::<Probed, _>(id, KIND, Probe).await?;
    }
    println!("after a graceful leave: {} live activations", counts.live());
    for m in members {
        m.shutdown(true).await;
    }
    Ok(())
}
