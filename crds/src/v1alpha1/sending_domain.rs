use crate::conditions::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A domain a tenant sends mail for. A domain belongs to one namespace only: a later claim in
/// another namespace gets `DomainConflict` and is never served.
#[derive(CustomResource, JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "cascade-mail.com",
    version = "v1alpha1",
    kind = "SendingDomain",
    doc = "A domain a tenant (namespace) sends mail for through a RelayPool.",
    namespaced,
    status = "SendingDomainStatus",
    shortname = "sd",
    category = "cascade",
    printcolumn = r#"{"name":"Domain","type":"string","jsonPath":".spec.domain"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Pool","type":"string","jsonPath":".spec.relayPool.name"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct SendingDomainSpec {
    /// The domain, lower case, without a trailing dot (e.g. `mail.example.com`).
    #[schemars(regex(pattern = r"^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"), length(max = 253))]
    pub domain: String,
    /// The RelayPool that sends this domain's mail.
    pub relay_pool: PoolRef,
    /// Which DKIM keys sign its mail.
    #[serde(default)]
    pub dkim: DomainDkim,
    /// What the SPF record must authorize.
    #[serde(default)]
    pub spf: SpfExpectation,
    /// The DMARC policy to publish.
    #[serde(default)]
    pub dmarc: DmarcExpectation,
    /// The return-path (bounce) domain used in the envelope sender, when it differs from
    /// `domain` (e.g. `bounces.shop.example`): it needs its own SPF record authorizing the pool,
    /// checked as `ReturnPathVerified`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"), length(max = 253))]
    pub return_path: Option<String>,
}

/// A RelayPool by name and namespace.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PoolRef {
    /// RelayPool name.
    pub name: String,
    /// RelayPool namespace (RelayPools usually live in the platform's namespace).
    pub namespace: String,
}

/// DKIM settings of a domain.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DomainDkim {
    /// DkimKeys (in this namespace, for this domain) that sign. Empty with `generate: true`
    /// means the operator creates one DkimKey named `<SendingDomain name>-dkim`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<String>,
    /// Create a DkimKey when `keys` is empty.
    #[serde(default = "yes")]
    pub generate: bool,
}

/// SPF expectations.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SpfExpectation {
    /// An `include:` domain that authorizes the pool's egress (e.g. `_spf.relay.example.com`);
    /// empty means the pool's egress addresses are listed with `ip4:`/`ip6:`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include: Option<String>,
    /// Egress addresses of the pool (CIDR) to authorize when there is no `include`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<String>,
}

/// DMARC expectations.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DmarcExpectation {
    /// `none`, `quarantine` or `reject`.
    #[serde(default = "default_policy")]
    pub policy: DmarcPolicy,
    /// Aggregate report address (`mailto:` URI), optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rua: Option<String>,
}

/// DMARC policy.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum DmarcPolicy {
    None,
    Quarantine,
    Reject,
}

/// A DNS record the customer must publish.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DnsRecord {
    /// Fully qualified name, with a trailing dot.
    pub name: String,
    /// Record type (`TXT`).
    #[serde(rename = "type")]
    pub type_: String,
    /// Exact value to publish.
    pub value: String,
}

/// Observed state of a SendingDomain.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SendingDomainStatus {
    /// The generation the status was computed for.
    #[serde(default)]
    pub observed_generation: i64,
    /// Records to publish, ready to paste.
    #[serde(default)]
    pub records: Vec<DnsRecord>,
    /// What the latest DMARC aggregate reports (uploaded or mailed to the pool's relays) say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dmarc_reports: Option<DmarcReportSummary>,
    /// `Ready`, `DomainConflict`, ...
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

/// The latest DMARC report window of a domain.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct DmarcReportSummary {
    /// Start and end of the reporting window (RFC 3339).
    pub window_begin: String,
    pub window_end: String,
    /// Messages reported in the window.
    pub messages: u64,
    /// Share that passed DMARC (aligned DKIM or SPF), e.g. `97.5%`.
    pub pass_rate: String,
    /// Sources whose mail failed DMARC, most messages first (at most 5), e.g. `203.0.113.9 (12)`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failing_sources: Vec<String>,
}

fn yes() -> bool {
    true
}
fn default_policy() -> DmarcPolicy {
    DmarcPolicy::Reject
}

impl Default for DomainDkim {
    fn default() -> Self {
        Self { keys: vec![], generate: true }
    }
}
impl Default for DmarcExpectation {
    fn default() -> Self {
        Self { policy: DmarcPolicy::Reject, rua: None }
    }
}
