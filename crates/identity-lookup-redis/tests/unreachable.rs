//! Redis down: clear errors that name the store and its address.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use protoactor_actor::prelude::*;
use protoactor_cluster::{CallOptions, Cluster, ClusterConfig, Error, InMemoryAgent, InMemoryProvider};
use protoactor_identity_lookup_redis::RedisIdentityLookup;
use protoactor_testkit::lookup::{Counts, KIND, Probe, Probed, counting_kind, remote_config};
use protoactor_testkit::redis::RedisServer;
use protoactor_testkit::service::free_port;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_cannot_start_without_redis_and_says_where_it_looked() {
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}/");
    let config = ClusterConfig::new("down", InMemoryProvider::new(&InMemoryAgent::new()), RedisIdentityLookup::new(&url).unwrap())
        .with_remote(remote_config())
        .with_kind(counting_kind(Arc::new(Counts::default())));
    let cluster = Cluster::new(&ActorSystem::new(), config).unwrap();
    let err = cluster.start_member().await.expect_err("no Redis is listening");
    assert!(matches!(err, Error::Storage { .. }), "a storage error: {err}");
    let text = err.to_string();
    assert!(text.contains("redis") && text.contains(&format!("127.0.0.1:{port}")), "names the store and address: {text}");
    cluster.shutdown(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_fail_within_their_deadline_naming_redis_while_it_is_down_and_work_after() {
    let redis = Arc::new(Mutex::new(RedisServer::start().unwrap_or_else(|e| panic!("{e}"))));
    let url = redis.lock().unwrap().url();
    let counts = Arc::new(Counts::default());
    let config = ClusterConfig::new("outage", InMemoryProvider::new(&InMemoryAgent::new()), RedisIdentityLookup::new(&url).unwrap())
        .with_remote(remote_config())
        .with_kind(counting_kind(counts.clone()));
    let cluster = Cluster::new(&ActorSystem::new(), config).unwrap();
    cluster.start_member().await.unwrap();
    let _: Probed = cluster.request("before", KIND, Probe).await.unwrap();
    redis.lock().unwrap().process().signal("STOP").unwrap();
    let options = CallOptions::default().with_deadline(Duration::from_secs(3));
    let err = cluster.request_with::<Probed, _>("during", KIND, Probe, &options).await.expect_err("Redis is paused");
    let text = err.to_string();
    assert!(text.contains("identity storage redis"), "the error names the store: {text}");
    assert_eq!(counts.activations_of("during"), 0, "nothing was activated half-way");
    redis.lock().unwrap().process().signal("CONT").unwrap();
    let after: Probed = cluster.request("during", KIND, Probe).await.expect("works once Redis is back");
    assert_eq!(after.identity, "during");
    assert_eq!(counts.activations_of("during"), 1);
    cluster.shutdown(true).await;
}
