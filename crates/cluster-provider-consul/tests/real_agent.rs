//! The provider conformance suite against a real Consul agent, opt-in: set
//! `CONSUL_HTTP_ADDR` (and `CONSUL_HTTP_TOKEN` if ACLs are on), e.g.
//! `consul agent -dev` and `CONSUL_HTTP_ADDR=127.0.0.1:8500 cargo test -p
//! protoactor-cluster-provider-consul --test real_agent -- --ignored`. The
//! tests are ignored by default; run with `--ignored` but without the
//! variable, they fail saying what to set.
//!
//! A real agent reaps critical services after at least a minute, so the
//! silent-member scenario only checks the TTL part (the member leaves the
//! passing set); the outage scenario needs an agent this test can stop and
//! is left to the fake.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use protoactor_cluster_provider_consul::{ConsulConfig, ConsulProvider};
use protoactor_testkit::provider;

fn maker(ttl: Duration) -> impl Fn() -> ConsulProvider {
    assert!(
        std::env::var("CONSUL_HTTP_ADDR").is_ok_and(|a| !a.is_empty()),
        "CONSUL_HTTP_ADDR is not set: start an agent (e.g. `consul agent -dev`) and set CONSUL_HTTP_ADDR=127.0.0.1:8500"
    );
    let config = ConsulConfig::from_env().with_ttl(ttl).with_blocking_wait(Duration::from_secs(5));
    move || ConsulProvider::new(config.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "opt-in: needs a real Consul agent; set CONSUL_HTTP_ADDR and run with --ignored"]
async fn real_agent_three_members_form_one_topology() {
    let make = maker(Duration::from_secs(5));
    provider::three_members_form_one_topology(&make).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "opt-in: needs a real Consul agent; set CONSUL_HTTP_ADDR and run with --ignored"]
async fn real_agent_graceful_leave_is_seen_at_once() {
    let make = maker(Duration::from_secs(60));
    provider::graceful_leave_is_seen_at_once(&make, Duration::from_secs(20)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "opt-in: needs a real Consul agent; set CONSUL_HTTP_ADDR and run with --ignored"]
async fn real_agent_silent_member_leaves_after_ttl() {
    let make = maker(Duration::from_secs(2));
    provider::silent_member_leaves_after_ttl(&make, Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "opt-in: needs a real Consul agent; set CONSUL_HTTP_ADDR and run with --ignored"]
async fn real_agent_client_watches_without_registering() {
    let make = maker(Duration::from_secs(5));
    provider::client_watches_without_registering(&make).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "opt-in: needs a real Consul agent; set CONSUL_HTTP_ADDR and run with --ignored"]
async fn real_agent_grains_work_end_to_end() {
    let make = maker(Duration::from_secs(5));
    provider::grains_work_end_to_end(&make).await;
}
