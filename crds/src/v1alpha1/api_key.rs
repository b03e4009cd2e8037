use super::bounds::*;
use crate::conditions::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An API key of a tenant: SMTP AUTH credentials with scopes and limits, revocable at any time.
/// The operator generates the secret once into the Secret `<name>-credentials`; everything else
/// only ever sees its hash.
#[derive(CustomResource, JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "cascade-mail.com",
    version = "v1alpha1",
    kind = "ApiKey",
    doc = "An API key: SMTP AUTH credentials of a tenant, scoped and revocable.",
    namespaced,
    status = "ApiKeyStatus",
    shortname = "ak",
    category = "cascade",
    printcolumn = r#"{"name":"Key ID","type":"string","jsonPath":".status.keyId"}"#,
    printcolumn = r#"{"name":"State","type":"string","jsonPath":".status.state"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Message","type":"string","priority":1,"jsonPath":".status.conditions[?(@.type==\"Ready\")].message"}"#,
    printcolumn = r#"{"name":"Expires","type":"string","jsonPath":".spec.expiresAt"}"#,
    printcolumn = r#"{"name":"Last Used","type":"date","jsonPath":".status.lastUsedAt"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    validation = Rule::new("size(self.metadata.name) <= 63").message("metadata.name: at most 63 characters (it labels the credentials Secret)")
)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeySpec {
    /// What the key may do: `smtp:submit` (SMTP submission), `dmarc:upload` (upload DMARC
    /// reports to the relay's HTTP listener), `messages:send` (the HTTP send API),
    /// `suppressions:manage` (the tenant's suppression list through the API).
    #[serde(default = "default_scopes")]
    #[schemars(length(min = 1, max = MAX_SCOPES), extend("items" = {"type": "string", "enum": ["smtp:submit", "dmarc:upload", "messages:send", "suppressions:manage"]}))]
    pub scopes: Vec<String>,
    /// Sender domains (a subset of this namespace's SendingDomains); empty means all of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_ALLOWED_DOMAINS), inner(regex(pattern = DOMAIN_PATTERN), length(max = MAX_DOMAIN)))]
    pub allowed_domains: Vec<String>,
    /// Client networks (CIDR) the key may be used from; empty means any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_ALLOWED_CIDRS), inner(regex(pattern = CIDR_PATTERN), length(max = MAX_CIDR)))]
    pub allowed_cidrs: Vec<String>,
    /// Messages per minute; absent means unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub messages_per_minute: Option<u32>,
    /// Recipients per minute this key may address (bursting up to one minute's worth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub recipients_per_minute: Option<u32>,
    /// RFC 3339 time after which the key stops working (any offset, e.g. `2027-01-01T00:00:00Z`
    /// or `2027-01-01T02:00:00+02:00`); the relays get it in UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_TIME), extend("format" = "date-time"))]
    pub expires_at: Option<String>,
    /// Set to stop the key at once.
    #[serde(default)]
    pub revoked: bool,
    /// Unusual-activity detection: thresholds, and whether a finding suspends the key (lifted
    /// by any edit of this spec, e.g. setting `anomalies.acknowledged`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anomalies: Option<ApiKeyAnomalies>,
}

/// `spec.anomalies`: the relay's thresholds plus an admin's note.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyAnomalies {
    #[serde(flatten)]
    pub policy: crate::relay_config::KeyAnomalies,
    /// Free text an admin sets when lifting a suspension (editing the spec is what lifts it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_NOTE))]
    pub acknowledged: Option<String>,
}

/// Whether a key works.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiKeyState {
    Active,
    Expired,
    Revoked,
    /// Suspended after unusual sending (`status.suspension`) until the spec is edited.
    Suspended,
}

/// A suspension a relay imposed after unusual sending (`spec.anomalies.suspend`). It holds for
/// the generation it happened at: any edit of the spec lifts it.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeySuspension {
    /// The `metadata.generation` it applies to.
    pub generation: i64,
    /// `rate` or `failures`.
    pub kind: String,
    /// What was measured against what.
    pub detail: String,
    /// RFC 3339 UTC time the relay suspended the key.
    pub since: String,
}

/// Observed state of an ApiKey.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyStatus {
    /// The generation the status was computed for.
    #[serde(default)]
    pub observed_generation: i64,
    /// The key id (the SMTP AUTH username).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// A non-secret fingerprint of the secret (first bytes of its hash).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// Active, Expired or Revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<ApiKeyState>,
    /// `Ready` and friends.
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// Set while the key is suspended after unusual sending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspension: Option<ApiKeySuspension>,
    /// RFC 3339 UTC time a relay last authenticated the key (SMTP AUTH or the HTTP API), kept to
    /// the minute (the relays report, the operator folds at most once a minute): the access
    /// review's "unused since".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<String>,
    /// The network it was last used from (the client address's /24, or /64 for IPv6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_source_network: Option<String>,
}

fn default_scopes() -> Vec<String> {
    vec!["smtp:submit".into()]
}
