use super::bounds::*;
use crate::conditions::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A domain a tenant sends mail for. A claim owns its domain only once it is proven (the TXT
/// record in `status.ownership`, or the serving RelayPool's `assignedDomains`); among proven
/// claims the first proven wins and the others get `DomainConflict`. Unproven claims are never
/// served and block no one.
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
    printcolumn = r#"{"name":"SPF","type":"string","jsonPath":".status.conditions[?(@.type==\"SPFVerified\")].status"}"#,
    printcolumn = r#"{"name":"DKIM","type":"string","jsonPath":".status.conditions[?(@.type==\"DKIMVerified\")].status"}"#,
    printcolumn = r#"{"name":"DMARC","type":"string","jsonPath":".status.conditions[?(@.type==\"DMARCVerified\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Message","type":"string","priority":1,"jsonPath":".status.conditions[?(@.type==\"Ready\")].message"}"#,
    printcolumn = r#"{"name":"Pool","type":"string","jsonPath":".spec.relayPool.name"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    validation = Rule::new("size(self.metadata.name) <= 58 || (has(self.spec.dkim) && ((has(self.spec.dkim.keys) && size(self.spec.dkim.keys) > 0) || (has(self.spec.dkim.generate) && !self.spec.dkim.generate)))")
        .message("metadata.name: at most 58 characters when the DkimKey <name>-dkim is generated (or name spec.dkim.keys)")
)]
#[serde(rename_all = "camelCase")]
pub struct SendingDomainSpec {
    /// The domain, lower case, without a trailing dot (e.g. `mail.example.com`).
    #[schemars(regex(pattern = DOMAIN_PATTERN), length(max = MAX_DOMAIN))]
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
    #[schemars(regex(pattern = DOMAIN_PATTERN), length(max = MAX_DOMAIN))]
    pub return_path: Option<String>,
    /// What adds a recipient of this domain's mail to the tenant's suppression list by itself:
    /// `bounce` (a hard bounce naming a bad address, `5.1.x` or `5.2.1`) and `complaint` (an ARF
    /// feedback report); `[]`: neither (entries added by hand always apply). Absent: both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2), extend("items" = {"type": "string", "enum": ["bounce", "complaint"]}, "x-kubernetes-list-type" = "set"))]
    pub suppressed_reasons: Option<Vec<String>>,
}

/// A RelayPool by name and namespace.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PoolRef {
    /// RelayPool name.
    #[schemars(length(min = 1, max = MAX_OBJECT_NAME))]
    pub name: String,
    /// RelayPool namespace (RelayPools usually live in the platform's namespace).
    #[schemars(length(min = 1, max = 63))]
    pub namespace: String,
}

/// DKIM settings of a domain.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DomainDkim {
    /// DkimKeys (in this namespace, for this domain) that sign. Empty with `generate: true`
    /// means the operator creates one DkimKey named `<SendingDomain name>-dkim`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_DKIM_KEYS), inner(length(min = 1, max = MAX_LABELLED_NAME)))]
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
    #[schemars(regex(pattern = DNS_NAME_PATTERN), length(max = MAX_DOMAIN))]
    pub include: Option<String>,
    /// Egress addresses of the pool (CIDR) to authorize when there is no `include`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_SPF_EGRESS), inner(regex(pattern = CIDR_PATTERN), length(max = MAX_CIDR)))]
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
    #[schemars(regex(pattern = r"^mailto:[^\s;,!]+$"), length(max = MAX_URI))]
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
    /// The ownership challenge: the TXT record that proves this namespace controls the domain,
    /// and when it was first seen (kept published, it is re-checked with the other records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ownership: Option<DomainOwnership>,
    /// What the latest DMARC aggregate reports (uploaded or mailed to the pool's relays) say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dmarc_reports: Option<DmarcReportSummary>,
    /// `Ready`, `DomainConflict`, ...
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

/// The ownership challenge of one claim.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct DomainOwnership {
    /// Where to publish: `_cascade-challenge.<domain>.`
    pub name: String,
    /// The exact TXT value to publish: `cascade-verification=<token of this claim>`.
    pub value: String,
    /// RFC 3339 UTC time the record was first seen (absent until then, and again once a
    /// check finds it gone); the earliest verification of a domain wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_at: Option<String>,
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
