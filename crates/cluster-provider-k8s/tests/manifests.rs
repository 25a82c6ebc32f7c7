//! The manifests under `examples/k8s/` parse into the Kubernetes types, and
//! say what the provider needs (so they cannot rot).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use serde_json::Value;

const RBAC: &str = include_str!("../../../examples/k8s/rbac.yaml");
const DEPLOYMENT: &str = include_str!("../../../examples/k8s/deployment.yaml");

fn documents(yaml: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(yaml).expect("valid YAML")
}

#[test]
fn the_rbac_grants_get_list_watch_patch_on_pods_to_the_members_account() {
    let docs = documents(RBAC);
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["ServiceAccount", "Role", "RoleBinding"]);
    let account: ServiceAccount = serde_json::from_value(docs[0].clone()).unwrap();
    let role: Role = serde_json::from_value(docs[1].clone()).unwrap();
    let binding: RoleBinding = serde_json::from_value(docs[2].clone()).unwrap();
    let rules = role.rules.unwrap();
    let pods = rules.iter().find(|r| r.resources.as_ref().is_some_and(|r| r.contains(&"pods".to_string()))).unwrap();
    for verb in ["get", "list", "watch", "patch"] {
        assert!(pods.verbs.contains(&verb.to_string()), "the role allows {verb} on pods");
    }
    assert_eq!(binding.role_ref.name, role.metadata.name.unwrap());
    let subject = &binding.subjects.unwrap()[0];
    assert_eq!(Some(&subject.name), account.metadata.name.as_ref());
}

#[test]
fn the_deployment_runs_members_with_the_downward_api_and_a_readiness_probe() {
    let docs = documents(DEPLOYMENT);
    assert_eq!(docs.len(), 1);
    let deployment: Deployment = serde_json::from_value(docs[0].clone()).unwrap();
    let spec = deployment.spec.unwrap();
    assert!(spec.replicas.unwrap_or(1) >= 3, "three members");
    let pod = spec.template.spec.unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some("protoactor-member"), "the account of rbac.yaml");
    let container = &pod.containers[0];
    let env = container.env.as_ref().unwrap();
    for (name, field) in
        [("POD_NAME", "metadata.name"), ("POD_NAMESPACE", "metadata.namespace"), ("POD_IP", "status.podIP")]
    {
        let var = env.iter().find(|e| e.name == name).unwrap_or_else(|| panic!("{name} is set"));
        let from = var.value_from.as_ref().and_then(|v| v.field_ref.as_ref()).map(|f| f.field_path.as_str());
        assert_eq!(from, Some(field), "{name} comes from the downward API");
    }
    assert!(container.readiness_probe.as_ref().and_then(|p| p.tcp_socket.as_ref()).is_some(), "a TCP readiness probe");
}
