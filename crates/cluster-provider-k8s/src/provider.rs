//! [`KubernetesProvider`]: label our pod, watch the cluster's pods.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube_runtime::watcher::{self, Event};
use parking_lot::Mutex;
use protoactor_cluster::{ClusterHandle, ClusterProvider, Error, ProviderTasks, Retry, StartOnce, TopologyReporter};
use serde_json::{Value, json};

use crate::config::KubernetesConfig;
use crate::pod::member_of;

const FIRST_RETRY: Duration = Duration::from_millis(100);

/// Membership on Kubernetes: each member labels and annotates its own pod;
/// everyone watches the pods labelled with the cluster name. See the
/// [crate docs](crate).
///
/// Cheap to clone; clones are the same provider. One provider serves one
/// member or client, once.
#[derive(Clone)]
pub struct KubernetesProvider {
    inner: Arc<Inner>,
}

struct Inner {
    config: KubernetesConfig,
    once: StartOnce,
    tasks: ProviderTasks,
    /// Our pod while labelled, to remove the labels at shutdown.
    labelled: Mutex<Option<(Api<Pod>, String)>>,
}

impl fmt::Debug for KubernetesProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KubernetesProvider")
            .field("config", &self.inner.config)
            .field("labelled", &self.inner.labelled.lock().as_ref().map(|(_, n)| n.clone()))
            .finish()
    }
}

/// An operator's reading of an API error.
fn explain(what: &str, e: &kube::Error) -> Error {
    let hint = match e {
        kube::Error::Api(status) if status.code == 401 => {
            "; unauthorized: check the service account token or the KUBECONFIG credentials"
        }
        kube::Error::Api(status) if status.code == 403 => {
            "; forbidden: the service account needs get, list, watch and patch on pods (examples/k8s/rbac.yaml)"
        }
        kube::Error::Api(status) if status.code == 404 => {
            "; not found: check POD_NAME and POD_NAMESPACE (set them from the downward API)"
        }
        _ => "",
    };
    Error::Provider(format!("kubernetes: {what} failed: {e}{hint}"))
}

async fn bounded<T>(
    after: Duration,
    what: &str,
    call: impl Future<Output = Result<T, kube::Error>>,
) -> Result<T, Error> {
    match tokio::time::timeout(after, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(explain(what, &e)),
        Err(_) => Err(Error::Provider(format!(
            "kubernetes: {what}: no answer within {after:?}; is the API server reachable?"
        ))),
    }
}

