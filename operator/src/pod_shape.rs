//! The relay pods' size and placement from `RelayPool.spec.pod`, applied to the pod templates the
//! operator builds (the relay StatefulSet and the drain Jobs). Pure.

use cascade_crds::v1alpha1::RelayPool;
use k8s_openapi::api::core::v1::{Container, PodSpec, ResourceRequirements, TopologySpreadConstraint};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use std::collections::BTreeMap;

/// `pool` with `defaults` as its image pull Secrets when it names none (the operator's
/// `--relay-image-pull-secrets`, from the chart's `imagePullSecrets`).
pub fn with_default_pull_secrets<'a>(pool: &'a RelayPool, defaults: &[String]) -> std::borrow::Cow<'a, RelayPool> {
    if !pool.spec.pod.image_pull_secrets.is_empty() || defaults.is_empty() {
        return std::borrow::Cow::Borrowed(pool);
    }
    let mut shaped = pool.clone();
    shaped.spec.pod.image_pull_secrets = defaults.iter().map(|n| k8s_openapi::api::core::v1::LocalObjectReference { name: n.clone() }).collect();
    std::borrow::Cow::Owned(shaped)
}

/// Requests 250m CPU and 256Mi memory, limit 1Gi memory: Burstable, and a CPU request for the
/// autoscaler to compute utilization against.
pub fn default_resources() -> ResourceRequirements {
    let q = |s: &str| Quantity(s.into());
    ResourceRequirements { requests: Some([("cpu".to_string(), q("250m")), ("memory".to_string(), q("256Mi"))].into()), limits: Some([("memory".to_string(), q("1Gi"))].into()), ..Default::default() }
}

/// One pod per node where it can be, never a hard requirement.
fn spread(selector: &BTreeMap<String, String>) -> Vec<TopologySpreadConstraint> {
    vec![TopologySpreadConstraint {
        max_skew: 1,
        topology_key: "kubernetes.io/hostname".into(),
        when_unsatisfiable: "ScheduleAnyway".into(),
        label_selector: Some(LabelSelector { match_labels: Some(selector.clone()), ..Default::default() }),
        ..Default::default()
    }]
}

/// What every pod of the pool gets: resources, pull secrets, node selection, tolerations, priority.
pub fn common(pool: &RelayPool, pod: &mut PodSpec, container: &mut Container) {
    let s = &pool.spec.pod;
    container.resources = Some(s.resources.clone().unwrap_or_else(default_resources));
    pod.image_pull_secrets = (!s.image_pull_secrets.is_empty()).then(|| s.image_pull_secrets.clone());
    pod.node_selector = (!s.node_selector.is_empty()).then(|| s.node_selector.clone());
    pod.tolerations = (!s.tolerations.is_empty()).then(|| s.tolerations.clone());
    pod.priority_class_name = s.priority_class_name.clone();
}

