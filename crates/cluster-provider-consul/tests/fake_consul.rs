//! The client and the provider against the fake agent: documented payloads,
//! blocking queries, TTL expiry and reaping, ACLs, datacenters, index resets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use protoactor_cluster::Error;
use protoactor_cluster_provider_consul::{
    CallError, ConsulClient, ConsulConfig, ConsulProvider, HealthEntry, ServiceRegistration, TtlCheck,
};
use protoactor_testkit::cluster::{init_tracing, wait_until};
use protoactor_testkit::provider::{self, ECHO, sees_exactly, start_member, unique_name};
use serde_json::Value;
use support::FakeConsul;

const HEALTH_EXAMPLE: &str = include_str!("data/health_service.json");
const REGISTER_EXAMPLE: &str = include_str!("data/register_service.json");

fn registration(id: &str, name: &str, ttl: &str, critical_after: &str) -> ServiceRegistration {
    ServiceRegistration {
        id: id.into(),
        name: name.into(),
        tags: vec!["echo".into()],
        address: "127.0.0.1".into(),
        port: 4020,
        meta: BTreeMap::from([("k".to_string(), "v".to_string())]),
        check: TtlCheck {
            check_id: format!("service:{id}"),
            name: "ttl".into(),
            ttl: ttl.into(),
            status: "passing".into(),
            deregister_critical_service_after: critical_after.into(),
        },
    }
}

/// Every field of `doc` is in `ours` with the same JSON type (arrays: the
/// first element of each, when both have one). `Meta` maps hold user data:
/// only their type is compared.
fn same_shape(doc: &Value, ours: &Value, path: &str) {
    match (doc, ours) {
        (Value::Object(_), Value::Object(_)) if path.ends_with(".Meta") => {}
        (Value::Object(d), Value::Object(o)) => {
            for (key, value) in d {
                let Some(other) = o.get(key) else { panic!("{path}.{key} is documented but missing") };
                same_shape(value, other, &format!("{path}.{key}"));
            }
        }
        (Value::Array(d), Value::Array(o)) => {
            if let (Some(d), Some(o)) = (d.first(), o.first()) {
                same_shape(d, o, &format!("{path}[0]"));
            }
        }
        (d, o) => assert_eq!(
            std::mem::discriminant(d),
            std::mem::discriminant(o),
            "{path}: documented {d}, fake answered {o}"
        ),
    }
}

#[test]
fn the_documented_answer_parses_into_the_client_types() {
    let entries: Vec<HealthEntry> = serde_json::from_str(HEALTH_EXAMPLE).unwrap();
    assert_eq!(entries.len(), 1);
    let e = &entries[0];
    assert_eq!((e.service.id.as_str(), e.service.port), ("redis", 8000));
    assert_eq!(e.service.tags, ["primary"]);
    assert_eq!(e.service.meta["redis_version"], "4.0");
    assert_eq!(e.node.address, "10.1.10.12");
    assert_eq!(e.checks.iter().map(|c| c.check_id.as_str()).collect::<Vec<_>>(), ["service:redis", "serfHealth"]);
}

