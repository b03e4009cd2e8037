//! CRDs for the test API server: Cascade's own, and stand-ins for built-in kinds it does not serve.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use std::time::{Duration, Instant};

async fn create_established(client: &kube::Client, docs: &[CustomResourceDefinition]) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in docs {
        crds.create(&PostParams::default(), crd).await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for crd in docs {
        let name = crd.metadata.name.clone().unwrap();
        loop {
            let got = crds.get(&name).await.unwrap();
            if got.status.and_then(|s| s.conditions).unwrap_or_default().iter().any(|c| c.type_ == "Established" && c.status == "True") {
                break;
            }
            assert!(Instant::now() < deadline, "{name} not established");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Installs the generated Cascade CRDs and waits until they are served.
pub async fn install(client: &kube::Client) {
    let yaml = cascade_operator::crdgen::crds_yaml().unwrap();
    let docs: Vec<CustomResourceDefinition> = serde_saphyr::from_multiple(&yaml).unwrap();
    create_established(client, &docs).await;
}

/// A stand-in for a built-in kind: any content, namespaced, in group `<prefix>.test.local`.
fn stand_in(prefix: &str, kind: &str, plural: &str) -> (CustomResourceDefinition, ApiResource) {
    let group = format!("{prefix}.test.local");
    let crd = serde_json::from_value(serde_json::json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": { "name": format!("{plural}.{group}") },
        "spec": {
            "group": group, "scope": "Namespaced",
            "names": { "kind": kind, "plural": plural, "singular": kind.to_lowercase() },
            "versions": [{ "name": "v1", "served": true, "storage": true, "subresources": { "status": {} },
                "schema": { "openAPIV3Schema": { "type": "object", "x-kubernetes-preserve-unknown-fields": true } } }]
        }
    }))
    .unwrap();
    (crd, ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(&group, "v1", kind), plural))
}

/// A namespaced `Secret` kind in group `core.test.local`, shaped like the real one, and the
/// API resource the operator should use for it.
pub async fn install_secret_stand_in(client: &kube::Client) -> ApiResource {
    let (crd, resource) = stand_in("core", "Secret", "secrets");
    create_established(client, &[crd]).await;
    resource
}

/// Stand-ins for the workload kinds, keyed as the operator's manifests name the real ones.
pub async fn install_workload_stand_ins(client: &kube::Client) -> std::collections::BTreeMap<(String, String), ApiResource> {
    let real = [
        ("v1", "ServiceAccount", "core", "serviceaccounts"),
        ("rbac.authorization.k8s.io/v1", "Role", "rbac", "roles"),
        ("rbac.authorization.k8s.io/v1", "RoleBinding", "rbac", "rolebindings"),
        ("apps/v1", "StatefulSet", "apps", "statefulsets"),
        ("v1", "Service", "core", "services"),
        ("policy/v1", "PodDisruptionBudget", "policy", "poddisruptionbudgets"),
        ("networking.k8s.io/v1", "NetworkPolicy", "networking", "networkpolicies"),
        ("autoscaling/v2", "HorizontalPodAutoscaler", "autoscaling", "horizontalpodautoscalers"),
        ("v1", "PersistentVolumeClaim", "core", "persistentvolumeclaims"),
        ("batch/v1", "Job", "batch", "jobs"),
    ];
    let mut map = std::collections::BTreeMap::new();
    let mut crds = Vec::new();
    for (api_version, kind, prefix, plural) in real {
        let (mut crd, resource) = stand_in(prefix, kind, plural);
        if kind == "StatefulSet" {
            immutable_claim_templates(&mut crd);
        }
        crds.push(crd);
        map.insert((api_version.to_string(), kind.to_string()), resource);
    }
    create_established(client, &crds).await;
    map
}

/// Like the real API server, refuse a change of a StatefulSet's `volumeClaimTemplates` (a
/// transition rule, with the real message).
fn immutable_claim_templates(crd: &mut CustomResourceDefinition) {
    let schema = serde_json::json!({
        "type": "object", "x-kubernetes-preserve-unknown-fields": true,
        "properties": { "spec": {
            "type": "object", "x-kubernetes-preserve-unknown-fields": true,
            "properties": { "volumeClaimTemplates": { "type": "array", "maxItems": 4, "items": { "type": "object", "x-kubernetes-preserve-unknown-fields": true } } },
            "x-kubernetes-validations": [{
                "rule": "!has(oldSelf.volumeClaimTemplates) || (has(self.volumeClaimTemplates) && self.volumeClaimTemplates == oldSelf.volumeClaimTemplates)",
                "message": "Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"
            }]
        } }
    });
    crd.spec.versions[0].schema = Some(serde_json::from_value(serde_json::json!({ "openAPIV3Schema": schema })).unwrap());
}

/// An operator context for the test server: Secrets through the stand-in kind.
pub fn context(client: &kube::Client, secrets: cascade_operator::secrets::SecretStore, master: cascade_relay::spool::format::KeyRing) -> cascade_operator::Context {
    // No DNS server answers here by default (tests that check DNS start Knot and set ctx.dns).
    let dns = cascade_operator::dns::Dns::new(&["127.0.0.1:9".parse().unwrap()]).unwrap();
    let mut ctx = cascade_operator::Context::kubernetes(client.clone(), master, dns);
    // No relays answer here unless a test starts one.
    ctx.relay_http = Some(vec![]);
    ctx.secrets = secrets;
    ctx
}

/// `events.k8s.io/v1` Event as a custom resource in its real group (allowed with the
/// `api-approved.kubernetes.io` annotation), so kube's event recorder runs unchanged.
pub async fn install_event_stand_in(client: &kube::Client) {
    let crd = serde_json::from_value(serde_json::json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": { "name": "events.events.k8s.io", "annotations": { "api-approved.kubernetes.io": "unapproved, test stand-in" } },
        "spec": {
            "group": "events.k8s.io", "scope": "Namespaced",
            "names": { "kind": "Event", "plural": "events", "singular": "event" },
            "versions": [{ "name": "v1", "served": true, "storage": true,
                "schema": { "openAPIV3Schema": { "type": "object", "x-kubernetes-preserve-unknown-fields": true } } }]
        }
    }))
    .unwrap();
    create_established(client, &[crd]).await;
}

/// A stand-in for `coordination.k8s.io/v1` Lease.
/// A cluster-scoped `Namespace` stand-in (`core.test.local`), for pools selecting tenants by label.
pub async fn install_namespace_stand_in(client: &kube::Client) -> ApiResource {
    let (mut crd, resource) = stand_in("core", "Namespace", "namespaces");
    crd.spec.scope = "Cluster".into();
    create_established(client, &[crd]).await;
    resource
}

pub async fn install_lease_stand_in(client: &kube::Client) -> ApiResource {
    let (crd, resource) = stand_in("coordination", "Lease", "leases");
    create_established(client, &[crd]).await;
    resource
}
