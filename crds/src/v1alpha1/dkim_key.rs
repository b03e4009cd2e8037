use super::bounds::*;
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
    printcolumn = r#"{"name":"Selector","type":"string","jsonPath":".status.currentSelector"}"#,
    printcolumn = r#"{"name":"Next","type":"string","jsonPath":".status.nextSelector"}"#,
    printcolumn = r#"{"name":"Rotation","type":"string","jsonPath":".status.nextRotation"}"#,
    printcolumn = r#"{"name":"Algorithm","type":"string","jsonPath":".spec.algorithm"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Message","type":"string","priority":1,"jsonPath":".status.conditions[?(@.type==\"Ready\")].message"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    validation = Rule::new("size(self.metadata.name) <= 63").message("metadata.name: at most 63 characters (it labels the key's Secret)")
)]
#[serde(rename_all = "camelCase")]
pub struct DkimKeySpec {
    /// The signing domain (`d=`).
    #[schemars(regex(pattern = DOMAIN_PATTERN), length(max = MAX_DOMAIN))]
    pub domain: String,
    /// Selector (`s=`) of the first key; the record goes to `<selector>._domainkey.<domain>`.
    /// Later generations use `<selector>-2`, `<selector>-3`, ...
    #[schemars(regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"), length(max = 63))]
    pub selector: String,
    /// `rsa-sha256` (2048-bit keys) or `ed25519-sha256`.
    #[serde(default = "default_algorithm")]
    pub algorithm: DkimAlgorithm,
    /// Rotation schedule.
    #[serde(default)]
    pub rotation: Rotation,
}

/// When keys rotate. Annotate the DkimKey with `cascade-mail.com/rotate: <any new value>` for an
/// emergency rotation now: a new key is generated at once and activated as soon as its record is
/// verified.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Rotation {
    /// Age after which a new key replaces this one (e.g. `90d`).
    #[serde(default = "default_rotate_every")]
    #[schemars(regex(pattern = r"^[0-9]{1,12}(ms|s|m|h|d)$"), length(max = MAX_DURATION))]
    pub rotate_every: String,
    /// How long before activation the next key's record is published.
    #[serde(default = "default_lead_time")]
    #[schemars(regex(pattern = r"^[0-9]{1,12}(ms|s|m|h|d)$"), length(max = MAX_DURATION))]
    pub publish_lead_time: String,
    /// How long a replaced key's record stays published.
    #[serde(default = "default_retire_after")]
    #[schemars(regex(pattern = r"^[0-9]{1,12}(ms|s|m|h|d)$"), length(max = MAX_DURATION))]
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
    /// The selector the relays sign with now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_selector: Option<String>,
    /// The selector of the next key, once it exists (publish its record before it activates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_selector: Option<String>,
    /// When the current key is due to be replaced (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_rotation: Option<String>,
    /// The last `cascade-mail.com/rotate` annotation value acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_forced_rotation: Option<String>,
    /// Every key generation, oldest first: generation 1 uses `spec.selector`, generation n > 1
    /// uses `<spec.selector>-<n>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub generations: Vec<KeyGeneration>,
}

/// One generation of a DkimKey.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct KeyGeneration {
    /// 1, 2, ...
    pub generation: u32,
    /// Its selector (`s=`).
    pub selector: String,
    /// Pending, Active, Retiring or Retired.
    pub phase: KeyPhase,
    /// Where its record goes: `<selector>._domainkey.<domain>.`
    pub dns_name: String,
    /// The exact TXT value (empty once Retired).
    #[serde(default)]
    pub txt_value: String,
    /// When the key was generated (RFC 3339).
    pub created_at: String,
    /// When it became Active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activated_at: Option<String>,
    /// When a newer key replaced it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retiring_at: Option<String>,
    /// When its private key was destroyed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<String>,
    /// Created by a forced rotation: activates as soon as its record is verified.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forced: bool,
}

/// Where a key generation is in its life.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyPhase {
    /// Generated; its record is published in status, waiting to be verified in DNS.
    Pending,
    /// Verified in DNS; the relays sign with it.
    Active,
    /// Replaced by a newer Active key; its record must stay published so mail in flight verifies.
    Retiring,
    /// Its record may be removed; the private key is destroyed.
    Retired,
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