#[test]
fn the_client_registration_uses_the_documented_field_names() {
    let doc: Value = serde_json::from_str(REGISTER_EXAMPLE).unwrap();
    let ours = serde_json::to_value(registration("redis1", "redis", "15s", "90m")).unwrap();
    same_shape(&ours, &doc, "registration");
    same_shape(&doc, &ours, "registration");
    let parsed: ServiceRegistration = serde_json::from_str(REGISTER_EXAMPLE).unwrap();
    assert_eq!(parsed.check.ttl, "15s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_accepts_the_documented_registration_and_answers_in_the_documented_shape() {
    let fake = FakeConsul::start_new().await;
    let http = reqwest::Client::new();
    let put = http.put(format!("{}/v1/agent/service/register", fake.address())).body(REGISTER_EXAMPLE);
    assert!(put.send().await.unwrap().status().is_success());
    let answer = http.get(format!("{}/v1/health/service/redis?passing=true", fake.address())).send().await.unwrap();
    assert!(answer.headers().get("X-Consul-Index").is_some(), "X-Consul-Index is set");
    assert!(answer.headers().get("X-Consul-KnownLeader").is_some());
    let ours: Value = answer.json().await.unwrap();
    let doc: Value = serde_json::from_str(HEALTH_EXAMPLE).unwrap();
    same_shape(&doc, &ours, "answer");
    assert_eq!(ours[0]["Service"]["ID"], "redis1");
    assert_eq!(ours[0]["Service"]["Meta"]["redis_version"], "4.0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_query_holds_until_the_index_moves() {
    let fake = FakeConsul::start_new().await;
    let client = ConsulClient::new(&ConsulConfig::new(fake.address())).unwrap();
    let first = client.healthy("svc", 0, Duration::from_secs(30)).await.unwrap();
    assert!(first.entries.is_empty());
    let waiting = {
        let client = client.clone();
        tokio::spawn(async move { client.healthy("svc", first.index, Duration::from_secs(60)).await })
    };
    // The query is held: nothing changed yet.
    assert!(!wait_until(Duration::from_millis(300), || waiting.is_finished()).await, "the query blocks");
    client.register(&registration("svc-1", "svc", "30s", "1m")).await.unwrap();
    let answer = waiting.await.unwrap().unwrap();
    assert!(answer.index > first.index, "the index moved: {} -> {}", first.index, answer.index);
    assert_eq!(answer.entries.len(), 1, "the answer has the new instance");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_query_answers_the_same_index_when_its_wait_expires() {
    let fake = FakeConsul::start_new().await;
    let client = ConsulClient::new(&ConsulConfig::new(fake.address())).unwrap();
    let first = client.healthy("svc", 0, Duration::from_secs(30)).await.unwrap();
    let again = client.healthy("svc", first.index, Duration::from_millis(200)).await.unwrap();
    assert_eq!(again.index, first.index, "nothing changed: the wait expired");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ttl_check_goes_critical_and_the_service_is_reaped() {
    let fake = FakeConsul::start_new().await;
    let client = ConsulClient::new(&ConsulConfig::new(fake.address())).unwrap();
    client.register(&registration("svc-1", "svc", "1s", "1500ms")).await.unwrap();
    assert_eq!(client.healthy("svc", 0, Duration::from_secs(1)).await.unwrap().entries.len(), 1, "passing at first");
    assert!(
        wait_until(Duration::from_secs(10), || fake.services() == [("svc-1".to_string(), "critical".to_string())])
            .await,
        "critical after its TTL"
    );
    assert!(client.healthy("svc", 0, Duration::from_secs(1)).await.unwrap().entries.is_empty(), "not passing");
    assert!(wait_until(Duration::from_secs(10), || fake.services().is_empty()).await, "reaped after the window");
    let e = client.pass("service:svc-1").await.expect_err("the check is gone");
    assert!(matches!(e, CallError::NotFound(_)), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passing_keeps_a_member_healthy_past_its_ttl() {
    init_tracing();
    let fake = FakeConsul::start_new().await;
    let config = ConsulConfig::new(fake.address()).with_ttl(Duration::from_secs(1));
    let name = unique_name("pass");
    let a = start_member(&name, ConsulProvider::new(config.clone()), &[ECHO]).await;
    // Three TTLs pass; the check never goes critical (the reaper would say so).
    assert!(!wait_until(Duration::from_secs(3), || fake.services().iter().any(|(_, s)| s != "passing")).await);
    assert!(sees_exactly(&a, &[&a], Duration::from_secs(1)).await);
    a.shutdown(true).await;
    assert!(fake.services().is_empty(), "deregistered on graceful shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_acl_token_is_sent_and_a_missing_one_fails_the_start() {
    init_tracing();
    let fake = FakeConsul::with_token(Some("s3cret")).await;
    let name = unique_name("acl");
    let cluster = protoactor_cluster::Cluster::new(
        &protoactor_actor::ActorSystem::new(),
        provider::cluster_config(&name, ConsulProvider::new(ConsulConfig::new(fake.address())), &[ECHO]),
    )
    .unwrap();
    let e = cluster.start_member().await.expect_err("no token");
    assert!(matches!(e, Error::Provider(_)), "{e}");
    assert!(e.to_string().contains("ACL token"), "says what to fix: {e}");
    cluster.shutdown(false).await;
    let config = ConsulConfig::new(fake.address()).with_token("s3cret");
    let a = start_member(&name, ConsulProvider::new(config), &[ECHO]).await;
    assert!(sees_exactly(&a, &[&a], Duration::from_secs(10)).await);
    a.shutdown(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_datacenter_fails_the_start_and_the_right_one_works() {
    init_tracing();
    let fake = FakeConsul::start_new().await;
    let name = unique_name("dc");
    let config = ConsulConfig::new(fake.address()).with_datacenter("mars");
    let cluster = protoactor_cluster::Cluster::new(
        &protoactor_actor::ActorSystem::new(),
        provider::cluster_config(&name, ConsulProvider::new(config), &[]),
    )
    .unwrap();
    let e = cluster.start_client().await.expect_err("unknown datacenter");
    assert!(e.to_string().contains("with_datacenter"), "says what to fix: {e}");
    cluster.shutdown(false).await;
    let config = ConsulConfig::new(fake.address()).with_datacenter(support::DATACENTER);
    let a = start_member(&name, ConsulProvider::new(config), &[ECHO]).await;
    assert!(sees_exactly(&a, &[&a], Duration::from_secs(10)).await);
    a.shutdown(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_agent_fails_the_start_naming_it() {
    let port = protoactor_testkit::service::free_port();
    let address = format!("http://127.0.0.1:{port}");
    let config = ConsulConfig::new(&address).with_request_timeout(Duration::from_secs(2));
    let cluster = protoactor_cluster::Cluster::new(
        &protoactor_actor::ActorSystem::new(),
        provider::cluster_config(&unique_name("down"), ConsulProvider::new(config), &[ECHO]),
    )
    .unwrap();
    let e = cluster.start_member().await.expect_err("nothing listens");
    assert!(e.to_string().contains(&address), "names the agent: {e}");
    cluster.shutdown(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchers_start_over_when_the_index_goes_backwards() {
    init_tracing();
    let fake = FakeConsul::start_new().await;
    let config = ConsulConfig::new(fake.address()).with_blocking_wait(Duration::from_millis(500));
    let name = unique_name("backwards");
    let a = start_member(&name, ConsulProvider::new(config.clone()), &[ECHO]).await;
    let b = start_member(&name, ConsulProvider::new(config.clone()), &[ECHO]).await;
    assert!(sees_exactly(&a, &[&a, &b], Duration::from_secs(10)).await);
    // Far below what the watchers hold: a query with their index would
    // block until the index caught up, so only a reset sees the newcomer.
    fake.set_index(2);
    let c = start_member(&name, ConsulProvider::new(config), &[ECHO]).await;
    assert!(sees_exactly(&a, &[&a, &b, &c], Duration::from_secs(10)).await, "a saw c join after the reset");
    assert!(
        fake.health_query_indexes().contains(&Some(0)) || fake.health_query_indexes().contains(&None),
        "a watcher started over"
    );
    for m in [a, b, c] {
        m.shutdown(true).await;
    }
}