impl KubernetesProvider {
    /// A provider configured by `config`.
    pub fn new(config: KubernetesConfig) -> Self {
        KubernetesProvider {
            inner: Arc::new(Inner {
                config,
                once: StartOnce::new("KubernetesProvider"),
                tasks: ProviderTasks::new(),
                labelled: Mutex::new(None),
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &KubernetesConfig {
        &self.inner.config
    }

    async fn client(&self) -> Result<kube::Client, Error> {
        if let Some(client) = &self.inner.config.client {
            return Ok(client.clone());
        }
        let timeout = self.inner.config.request_timeout;
        bounded(timeout, "creating the client (in-cluster or KUBECONFIG)", async { kube::Client::try_default().await })
            .await
    }

    async fn start(&self, cluster: &ClusterHandle, member: bool) -> Result<(), Error> {
        let inner = &self.inner;
        inner.once.start()?;
        let config = &inner.config;
        let client = self.client().await?;
        let namespace = match &config.pod {
            Some((namespace, _)) => namespace.clone(),
            None if member => {
                return Err(Error::Config(
                    "kubernetes: this member's pod is unknown; set POD_NAME and POD_NAMESPACE from the downward API \
                     (see examples/k8s/deployment.yaml) or use KubernetesConfig::with_pod"
                        .into(),
                ));
            }
            None => client.default_namespace().to_string(),
        };
        let pods: Api<Pod> = Api::namespaced(client, &namespace);
        let mut reporter = TopologyReporter::new(cluster, "kubernetes", member);
        if let (Some(me), Some((_, pod))) = (reporter.me(), &config.pod) {
            let patch = json!({
                "metadata": {
                    "labels": {config.cluster_label(): cluster.name(), config.member_label(): me.id},
                    "annotations": {
                        config.host_annotation(): me.host,
                        config.port_annotation(): me.port.to_string(),
                        config.kinds_annotation(): me.kinds.join(","),
                    }
                }
            });
            let (params, patch) = (PatchParams::default(), Patch::Merge(&patch));
            let call = pods.patch(pod, &params, &patch);
            bounded(config.request_timeout, &format!("labelling pod {namespace}/{pod}"), call).await?;
            tracing::info!(cluster = %cluster.name(), %namespace, %pod, member = %me.id, "labelled our pod");
            *inner.labelled.lock() = Some((pods.clone(), pod.clone()));
        }
        let selector = format!("{}={}", config.cluster_label(), cluster.name());
        let params = ListParams::default().labels(&selector);
        let listing = pods.list(&params);
        let listed = match bounded(config.request_timeout, "listing the cluster's pods", listing).await {
            Ok(listed) => listed,
            Err(e) => {
                let _ = self.unlabel().await;
                return Err(e);
            }
        };
        reporter.report(listed.items.iter().filter_map(|p| member_of(p, config, cluster.name())));
        let watch = Watch {
            pods,
            selector,
            config: config.clone(),
            retry: Retry::new("kubernetes", cluster.name(), FIRST_RETRY, config.retry_max),
            reporter,
        };
        inner.tasks.spawn(cluster, watch.run());
        Ok(())
    }

    /// Removes our labels and annotations; true if there were some and the
    /// patch worked.
    async fn unlabel(&self) -> Result<bool, Error> {
        let Some((pods, pod)) = self.inner.labelled.lock().take() else { return Ok(false) };
        let config = &self.inner.config;
        let patch = json!({
            "metadata": {
                "labels": {config.cluster_label(): Value::Null, config.member_label(): Value::Null},
                "annotations": {
                    config.host_annotation(): Value::Null,
                    config.port_annotation(): Value::Null,
                    config.kinds_annotation(): Value::Null,
                }
            }
        });
        let (params, patch) = (PatchParams::default(), Patch::Merge(&patch));
        let call = pods.patch(&pod, &params, &patch);
        bounded(config.request_timeout, &format!("removing the labels of pod {pod}"), call).await?;
        tracing::info!(%pod, "removed our pod's labels: left the cluster");
        Ok(true)
    }
}

/// The watch of the cluster's pods, reporting ready members.
struct Watch {
    pods: Api<Pod>,
    selector: String,
    config: KubernetesConfig,
    retry: Retry,
    reporter: TopologyReporter,
}

impl Watch {
    async fn run(mut self) {
        let config = watcher::Config::default().labels(&self.selector);
        let mut stream = std::pin::pin!(watcher::watcher(self.pods.clone(), config));
        let cluster = self.reporter.cluster().to_string();
        let mut current: BTreeMap<String, Option<protoactor_cluster::Member>> = BTreeMap::new();
        // A re-list is buffered until complete: a half-listed set is not the membership.
        let mut relisting: Option<BTreeMap<String, Option<protoactor_cluster::Member>>> = None;
        while let Some(event) = stream.next().await {
            if self.reporter.is_stopping() {
                return;
            }
            let event = match event {
                Ok(event) => event,
                Err(e) => {
                    self.retry.failed(format!("watching pods with {}: {e}", self.selector)).await;
                    continue;
                }
            };
            self.retry.succeeded();
            let name = |p: &Pod| p.metadata.name.clone().unwrap_or_default();
            match event {
                Event::Init => relisting = Some(BTreeMap::new()),
                Event::InitApply(pod) => {
                    if let Some(buffer) = relisting.as_mut() {
                        buffer.insert(name(&pod), member_of(&pod, &self.config, &cluster));
                    }
                }
                Event::InitDone => {
                    if let Some(buffer) = relisting.take() {
                        current = buffer;
                    }
                    self.report(&current);
                }
                Event::Apply(pod) => {
                    current.insert(name(&pod), member_of(&pod, &self.config, &cluster));
                    self.report(&current);
                }
                Event::Delete(pod) => {
                    current.remove(&name(&pod));
                    self.report(&current);
                }
            }
        }
    }

    fn report(&mut self, current: &BTreeMap<String, Option<protoactor_cluster::Member>>) {
        self.reporter.report(current.values().flatten().cloned());
    }
}

impl ClusterProvider for KubernetesProvider {
    /// Labels and annotates this member's pod, lists the cluster's pods and
    /// starts watching them. Fails with what to fix on 401/403/404.
    fn start_member<'a>(&'a self, cluster: &'a ClusterHandle) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(self.start(cluster, true))
    }

    /// Lists and watches the cluster's pods without labelling any.
    fn start_client<'a>(&'a self, cluster: &'a ClusterHandle) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(self.start(cluster, false))
    }

    /// Stops watching. Graceful: removes this pod's labels, so the others
    /// see the member leave at once. Otherwise the labels stay until the pod
    /// stops being ready or is deleted.
    fn shutdown(&self, graceful: bool) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            self.inner.tasks.stop().await;
            if graceful {
                self.unlabel().await?;
            } else {
                self.inner.labelled.lock().take();
                tracing::info!("kubernetes provider stopped; the pod leaves when it is no longer ready");
            }
            Ok(())
        })
    }
}
