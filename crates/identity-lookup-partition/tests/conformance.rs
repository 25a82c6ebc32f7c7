//! The identity lookup conformance suite for the partition lookup. It has
//! no store and no locks, so the paused-lock-holder and store-restart
//! scenarios do not apply.

use protoactor_identity_lookup_partition::PartitionIdentityLookup;
use protoactor_testkit::lookup;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_requests_activate_each_identity_once() {
    lookup::concurrent_first_requests(&PartitionIdentityLookup::new, 500).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_member_grains_reactivate_once() {
    lookup::killed_member_reactivates_once(&PartitionIdentityLookup::new, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn graceful_leave_hands_grains_over() {
    lookup::graceful_leave_hands_over(&PartitionIdentityLookup::new).await;
}
