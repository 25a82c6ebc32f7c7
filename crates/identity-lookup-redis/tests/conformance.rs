//! The identity lookup conformance suite against a real Redis
//! (`redis-server`, started per test on a free port).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use protoactor_cluster::{IdentityStorage, StorageIdentityLookup};
use protoactor_identity_lookup_redis::{RedisIdentityLookup, RedisIdentityStorage};
use protoactor_testkit::lookup;
use protoactor_testkit::redis::RedisServer;

fn server() -> RedisServer {
    RedisServer::start().unwrap_or_else(|e| panic!("{e}"))
}

fn maker(url: String) -> impl Fn() -> StorageIdentityLookup {
    move || RedisIdentityLookup::new(&url).expect("a valid url")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_requests_activate_each_identity_once() {
    let redis = server();
    lookup::concurrent_first_requests(&maker(redis.url()), 500).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_member_is_cleaned_from_redis_and_its_grains_reactivate_once() {
    let redis = server();
    let storage: Arc<dyn IdentityStorage> = Arc::new(RedisIdentityStorage::new(&redis.url()).unwrap());
    lookup::killed_member_reactivates_once(&maker(redis.url()), Some(storage)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn graceful_leave_hands_grains_over() {
    let redis = server();
    lookup::graceful_leave_hands_over(&maker(redis.url())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn paused_lock_holder_leaves_one_activation() {
    let redis = server();
    let url = redis.url();
    lookup::paused_lock_holder_activates_once(&move || RedisIdentityStorage::new(&url).unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_recover_after_redis_restarts_under_load() {
    let redis = Arc::new(Mutex::new(server()));
    let url = redis.lock().unwrap().url();
    let handle = redis.clone();
    let restart = move || handle.lock().unwrap().restart().unwrap_or_else(|e| panic!("{e}"));
    lookup::store_restart_recovers(&maker(url), restart).await;
    drop(redis);
}
