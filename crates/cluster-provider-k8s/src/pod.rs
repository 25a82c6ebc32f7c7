//! Reading a member out of a pod.

use k8s_openapi::api::core::v1::Pod;
use protoactor_cluster::Member;

use crate::config::KubernetesConfig;

/// True if the pod is `Running` and its `Ready` condition is `True`.
pub fn pod_is_ready(pod: &Pod) -> bool {
    let Some(status) = &pod.status else { return false };
    status.phase.as_deref() == Some("Running")
        && status.conditions.as_ref().is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The member a pod stands for in cluster `cluster`: it carries the
/// cluster and member-id labels and the port annotation, and is ready.
/// The host is the host annotation, or else the pod IP.
pub fn member_of(pod: &Pod, config: &KubernetesConfig, cluster: &str) -> Option<Member> {
    if !pod_is_ready(pod) || pod.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let labels = pod.metadata.labels.as_ref()?;
    if labels.get(&config.cluster_label()).map(String::as_str) != Some(cluster) {
        return None;
    }
    let id = labels.get(&config.member_label())?;
    let annotations = pod.metadata.annotations.as_ref()?;
    let port: u16 = annotations.get(&config.port_annotation())?.parse().ok()?;
    let host = annotations
        .get(&config.host_annotation())
        .cloned()
        .or_else(|| pod.status.as_ref().and_then(|s| s.pod_ip.clone()))?;
    let kinds = annotations
        .get(&config.kinds_annotation())
        .map(|k| k.split(',').filter(|k| !k.is_empty()).map(str::to_string).collect())
        .unwrap_or_default();
    Some(Member::new(host, port, id.clone(), kinds))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(json: serde_json::Value) -> Pod {
        serde_json::from_value(json).expect("a pod")
    }

    fn labelled(phase: &str, ready: &str) -> Pod {
        pod(serde_json::json!({
            "metadata": {
                "name": "p1",
                "labels": {"cluster.proto.actor/cluster": "shop", "cluster.proto.actor/member-id": "m1"},
                "annotations": {"cluster.proto.actor/port": "4020", "cluster.proto.actor/kinds": "cart,user"}
            },
            "status": {"phase": phase, "podIP": "10.1.2.3", "conditions": [{"type": "Ready", "status": ready}]}
        }))
    }

    #[test]
    fn a_running_ready_labelled_pod_is_a_member() {
        let config = KubernetesConfig::default();
        let m = member_of(&labelled("Running", "True"), &config, "shop").expect("a member");
        assert_eq!((m.id.as_str(), m.host.as_str(), m.port), ("m1", "10.1.2.3", 4020));
        assert_eq!(m.kinds, ["cart", "user"]);
        assert!(member_of(&labelled("Running", "True"), &config, "other").is_none(), "another cluster");
        assert!(member_of(&labelled("Running", "False"), &config, "shop").is_none(), "not ready");
        assert!(member_of(&labelled("Pending", "True"), &config, "shop").is_none(), "not running");
    }
}
