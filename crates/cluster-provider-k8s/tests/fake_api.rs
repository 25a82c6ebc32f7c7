//! The provider against the fake API server: documented payloads, labels
//! and annotations, 410 re-lists, merge patches, 401/403.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::List;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, WatchEvent, WatchParams};
use kube::core::Status;
use protoactor_actor::ActorSystem;
use protoactor_cluster::{Cluster, Error};
use protoactor_cluster_provider_k8s::{KubernetesConfig, KubernetesProvider};
use protoactor_testkit::cluster::init_tracing;
use protoactor_testkit::provider::{self, ECHO, sees_exactly, start_member, unique_name};
use serde_json::Value;
use support::{Access, FakeApiServer, NAMESPACE, PREFIX};

const POD_LIST: &str = include_str!("data/pod_list.json");
const WATCH_EVENTS: &str = include_str!("data/watch_events.jsonl");
const FORBIDDEN: &str = include_str!("data/status_forbidden.json");

/// Every field of `doc` is in `ours` with the same JSON type (arrays: first
/// elements); label and annotation maps hold user data and are skipped
/// (the API omits them when empty).
fn same_shape(doc: &Value, ours: &Value, path: &str) {
    match (doc, ours) {
        (Value::Object(_), Value::Object(_)) if path.ends_with(".labels") || path.ends_with(".annotations") => {}
        (Value::Object(d), Value::Object(o)) => {
            for (key, value) in d {
                if key == "annotations" && !o.contains_key(key) {
                    continue;
                }
                let Some(other) = o.get(key) else { panic!("{path}.{key} is documented but missing") };
                same_shape(value, other, &format!("{path}.{key}"));
            }
        }
        (Value::Array(d), Value::Array(o)) => {
            if let (Some(d), Some(o)) = (d.first(), o.first()) {
                same_shape(d, o, &format!("{path}[0]"));
            }
        }
        (d, o) => assert_eq!(std::mem::discriminant(d), std::mem::discriminant(o), "{path}: {d} vs {o}"),
    }
}

fn provider_for(client: &kube::Client, pod: String) -> KubernetesProvider {
    KubernetesProvider::new(
        KubernetesConfig::default()
            .with_client(client.clone())
            .with_pod(NAMESPACE, pod)
            .with_request_timeout(Duration::from_secs(5))
            .with_max_retry_interval(Duration::from_millis(300)),
    )
}