/// The relay pods: [`common`], affinity, spread (default across nodes, of the pods `selector`
/// selects) and the pool's pod labels and annotations under the template's own (the selector
/// labels and the configuration hash).
pub fn relay(pool: &RelayPool, selector: &BTreeMap<String, String>, pod: &mut PodSpec, container: &mut Container, template: &mut ObjectMeta) {
    let s = &pool.spec.pod;
    common(pool, pod, container);
    pod.affinity = s.affinity.clone();
    let constraints = s.topology_spread_constraints.clone().unwrap_or_else(|| spread(selector));
    pod.topology_spread_constraints = (!constraints.is_empty()).then_some(constraints);
    let mut labels = s.pod_labels.clone();
    labels.extend(template.labels.take().unwrap_or_default());
    template.labels = Some(labels);
    let mut annotations = s.pod_annotations.clone();
    annotations.extend(template.annotations.take().unwrap_or_default());
    template.annotations = Some(annotations);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(pod: serde_json::Value) -> RelayPool {
        let mut p = RelayPool::new("main", serde_json::from_value(serde_json::json!({ "pod": pod })).unwrap());
        p.metadata.namespace = Some("cascade-system".into());
        p
    }

    fn selector() -> BTreeMap<String, String> {
        [("cascade-mail.com/relay-pool".to_string(), "main".to_string())].into()
    }

    #[test]
    fn defaults_make_pods_burstable_and_spread_across_nodes() {
        let (mut pod, mut c, mut meta) = (PodSpec::default(), Container::default(), ObjectMeta::default());
        relay(&pool(serde_json::json!({})), &selector(), &mut pod, &mut c, &mut meta);
        let r = c.resources.unwrap();
        assert_eq!(r.requests.unwrap()["cpu"], Quantity("250m".into()));
        assert_eq!(r.limits.unwrap()["memory"], Quantity("1Gi".into()));
        let spread = &pod.topology_spread_constraints.unwrap()[0];
        assert_eq!((spread.topology_key.as_str(), spread.when_unsatisfiable.as_str(), spread.max_skew), ("kubernetes.io/hostname", "ScheduleAnyway", 1));
        assert_eq!(spread.label_selector.as_ref().unwrap().match_labels.as_ref().unwrap()["cascade-mail.com/relay-pool"], "main");
        assert!(pod.node_selector.is_none() && pod.tolerations.is_none() && pod.image_pull_secrets.is_none() && pod.affinity.is_none());
    }

    #[test]
    fn the_operators_pull_secrets_fill_in_only_where_the_pool_names_none() {
        let defaults = vec!["chart-registry".to_string()];
        let shaped = with_default_pull_secrets(&pool(serde_json::json!({})), &defaults).into_owned();
        assert_eq!(shaped.spec.pod.image_pull_secrets[0].name, "chart-registry");
        let own = pool(serde_json::json!({ "imagePullSecrets": [{ "name": "mine" }] }));
        assert_eq!(with_default_pull_secrets(&own, &defaults).spec.pod.image_pull_secrets[0].name, "mine");
        assert!(matches!(with_default_pull_secrets(&own, &[]), std::borrow::Cow::Borrowed(_)));
    }

    #[test]
    fn the_pools_settings_are_applied_and_the_operators_labels_win() {
        let settings = serde_json::json!({
            "resources": { "requests": { "cpu": "1" } },
            "nodeSelector": { "egress": "spf-listed" },
            "tolerations": [{ "key": "mail", "operator": "Exists", "effect": "NoSchedule" }],
            "topologySpreadConstraints": [],
            "priorityClassName": "mail-critical",
            "imagePullSecrets": [{ "name": "registry" }],
            "podLabels": { "team": "mail" },
            "podAnnotations": { "cascade-mail.com/config-hash": "mine", "prometheus.io/scrape": "true" },
        });
        let (mut pod, mut c, mut meta) = (PodSpec::default(), Container::default(), ObjectMeta::default());
        meta.labels = Some(selector());
        meta.annotations = Some([("cascade-mail.com/config-hash".to_string(), "abc".to_string())].into());
        relay(&pool(settings), &selector(), &mut pod, &mut c, &mut meta);
        assert_eq!(c.resources.unwrap().requests.unwrap()["cpu"], Quantity("1".into()));
        assert_eq!(pod.node_selector.unwrap()["egress"], "spf-listed");
        assert_eq!(pod.tolerations.unwrap()[0].key.as_deref(), Some("mail"));
        assert!(pod.topology_spread_constraints.is_none(), "[] turns the default spread off");
        assert_eq!(pod.priority_class_name.as_deref(), Some("mail-critical"));
        assert_eq!(pod.image_pull_secrets.unwrap()[0].name, "registry");
        let (labels, annotations) = (meta.labels.unwrap(), meta.annotations.unwrap());
        assert_eq!((labels["team"].as_str(), labels["cascade-mail.com/relay-pool"].as_str()), ("mail", "main"));
        assert_eq!((annotations["cascade-mail.com/config-hash"].as_str(), annotations["prometheus.io/scrape"].as_str()), ("abc", "true"), "the hash stays the operator's");
    }
}
