//! The provider conformance suite against the in-memory provider.

use std::sync::Arc;

use protoactor_persistence::InMemoryProvider;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_provider_passes_the_conformance_suite() {
    protoactor_testkit::persistence::run_all(Arc::new(InMemoryProvider::new())).await;
}