#[test]
fn the_documented_payloads_parse_through_k8s_openapi() {
    let list: List<Pod> = serde_json::from_str(POD_LIST).unwrap();
    assert_eq!(list.metadata.resource_version.as_deref(), Some("10245"));
    assert!(protoactor_cluster_provider_k8s::pod_is_ready(&list.items[0]));
    let kinds: Vec<String> = WATCH_EVENTS
        .lines()
        .map(|l| match serde_json::from_str::<WatchEvent<Pod>>(l).unwrap() {
            WatchEvent::Added(_) => "ADDED".into(),
            WatchEvent::Modified(p) => {
                assert!(!protoactor_cluster_provider_k8s::pod_is_ready(&p));
                "MODIFIED".into()
            }
            WatchEvent::Deleted(_) => "DELETED".into(),
            WatchEvent::Bookmark(b) => format!("BOOKMARK {}", b.metadata.resource_version),
            WatchEvent::Error(e) => format!("ERROR {}", e.code),
        })
        .collect();
    assert_eq!(kinds, ["ADDED", "MODIFIED", "DELETED", "BOOKMARK 10250", "ERROR 410"]);
    let status: Status = serde_json::from_str(FORBIDDEN).unwrap();
    assert!(status.is_forbidden());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_answers_in_the_documented_shapes() {
    let fake = FakeApiServer::start_new().await;
    let pod = fake.create_pod();
    let http = reqwest_like(&fake).await;
    let list: Value = http.get(format!("{}/api/v1/namespaces/{NAMESPACE}/pods", fake.url())).await;
    same_shape(&serde_json::from_str(POD_LIST).unwrap(), &list, "list");
    // A watch from the list's version: a change arrives as MODIFIED, in the documented shape.
    let api: Api<Pod> = Api::namespaced(fake.client(None).await, NAMESPACE);
    let rv = list["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    let mut stream = api.watch(&WatchParams::default(), &rv).await.unwrap().boxed();
    fake.delete_pod(&pod);
    // kube asks for bookmarks and the fake sends one every 500 ms: on a loaded
    // machine one may come first, as a real API server's may.
    loop {
        match stream.next().await.unwrap().unwrap() {
            WatchEvent::Bookmark(_) => continue,
            WatchEvent::Deleted(p) => break assert_eq!(p.metadata.name.as_deref(), Some(pod.as_str())),
            other => panic!("expected DELETED, got {other:?}"),
        }
    }
}

/// A tiny GET helper on kube's own HTTP client, so no second HTTP client is needed.
async fn reqwest_like(fake: &FakeApiServer) -> Getter {
    Getter { client: fake.client(None).await }
}

struct Getter {
    client: kube::Client,
}

impl Getter {
    async fn get(&self, url: String) -> Value {
        let path =
            url.split_once("//").and_then(|(_, rest)| rest.split_once('/')).map(|(_, p)| format!("/{p}")).unwrap();
        let request = http::Request::get(path).body(Vec::new()).unwrap();
        self.client.request::<Value>(request).await.unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_labels_its_pod_and_a_graceful_leave_removes_the_labels() {
    init_tracing();
    let fake = FakeApiServer::start_new().await;
    let client = fake.client(None).await;
    let pod = fake.create_pod();
    let name = unique_name("labels");
    let a = start_member(&name, provider_for(&client, pod.clone()), &[ECHO, "audit"]).await;
    let stored = fake.pod(&pod).unwrap();
    let labels = &stored["metadata"]["labels"];
    assert_eq!(labels[format!("{PREFIX}/cluster")], name.as_str());
    assert_eq!(labels[format!("{PREFIX}/member-id")], a.id());
    assert_eq!(labels["app"], "protoactor-demo", "other labels stay");
    let annotations = &stored["metadata"]["annotations"];
    assert_eq!(annotations[format!("{PREFIX}/kinds")], "audit,echo");
    assert_eq!(annotations[format!("{PREFIX}/port")], a.address().rsplit(':').next().unwrap());
    a.shutdown(true).await;
    let stored = fake.pod(&pod).unwrap();
    assert!(stored["metadata"]["labels"].get(format!("{PREFIX}/cluster")).is_none(), "labels removed: {stored}");
    assert_eq!(stored["metadata"]["labels"]["app"], "protoactor-demo");
    assert!(fake.patches().iter().all(|(p, _)| *p == pod), "only its own pod was patched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_410_gone_forces_a_relist_and_nothing_is_lost() {
    init_tracing();
    let fake = FakeApiServer::start_new().await;
    let client = fake.client(None).await;
    let name = unique_name("gone");
    let a = start_member(&name, provider_for(&client, fake.create_pod()), &[ECHO]).await;
    let b = start_member(&name, provider_for(&client, fake.create_pod()), &[ECHO]).await;
    assert!(sees_exactly(&a, &[&a, &b], Duration::from_secs(20)).await);
    // History gone and every watch cut: resuming gets 410, so watchers list again.
    fake.compact();
    let c = start_member(&name, provider_for(&client, fake.create_pod()), &[ECHO]).await;
    for m in [&a, &b, &c] {
        assert!(sees_exactly(m, &[&a, &b, &c], Duration::from_secs(20)).await, "{} sees c after the re-list", m.id());
    }
    for m in [a, b, c] {
        m.shutdown(true).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_stream_with_a_410_error_event_is_what_kube_sees() {
    let fake = FakeApiServer::start_new().await;
    fake.create_pod();
    fake.compact();
    let api: Api<Pod> = Api::namespaced(fake.client(None).await, NAMESPACE);
    let mut stream = api.watch(&WatchParams::default(), "1").await.unwrap().boxed();
    match stream.next().await.unwrap().unwrap() {
        WatchEvent::Error(status) => assert_eq!((status.code, status.reason.as_str()), (410, "Expired")),
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
    let list = api.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1, "a fresh list still works");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthorized_and_forbidden_fail_the_start_saying_what_to_fix() {
    init_tracing();
    let fake = FakeApiServer::with_tokens(&[("writer", Access::ReadWrite), ("reader", Access::ReadOnly)]).await;
    let name = unique_name("auth");
    for (token, code, hint) in [(Some("nobody"), "401", "credentials"), (Some("reader"), "403", "rbac.yaml")] {
        let client = fake.client(token).await;
        let provider = provider_for(&client, fake.create_pod());
        let cluster = Cluster::new(&ActorSystem::new(), provider::cluster_config(&name, provider, &[ECHO])).unwrap();
        let e = cluster.start_member().await.expect_err("refused");
        assert!(matches!(e, Error::Provider(_)), "{e}");
        let text = e.to_string();
        assert!(text.contains(code) && text.contains(hint), "{code} names {hint}: {text}");
        cluster.shutdown(false).await;
    }
    let client = fake.client(Some("writer")).await;
    let a = start_member(&name, provider_for(&client, fake.create_pod()), &[ECHO]).await;
    assert!(sees_exactly(&a, &[&a], Duration::from_secs(20)).await);
    a.shutdown(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_without_its_pod_name_fails_clearly() {
    let fake = FakeApiServer::start_new().await;
    let provider = KubernetesProvider::new(KubernetesConfig::default().with_client(fake.client(None).await));
    let cluster =
        Cluster::new(&ActorSystem::new(), provider::cluster_config(&unique_name("nopod"), provider, &[ECHO])).unwrap();
    let e = cluster.start_member().await.expect_err("no pod");
    assert!(e.to_string().contains("POD_NAME"), "{e}");
    cluster.shutdown(false).await;
}
