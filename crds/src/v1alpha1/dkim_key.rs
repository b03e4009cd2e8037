use crate::conditions::Condition;
use crate::relay_config::DkimAlgorithm;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A DKIM signing key of a domain. The operator generates the private key and keeps it
/// encrypted in a Secret; status says exactly what to publish in DNS.
#[derive(CustomResource, JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "cascade-mail.com",
    version = "v1alpha1",
    kind = "DkimKey",
    doc = "A DKIM signing key of a domain; status says what to publish in DNS.",
    namespaced,
    status = "DkimKeyStatus",
    shortname = "dk",
    category = "cascade",
    printcolumn = r#"{"name":"Domain","type":"string","jsonPath":".spec.domain"}"#,
    printcolumn = r#"{"name":"Selector","type":"string","jsonPath":".spec.selector"}"#,
    printcolumn = r#"{"name":"Algorithm","type":"string","jsonPath":".spec.algorithm"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct DkimKeySpec {
    /// The signing domain (`d=`).
    pub domain: String,
    /// Selector (`s=`); the record goes to `<selector>._domainkey.<domain>`.
    #[schemars(regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"), length(max = 63))]
    pub selector: String,
    /// `rsa-sha256` (2048-bit keys) or `ed25519-sha256`.
    #[serde(default = "default_algorithm")]
    pub algorithm: DkimAlgorithm,
    /// Rotation schedule.
    #[serde(default)]
    pub rotation: Rotation,
}

/// When keys rotate.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Rotation {
    /// Age after which a new key replaces this one (e.g. `90d`).
    #[serde(default = "default_rotate_every")]
    pub rotate_every: String,
    /// How long before activation the next key's record is published.
    #[serde(default = "default_lead_time")]
    pub publish_lead_time: String,
    /// How long a replaced key's record stays published.
    #[serde(default = "default_retire_after")]
    pub retire_after: String,
}

/// Observed state of a DkimKey.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct DkimKeyStatus {
    /// The generation the status was computed for.
    #[serde(default)]
    pub observed_generation: i64,
    /// Where to publish: `<selector>._domainkey.<domain>.`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_name: Option<String>,
    /// The exact TXT value to publish.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub txt_value: Option<String>,
    /// `Ready` and friends.
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

fn default_algorithm() -> DkimAlgorithm {
    DkimAlgorithm::RsaSha256
}
fn default_rotate_every() -> String {
    "90d".into()
}
fn default_lead_time() -> String {
    "2d".into()
}
fn default_retire_after() -> String {
    "7d".into()
}

impl Default for Rotation {
    fn default() -> Self {
        Self { rotate_every: default_rotate_every(), publish_lead_time: default_lead_time(), retire_after: default_retire_after() }
    }
}
