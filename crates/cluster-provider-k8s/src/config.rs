//! [`KubernetesConfig`]: which pod this member is and how to reach the API.

use std::fmt;
use std::time::Duration;

/// The default prefix of the label and annotation keys.
pub const DEFAULT_LABEL_PREFIX: &str = "cluster.proto.actor";

/// Settings of the Kubernetes provider; see the [crate docs](crate).
#[derive(Clone)]
pub struct KubernetesConfig {
    pub(crate) pod: Option<(String, String)>,
    pub(crate) client: Option<kube::Client>,
    pub(crate) prefix: String,
    pub(crate) request_timeout: Duration,
    pub(crate) retry_max: Duration,
}

impl fmt::Debug for KubernetesConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KubernetesConfig")
            .field("pod", &self.pod)
            .field("client", &self.client.as_ref().map(|_| "given"))
            .field("prefix", &self.prefix)
            .field("request_timeout", &self.request_timeout)
            .field("retry_max", &self.retry_max)
            .finish()
    }
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        KubernetesConfig {
            pod: None,
            client: None,
            prefix: DEFAULT_LABEL_PREFIX.into(),
            request_timeout: Duration::from_secs(10),
            retry_max: Duration::from_secs(5),
        }
    }
}

impl KubernetesConfig {
    /// This pod from the downward API: `POD_NAME` and `POD_NAMESPACE`
    /// (see `examples/k8s/deployment.yaml`). A client needs neither.
    pub fn from_env() -> Self {
        let mut config = Self::default();
        let name = std::env::var("POD_NAME").ok().filter(|v| !v.is_empty());
        let namespace = std::env::var("POD_NAMESPACE").ok().filter(|v| !v.is_empty());
        if let (Some(name), Some(namespace)) = (name, namespace) {
            config.pod = Some((namespace, name));
        }
        config
    }

    /// This member's pod.
    pub fn with_pod(mut self, namespace: impl Into<String>, name: impl Into<String>) -> Self {
        self.pod = Some((namespace.into(), name.into()));
        self
    }

    /// The API client (default: `kube::Client::try_default()`, in-cluster
    /// service account or `KUBECONFIG`).
    pub fn with_client(mut self, client: kube::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// The prefix of the label and annotation keys (default
    /// [`DEFAULT_LABEL_PREFIX`]).
    pub fn with_label_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Bound on start-up and on each patch (default 10 s).
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The longest pause between attempts while the API server is away
    /// (default 5 s; pauses start at 100 ms and double).
    pub fn with_max_retry_interval(mut self, interval: Duration) -> Self {
        self.retry_max = interval.max(Duration::from_millis(100));
        self
    }

    /// The label holding the cluster name.
    pub fn cluster_label(&self) -> String {
        format!("{}/cluster", self.prefix)
    }

    /// The label holding the member id.
    pub fn member_label(&self) -> String {
        format!("{}/member-id", self.prefix)
    }

    /// The annotation holding the remoting host.
    pub fn host_annotation(&self) -> String {
        format!("{}/host", self.prefix)
    }

    /// The annotation holding the remoting port.
    pub fn port_annotation(&self) -> String {
        format!("{}/port", self.prefix)
    }

    /// The annotation holding the kinds, comma-separated.
    pub fn kinds_annotation(&self) -> String {
        format!("{}/kinds", self.prefix)
    }
}
