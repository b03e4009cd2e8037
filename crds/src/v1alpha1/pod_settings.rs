use k8s_openapi::api::core::v1::{Affinity, LocalObjectReference, ResourceRequirements, Toleration, TopologySpreadConstraint};
use kube::KubeSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How the relay pods are sized and scheduled (the drain Jobs of the pool get the same
/// resources, pull secrets, node selection, tolerations and priority).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.podLabels) || !self.podLabels.exists(k, k == 'app.kubernetes.io/name' || k == 'cascade-mail.com/relay-pool')").message("podLabels: app.kubernetes.io/name and cascade-mail.com/relay-pool are the pool's selector and cannot be set"))]
pub struct PodSettings {
    /// The relay container's requests and limits. Default: requests 250m CPU and 256Mi memory,
    /// limit 1Gi memory (Burstable: not evicted first, and the CPU autoscaler has a request to
    /// compute against).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Run only on nodes with these labels (for example the nodes whose egress addresses SPF
    /// lists).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub tolerations: Vec<Toleration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// Absent: spread across nodes (`kubernetes.io/hostname`, maxSkew 1, ScheduleAnyway); `[]`:
    /// none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 8))]
    pub topology_spread_constraints: Option<Vec<TopologySpreadConstraint>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub priority_class_name: Option<String>,
    /// Secrets in the pool's namespace for pulling the relay image from a private registry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub image_pull_secrets: Vec<LocalObjectReference>,
    /// Added to the relay pods (the configuration hash annotation stays the operator's).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pod_annotations: BTreeMap<String, String>,
    /// Added to the relay pods, besides the selector labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pod_labels: BTreeMap<String, String>,
    /// Added to the relays' ServiceAccount (for example a cloud workload identity).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub service_account_annotations: BTreeMap<String, String>,
}
