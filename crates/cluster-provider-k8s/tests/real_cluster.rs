//! The provider conformance suite against a real Kubernetes cluster,
//! opt-in: set `KUBECONFIG` (e.g. a kind cluster) and run
//! `cargo test -p protoactor-cluster-provider-k8s --test real_cluster`.
//! The tests are ignored by default (add `-- --ignored`); run with
//! `--ignored` but without `KUBECONFIG`, they fail saying what to set.
//!
//! The members run in this process; each gets a `pause` pod of its own in
//! `PROTOACTOR_TEST_NAMESPACE` (default `default`) that it labels with its
//! address (127.0.0.1 here), and the pods are deleted at the end. Those pods
//! have no readiness probe on the members' ports, so the silent-member and
//! outage scenarios are left to the fake API server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, PostParams};
use parking_lot::Mutex;
use protoactor_cluster_provider_k8s::{KubernetesConfig, KubernetesProvider, pod_is_ready};
use protoactor_testkit::provider;

struct Pods {
    api: Api<Pod>,
    namespace: String,
    names: Vec<String>,
}

impl Pods {
    async fn create(n: usize) -> Pods {
        assert!(
            std::env::var("KUBECONFIG").is_ok_and(|k| !k.is_empty()),
            "KUBECONFIG is not set: point it at a cluster (e.g. `kind create cluster`, then KUBECONFIG=~/.kube/config)"
        );
        let client = kube::Client::try_default().await.expect("a client from KUBECONFIG");
        let namespace = std::env::var("PROTOACTOR_TEST_NAMESPACE").unwrap_or_else(|_| "default".into());
        let api: Api<Pod> = Api::namespaced(client, &namespace);
        let mut names = Vec::new();
        for i in 0..n {
            let name = format!("{}-{i}", provider::unique_name("protoactor-test"));
            let pod: Pod = serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "labels": {"app": "protoactor-test"}},
                "spec": {"containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.10"}]}
            }))
            .unwrap();
            api.create(&PostParams::default(), &pod).await.expect("create a test pod");
            names.push(name);
        }
        for name in &names {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
            loop {
                let pod = api.get(name).await.expect("get the test pod");
                if pod_is_ready(&pod) {
                    break;
                }
                assert!(tokio::time::Instant::now() < deadline, "pod {name} is not ready after 120 s");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        Pods { api, namespace, names }
    }

    fn maker(&self) -> impl Fn() -> KubernetesProvider + '_ {
        let next = Mutex::new(self.names.clone());
        let client = self.api.clone().into_client();
        move || {
            let pod = next.lock().pop().expect("enough test pods");
            KubernetesProvider::new(
                KubernetesConfig::default().with_client(client.clone()).with_pod(&self.namespace, pod),
            )
        }
    }

    async fn delete(self) {
        for name in &self.names {
            let _ = self.api.delete(name, &DeleteParams::default()).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "opt-in: needs a real Kubernetes cluster; set KUBECONFIG and run with --ignored"]
async fn real_cluster_three_members_form_one_topology() {
    let pods = Pods::create(3).await;
    provider::three_members_form_one_topology(&pods.maker()).await;
    pods.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "opt-in: needs a real Kubernetes cluster; set KUBECONFIG and run with --ignored"]
async fn real_cluster_graceful_leave_is_seen_at_once() {
    let pods = Pods::create(3).await;
    provider::graceful_leave_is_seen_at_once(&pods.maker(), Duration::from_secs(20)).await;
    pods.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "opt-in: needs a real Kubernetes cluster; set KUBECONFIG and run with --ignored"]
async fn real_cluster_client_watches_without_registering() {
    let pods = Pods::create(4).await;
    provider::client_watches_without_registering(&pods.maker()).await;
    pods.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "opt-in: needs a real Kubernetes cluster; set KUBECONFIG and run with --ignored"]
async fn real_cluster_grains_work_end_to_end() {
    let pods = Pods::create(3).await;
    provider::grains_work_end_to_end(&pods.maker()).await;
    pods.delete().await;
}
