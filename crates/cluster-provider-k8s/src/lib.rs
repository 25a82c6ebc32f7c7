//! # protoactor-cluster-provider-k8s
//!
//! Cluster membership on Kubernetes. Each member labels its own pod with
//! the cluster name and its member id and annotates it with its remoting
//! host, port and kinds (a merge patch); every member and client watches
//! the pods carrying the cluster's label and reports those that are
//! `Running` and `Ready`. A graceful shutdown removes the labels. The pod
//! name and namespace come from the downward API (`POD_NAME`,
//! `POD_NAMESPACE`); `examples/k8s/` at the repository root has the RBAC
//! role (get/list/watch/patch pods) and a Deployment.
//!
//! ```no_run
//! use protoactor_actor::prelude::*;
//! use protoactor_cluster::{Cluster, ClusterConfig, Kind};
//! use protoactor_cluster_provider_k8s::{KubernetesConfig, KubernetesProvider};
//! use protoactor_identity_lookup_partition::PartitionIdentityLookup;
//!
//! # async fn demo() -> Result<(), protoactor_cluster::Error> {
//! // In a pod: the in-cluster service account, POD_NAME and POD_NAMESPACE.
//! let provider = KubernetesProvider::new(KubernetesConfig::from_env());
//! let echo = Props::from_fn(|ctx| {
//!     if let Some(n) = ctx.message::<u64>() {
//!         ctx.respond(*n);
//!     }
//!     Ok(())
//! });
//! let config = ClusterConfig::new("demo", provider, PartitionIdentityLookup::new()).with_kind(Kind::new("echo", echo));
//! let cluster = Cluster::new(&ActorSystem::new(), config)?;
//! cluster.start_member().await?; // labels this pod, watches the others
//! cluster.shutdown(true).await; // removes the labels: the others see this member leave at once
//! # Ok(()) }
//! ```
//!
//! ## Options ([`KubernetesConfig`])
//!
//! | setting | default | meaning |
//! |---|---|---|
//! | [`from_env`](KubernetesConfig::from_env) | `POD_NAME`, `POD_NAMESPACE` | this pod, from the downward API |
//! | [`with_pod`](KubernetesConfig::with_pod) | – | this pod, given directly |
//! | [`with_client`](KubernetesConfig::with_client) | in-cluster or `KUBECONFIG` | the API client |
//! | [`with_label_prefix`](KubernetesConfig::with_label_prefix) | `cluster.proto.actor` | prefix of the label and annotation keys |
//! | [`with_request_timeout`](KubernetesConfig::with_request_timeout) | 10 s | bound on start-up and on each patch |
//! | [`with_max_retry_interval`](KubernetesConfig::with_max_retry_interval) | 5 s | longest pause between attempts while the API server is away |
//!
//! ## Rules
//!
//! * A member counts while its pod is `Running`, `Ready` and labelled; a
//!   pod whose process died fails its readiness probe (or is deleted) and
//!   the member leaves, and its id is blocked.
//! * The watch lists the pods and watches from the list's resourceVersion
//!   (kube-runtime's watcher); a `410 Gone` makes it list again, and a full
//!   member set is reported only once a list is complete.
//! * While the API server is unreachable nothing is reported: the cluster
//!   keeps its last topology; the watch is retried with backoff and logged
//!   once when it fails and once when it works again.
//! * 401/403 answers at start fail `start_member` with what to fix (the
//!   credentials, or the RBAC role).

mod config;
mod pod;
mod provider;

pub use config::{DEFAULT_LABEL_PREFIX, KubernetesConfig};
pub use pod::{member_of, pod_is_ready};
pub use provider::KubernetesProvider;
