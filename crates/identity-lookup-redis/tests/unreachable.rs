//! Redis down: clear errors that name the store and its address.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use protoactor_actor::prelude::*;
use protoactor_cluster::{Cluster, ClusterConfig, Error, InMemoryAgent, InMemoryProvider};
use protoactor_identity_lookup_redis::RedisIdentityLookup;
use protoactor_testkit::lookup::{self, Counts, counting_kind, remote_config};
use protoactor_testkit::redis::RedisServer;
use protoactor_testkit::service::free_port;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_cannot_start_without_redis_and_says_where_it_looked() {
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}/");
    let config = ClusterConfig::new(
        "down",
        InMemoryProvider::new(&InMemoryAgent::new()),
        RedisIdentityLookup::new(&url).unwrap(),
    )
    .with_remote(remote_config())
    .with_kind(counting_kind(Arc::new(Counts::default())));
    let cluster = Cluster::new(&ActorSystem::new(), config).unwrap();
    let err = cluster.start_member().await.expect_err("no Redis is listening");
    assert!(matches!(err, Error::Storage { .. }), "a storage error: {err}");
    let text = err.to_string();
    assert!(
        text.contains("redis") && text.contains(&format!("127.0.0.1:{port}")),
        "names the store and address: {text}"
    );
    cluster.shutdown(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_fail_by_their_deadline_naming_redis_while_it_is_stalled_and_work_after() {
    let redis = RedisServer::start().unwrap_or_else(|e| panic!("{e}"));
    let address = format!("127.0.0.1:{}", redis.port());
    lookup::stalled_store_fails_by_the_deadline(
        RedisIdentityLookup::new(&redis.url()).unwrap(),
        || redis.process().signal("STOP").unwrap_or_else(|e| panic!("{e}")),
        || redis.process().signal("CONT").unwrap_or_else(|e| panic!("{e}")),
        "redis",
        &address,
    )
    .await;
}
