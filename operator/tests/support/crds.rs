//! CRDs for the test API server: Cascade's own, and stand-ins for the built-in kinds it does not
//! serve (reached through `rewrite.rs`).

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
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

/// Installs the Cascade CRDs without their validation (patterns, bounds, enums, formats, CEL):
/// a cluster whose CRDs an upgrade did not touch (Helm never upgrades CRDs), where only the
/// operator's own per-object checks stand between a tenant and the pool.
pub async fn install_loose(client: &kube::Client) {
    // `enum` goes only on list items (`scopes`, strings in Rust); an enum-typed field keeps it,
    // as every release's CRDs had it.
    fn strip(v: &mut serde_json::Value, in_items: bool) {
        match v {
            serde_json::Value::Object(m) => {
                for k in ["pattern", "maxItems", "minItems", "maxLength", "minLength", "format", "x-kubernetes-validations", "maximum", "minimum", "enum"] {
                    // Only schema keywords go, never a property that happens to share the name.
                    if (k != "enum" || in_items) && m.get(k).is_some_and(|x| !x.is_object() || k == "x-kubernetes-validations") {
                        m.remove(k);
                    }
                }
                for (k, child) in m.iter_mut() {
                    strip(child, k == "items");
                }
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(|c| strip(c, false)),
            _ => {}
        }
    }
    let yaml = cascade_operator::crdgen::crds_yaml().unwrap();
    let mut docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&yaml).unwrap();
    docs.iter_mut().for_each(|d| strip(d, false));
    let docs: Vec<CustomResourceDefinition> = docs.into_iter().map(|d| serde_json::from_value(d).unwrap()).collect();
    create_established(client, &docs).await;
}

/// A stand-in CRD for a built-in kind: any content, in `group` (a `.test.local` group for
/// groups without a dot, see `rewrite.rs`; the real group otherwise, allowed with the
/// `api-approved.kubernetes.io` annotation).
fn stand_in(group: &str, version: &str, kind: &str, plural: &str, cluster: bool) -> CustomResourceDefinition {
    let approval = if group.ends_with(".k8s.io") { serde_json::json!({ "api-approved.kubernetes.io": "unapproved, test stand-in" }) } else { serde_json::json!({}) };
    serde_json::from_value(serde_json::json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": { "name": format!("{plural}.{group}"), "annotations": approval },
        "spec": {
            "group": group, "scope": if cluster { "Cluster" } else { "Namespaced" },
            "names": { "kind": kind, "plural": plural, "singular": kind.to_lowercase() },
            "versions": [{ "name": version, "served": true, "storage": true, "subresources": { "status": {} },
                "schema": { "openAPIV3Schema": { "type": "object", "x-kubernetes-preserve-unknown-fields": true } } }]
        }
    }))
    .unwrap()
}

/// More stand-ins, namespaced, each (group, version, kind, plural) as given (a built-in group's
/// `.test.local` name, or a foreign CRD's real group): for example resources only.
#[allow(dead_code)]
pub async fn install_foreign_stand_ins(client: &kube::Client, kinds: &[(&str, &str, &str, &str)]) {
    let crds: Vec<_> = kinds.iter().map(|&(group, version, kind, plural)| stand_in(group, version, kind, plural, false)).collect();
    create_established(client, &crds).await;
}

/// Every built-in kind the operator and the relay use, as stand-ins the rewrite layer maps the
/// typed clients to.
pub async fn install_stand_ins(client: &kube::Client) {
    let kinds = [
        ("", "v1", "Secret", "secrets", false),
        ("", "v1", "ServiceAccount", "serviceaccounts", false),
        ("", "v1", "Service", "services", false),
        ("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", false),
        ("", "v1", "Namespace", "namespaces", true),
        ("apps", "v1", "StatefulSet", "statefulsets", false),
        ("batch", "v1", "Job", "jobs", false),
        ("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", false),
        ("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", false),
        ("rbac.authorization.k8s.io", "v1", "Role", "roles", false),
        ("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", false),
        ("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", false),
        ("coordination.k8s.io", "v1", "Lease", "leases", false),
        ("events.k8s.io", "v1", "Event", "events", false),
    ];
    let crds: Vec<_> = kinds
        .iter()
        .map(|&(group, version, kind, plural, cluster)| {
            let group = if group.contains('.') { group.to_string() } else { format!("{}.test.local", if group.is_empty() { "core" } else { group }) };
            let mut crd = stand_in(&group, version, kind, plural, cluster);
            if kind == "StatefulSet" {
                immutable_claim_templates(&mut crd);
            }
            crd
        })
        .collect();
    create_established(client, &crds).await;
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

/// An operator context for the test server.
pub fn context(client: &kube::Client, master: cascade_core::seal::KeyRing) -> cascade_operator::Context {
    // No DNS server answers here by default (tests that check DNS start Knot and set ctx.dns).
    let dns = cascade_operator::dns::Dns::new(&["127.0.0.1:9".parse().unwrap()]).unwrap();
    let mut ctx = cascade_operator::Context::new(client.clone(), master, dns);
    // No relays answer here unless a test starts one.
    ctx.relay_http = Some(vec![]);
    ctx
}
