//! The identity lookup conformance suite against a MongoDB-compatible
//! server: the SecantusDB stand-in started per test (see
//! `crates/testkit/src/mongo.rs`), or a real MongoDB when `MONGODB_URI` is
//! set (then each test uses its own database; the restart and stall
//! scenarios always use the stand-in, which they can stop).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use protoactor_cluster::{IdentityStorage, StorageIdentityLookup, StorageLookupConfig};
use protoactor_identity_lookup_mongo::{MongoConfig, MongoIdentityLookup, MongoIdentityStorage};
use protoactor_testkit::lookup;
use protoactor_testkit::mongo::MongoServer;

fn server() -> MongoServer {
    MongoServer::start().unwrap_or_else(|e| panic!("{e}"))
}

/// A database per test, so runs against one real server do not meet.
fn config(uri: &str, test: &str) -> MongoConfig {
    MongoConfig::new(uri).with_database(format!("protoactor_test_{test}_{}", std::process::id()))
}

fn maker(uri: String, test: &'static str) -> impl Fn() -> StorageIdentityLookup {
    move || MongoIdentityLookup::with_config(config(&uri, test), StorageLookupConfig::default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_requests_activate_each_identity_once() {
    let mongo = server();
    lookup::concurrent_first_requests(&maker(mongo.uri().to_string(), "concurrent"), 500).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_member_is_cleaned_from_mongo_and_its_grains_reactivate_once() {
    let mongo = server();
    let storage: Arc<dyn IdentityStorage> = Arc::new(MongoIdentityStorage::with_config(config(mongo.uri(), "killed")));
    lookup::killed_member_reactivates_once(&maker(mongo.uri().to_string(), "killed"), Some(storage)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn graceful_leave_hands_grains_over() {
    let mongo = server();
    lookup::graceful_leave_hands_over(&maker(mongo.uri().to_string(), "leave")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn paused_lock_holder_leaves_one_activation() {
    let mongo = server();
    let uri = mongo.uri().to_string();
    lookup::paused_lock_holder_activates_once(&move || MongoIdentityStorage::with_config(config(&uri, "paused"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_recover_after_the_store_restarts_under_load() {
    // Always the stand-in, even when MONGODB_URI is set: this scenario must
    // stop and start the server, and a real one is not ours to restart.
    let mongo = MongoServer::start_stand_in().unwrap_or_else(|e| panic!("{e}"));
    let uri = mongo.uri().to_string();
    let mongo = Arc::new(Mutex::new(mongo));
    let handle = mongo.clone();
    let restart = move || handle.lock().unwrap().restart().unwrap_or_else(|e| panic!("{e}"));
    lookup::store_restart_recovers(&maker(uri, "restart"), restart).await;
    drop(mongo);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stalled_store_fails_requests_by_their_deadline_naming_mongodb_and_they_recover() {
    // The stand-in, which this test can SIGSTOP, even when MONGODB_URI is set.
    let mongo = MongoServer::start_stand_in().unwrap_or_else(|e| panic!("{e}"));
    let address = format!("127.0.0.1:{}", mongo.port());
    let process = mongo.process().expect("the stand-in runs as a child process");
    lookup::stalled_store_fails_by_the_deadline(
        maker(mongo.uri().to_string(), "stalled")(),
        || process.signal("STOP").unwrap_or_else(|e| panic!("{e}")),
        || process.signal("CONT").unwrap_or_else(|e| panic!("{e}")),
        "mongodb",
        &address,
    )
    .await;
}
