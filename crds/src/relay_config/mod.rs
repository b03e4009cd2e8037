//! The relay configuration file: one YAML document, camelCase keys, unknown fields refused.
//!
//! Paths inside it (TLS files, DKIM keys, the spool key) are relative to the file's own directory
//! unless absolute. Secrets never appear inline: API keys carry only a hash of their secret, and
//! private keys live in the files they name.

/// Submit mail over SMTP.
pub const SCOPE_SMTP_SUBMIT: &str = "smtp:submit";
/// Upload DMARC reports over HTTP (`POST /dmarc/reports`).
pub const SCOPE_DMARC_UPLOAD: &str = "dmarc:upload";
/// Send through the HTTP API (`POST /v1/messages/raw`).
pub const SCOPE_MESSAGES_SEND: &str = "messages:send";
/// Every scope an API key may carry.
pub const SCOPE_SUPPRESSIONS_MANAGE: &str = "suppressions:manage";
pub const KNOWN_SCOPES: &[&str] = &[SCOPE_SMTP_SUBMIT, SCOPE_DMARC_UPLOAD, SCOPE_MESSAGES_SEND, SCOPE_SUPPRESSIONS_MANAGE];

/// Whether an API key id is one the relays accept: 3-128 letters, digits, `-`, `_` or `.`.
pub fn valid_key_id(id: &str) -> bool {
    (3..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

mod defaults;
mod delivery;
mod limits;
mod shards;
mod webhooks;

pub use delivery::*;
pub use limits::*;
pub use shards::*;
pub use webhooks::*;

use crate::units::{ByteSize, HumanDuration};
use defaults::*;
use serde::{Deserialize, Serialize};

/// The whole relay configuration.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RelayConfig {
    /// The configuration's generation, stamped in by the operator (the hash of the rest); the
    /// relay reports it on `GET /config` so the RelayPool is Ready only when every relay runs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_generation: Option<String>,
    /// The name this relay gives itself in greetings, `Received:` headers, EHLO and bounces.
    #[serde(default = "default_hostname")]
    pub hostname: String,
    /// Where the relay listens.
    #[serde(default)]
    pub listeners: Listeners,
    /// The server certificate and key for STARTTLS and implicit TLS.
    pub tls: TlsFiles,
    /// Tenants (a tenant is a Kubernetes namespace) and the domains each may send for.
    #[serde(default)]
    pub tenants: Vec<Tenant>,
    /// API keys: SMTP AUTH usernames and the hashes of their secrets.
    #[serde(default)]
    pub api_keys: Vec<ApiKey>,
    /// More tenants and API keys, in shard files (the operator writes one per tenant).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<ShardRef>,
    /// How accepted mail leaves the relay.
    #[serde(default)]
    pub delivery: Delivery,
    /// The encrypted durable queue.
    pub spool: Spool,
    /// Protocol limits and timeouts.
    #[serde(default)]
    pub limits: Limits,
    /// Key ring (the spool key format) that decrypts DKIM key files whose name ends in `.sealed`
    /// (AES-256-GCM, each bound to its file name). The operator seals the DKIM keys of the bundle
    /// it renders, and mounts this key from a separate Secret the relay cannot read through the API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealing_key_file: Option<String>,
    /// Domains deleted from a tenant. Queued mail of that tenant from these domains is purged:
    /// neither delivered nor bounced. A domain the tenant serves again is not purged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired_domains: Vec<RetiredDomain>,
    /// Mail submitted to this address (as its only recipient) is taken as DMARC reports (aggregate
    /// attachments or failure reports) about the sender's tenant's domains, not delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dmarc_report_address: Option<String>,
    /// Mail submitted to this address (as its only recipient) is taken as an ARF feedback report
    /// (RFC 5965) about one of the sender's tenant's messages, as `POST /v1/feedback` takes it
    /// (the key needs `suppressions:manage`), not delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feedback_address: Option<String>,
    /// The tamper-evident audit trail (changes need a restart).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<AuditConfig>,
    /// Where queued mail goes when this relay stops (scale-down, rolling update, drain): its
    /// peers' admin listeners.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handover: Option<Handover>,
    /// Mutual TLS on the admin listener and for handovers, within the pool's admin authority.
    /// Without it the admin listener speaks plaintext, which only a loopback address may.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_tls: Option<AdminTls>,
    /// How delivery events reach tenants' webhook endpoints.
    #[serde(default)]
    pub webhooks: WebhookSettings,
    /// Suppression lists shared by the pool's relays through the Kubernetes API; absent: each
    /// relay keeps its own (`dev`, a single relay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suppressions: Option<SharedSuppressions>,
}

/// Sharing suppression lists (see `cascade_core::suppression`): the relay logs its own changes
/// for the operator (`GET /suppressions/changes` on the admin listener) and, running with
/// `--watch-secret`, watches the `SuppressionShard` objects of its pool in that Secret's
/// namespace.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SharedSuppressions {
    /// The RelayPool: its shards carry the label `cascade-mail.com/pool=<pool>` and are sealed
    /// for it under the spool key ring.
    pub pool: String,
}

/// The admin channel's certificates, all issued by the pool's own authority (the operator's).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AdminTls {
    /// This relay's certificate (server on the admin listener, client to its peers) and key.
    pub cert_file: String,
    pub key_file: String,
    /// The authority's certificate: every client certificate and every peer is verified by it.
    pub ca_file: String,
    /// The name every relay certificate of the pool carries: `/handover` is accepted only from a
    /// client certificate with it, and handovers verify the peer under it.
    pub relay_name: String,
    /// Whether `GET /metrics` needs a client certificate of the authority (Prometheus scrapes
    /// over HTTPS either way). Every other admin endpoint needs one.
    #[serde(default)]
    pub metrics_client_cert: ClientCertificate,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub enum ClientCertificate {
    #[default]
    Optional,
    Required,
}

impl ClientCertificate {
    pub fn is_optional(&self) -> bool {
        *self == Self::Optional
    }
}

/// Handing queued mail to peer relays of the same pool (they share the spool key, which
/// authenticates every transferred file).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Handover {
    /// Peer admin listeners as `host:port`; a name may resolve to many relays (the pool's
    /// headless Service). This relay recognizes and skips itself.
    pub peers: Vec<String>,
    /// How long the handover may take at shutdown, after the sessions and deliveries finished;
    /// what is left stays in the spool.
    #[serde(default = "default_handover_timeout")]
    pub timeout: HumanDuration,
}

fn default_handover_timeout() -> HumanDuration {
    HumanDuration::secs(60)
}

/// Where the audit trail goes and how long it stays.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AuditConfig {
    /// Directory of the `audit-*.jsonl` files (created if missing).
    pub dir: String,
    /// File with the HMAC key: base64 of at least 32 random bytes.
    pub key_file: String,
    /// Days a rotated file is kept.
    #[serde(default = "default_retain_days")]
    pub retain_days: u32,
    /// A file rotates at this size (and at midnight UTC).
    #[serde(default = "default_rotate_size")]
    pub rotate_size: ByteSize,
    /// An `audit.checkpoint` record (fsynced; its sequence and mac are the anchor published on
    /// `GET /audit/anchor`) after this many records ...
    #[serde(default = "default_checkpoint_every")]
    pub checkpoint_every: u64,
    /// ... or this long after the last one, whichever comes first (only when records were written).
    #[serde(default = "default_checkpoint_interval")]
    pub checkpoint_interval: HumanDuration,
    /// How often the relay checks the records appended since its last look (chain, macs, the
    /// latest checkpoint present, files not cut short); a break sets
    /// `cascade_relay_audit_chain_breaks` and logs `file:line: what`.
    #[serde(default = "default_verify_interval")]
    pub verify_interval: HumanDuration,
}

impl AuditConfig {
    /// A trail in `dir` under the key in `key_file`, everything else at its default.
    pub fn at(dir: impl Into<String>, key_file: impl Into<String>) -> Self {
        Self {
            dir: dir.into(),
            key_file: key_file.into(),
            retain_days: default_retain_days(),
            rotate_size: default_rotate_size(),
            checkpoint_every: default_checkpoint_every(),
            checkpoint_interval: default_checkpoint_interval(),
            verify_interval: default_verify_interval(),
        }
    }
}

fn default_checkpoint_every() -> u64 {
    100
}

fn default_checkpoint_interval() -> HumanDuration {
    HumanDuration::secs(10)
}

fn default_verify_interval() -> HumanDuration {
    HumanDuration::secs(60)
}

fn default_retain_days() -> u32 {
    90
}

fn default_rotate_size() -> ByteSize {
    ByteSize(64 * 1024 * 1024)
}

/// A domain deleted from a tenant.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RetiredDomain {
    pub name: String,
    pub tenant: String,
}

/// Listener addresses. An empty list disables that listener.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Listeners {
    /// Submission with STARTTLS (RFC 6409), usually port 587.
    #[serde(default = "default_submission")]
    pub submission: Vec<String>,
    /// Submission over implicit TLS (RFC 8314), usually port 465.
    #[serde(default = "default_submissions")]
    pub submissions: Vec<String>,
    /// The tenant-facing HTTP listener: `POST /dmarc/reports` (with an API key), `/healthz` and
    /// `/readyz`; empty string disables it.
    #[serde(default = "default_http")]
    pub http: String,
    /// The platform HTTP listener, to keep away from tenants: `/metrics`, `/dmarc/summary`,
    /// `/healthz` and `/readyz`; empty string disables it.
    #[serde(default = "default_admin")]
    pub admin: String,
    /// Client networks (CIDR) allowed to connect to the SMTP listeners; empty means any. Others
    /// get `554 5.7.1` and are disconnected before any command.
    #[serde(default)]
    pub allowed_client_cidrs: Vec<String>,
    /// Load balancers (CIDR) that put a PROXY protocol v2 header in front of each connection to
    /// the SMTP listeners and the tenant HTTP listener. A connection from these addresses must
    /// start with one (else it is closed); its source address is then the client for limits,
    /// allowed networks, logs and audit. Connections from anywhere else are served as direct
    /// clients and no header is read from them, so nobody else can claim another address.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_proxy_cidrs: Vec<String>,
}

/// PEM files of the server certificate chain and its private key; both are re-read when they change.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TlsFiles {
    /// PEM certificate chain, leaf first.
    pub cert_file: String,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: String,
}

/// A tenant: the namespace that owns some sending domains and API keys.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Tenant {
    /// Tenant name (the Kubernetes namespace).
    pub name: String,
    /// Domains this tenant may send for; a domain belongs to one tenant only.
    #[serde(default)]
    pub domains: Vec<SendingDomain>,
    /// Where this tenant's delivery events go.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub webhooks: Vec<Webhook>,
    /// What adds an address to the tenant's suppression list by itself: `bounce` (a hard bounce
    /// naming a bad address) and `complaint`; entries added by hand always apply.
    #[serde(default = "default_suppressed_reasons")]
    pub suppressed_reasons: Vec<String>,
    /// Lockdown: the tenant's queued mail is held (kept in the spool, neither delivered nor
    /// expired) until this is false again. Its API keys are refused separately (`revoked`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub held: bool,
}

pub fn default_suppressed_reasons() -> Vec<String> {
    vec!["bounce".into(), "complaint".into()]
}

/// A domain a tenant sends for, with its DKIM keys.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SendingDomain {
    /// The domain, lower case, without a trailing dot.
    pub name: String,
    /// Active DKIM keys: every message is signed with each of them (e.g. RSA and Ed25519 together).
    #[serde(default)]
    pub dkim: Vec<DkimKeyRef>,
    /// When set, mail from this domain is refused with `550 5.7.1` and this text (for example:
    /// its DKIM record is not verified in DNS yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refuse: Option<String>,
    /// What adds a recipient of this domain's mail to the suppression list by itself (as the
    /// tenant's `suppressedReasons`, which apply when this is absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suppressed_reasons: Option<Vec<String>>,
}

/// DKIM signature algorithm.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
pub enum DkimAlgorithm {
    /// RSA with SHA-256; keys must be 2048 bits or more.
    #[serde(rename = "rsa-sha256")]
    RsaSha256,
    /// Ed25519 with SHA-256 (RFC 8463).
    #[serde(rename = "ed25519-sha256")]
    Ed25519Sha256,
}

/// One active DKIM key of a domain.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DkimKeyRef {
    /// Selector: the record is published at `<selector>._domainkey.<domain>`.
    pub selector: String,
    /// Signature algorithm.
    #[serde(default = "default_dkim_algorithm")]
    pub algorithm: DkimAlgorithm,
    /// PKCS#8 PEM private key file.
    pub key_file: String,
}

/// An API key. Its id is the SMTP AUTH username; its secret is the password, held here only as a hash.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ApiKey {
    /// Key id (SMTP AUTH username).
    pub id: String,
    /// Owning tenant.
    pub tenant: String,
    /// `sha256:<64 hex digits>` of the secret. Secrets carry at least 256 bits of entropy, so a
    /// plain SHA-256 is a sound one-way function for them.
    pub secret_hash: String,
    /// What the key may do; `smtp:submit` allows SMTP submission.
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// Domains this key may send for, narrowing its tenant's; empty means all of the tenant's.
    #[serde(default)]
    pub allowed_domains: Vec<String>,
    /// Client networks allowed to use this key (CIDR); empty means any.
    #[serde(default)]
    pub allowed_cidrs: Vec<String>,
    /// Messages per minute this key may submit; absent means unlimited.
    #[serde(default)]
    pub messages_per_minute: Option<u32>,
    /// Recipients per minute (GCRA, bursting up to one minute's worth); none: unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipients_per_minute: Option<u32>,
    /// RFC 3339 time after which the key is refused (e.g. `2027-01-01T00:00:00Z`; any offset,
    /// compared in UTC).
    #[serde(default)]
    pub expires_at: Option<String>,
    /// A revoked key is refused at once.
    #[serde(default)]
    pub revoked: bool,
    /// Unusual-activity detection for this key.
    #[serde(default)]
    pub anomalies: KeyAnomalies,
    /// The ApiKey resource's `metadata.generation` (written by the operator). A suspension holds
    /// for the generation it happened at: editing the resource lifts it.
    #[serde(default)]
    pub generation: i64,
}

/// When a key's sending looks unlike its own past (the same type is the ApiKey's
/// `spec.anomalies`). A finding is counted, logged and audited; with `suspend` the key is also
/// refused until an admin edits the ApiKey.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KeyAnomalies {
    /// A minute with more than this many times the key's recent per-minute average (an
    /// exponentially weighted mean over about 30 minutes) is a rate anomaly...
    #[serde(default = "default_rate_factor")]
    #[cfg_attr(feature = "kube", schemars(range(min = 2)))]
    pub rate_factor: u32,
    /// ...when it is also above this many messages (so a quiet key may still send a batch).
    #[serde(default = "default_min_messages_per_minute")]
    #[cfg_attr(feature = "kube", schemars(range(min = 1)))]
    pub min_messages_per_minute: u32,
    /// Percent of failed outcomes (policy refusals and bounced recipients, against accepted
    /// messages) over the last 5 to 10 minutes that is a failure anomaly...
    #[serde(default = "default_max_failure_percent")]
    #[cfg_attr(feature = "kube", schemars(range(min = 1, max = 100)))]
    pub max_failure_percent: u32,
    /// ...once there are at least this many outcomes in that window.
    #[serde(default = "default_min_outcomes")]
    #[cfg_attr(feature = "kube", schemars(range(min = 1)))]
    pub min_outcomes: u32,
    /// Suspend the key on a finding (every relay refuses it until the ApiKey is edited).
    #[serde(default)]
    pub suspend: bool,
}

impl Default for KeyAnomalies {
    fn default() -> Self {
        Self {
            rate_factor: default_rate_factor(),
            min_messages_per_minute: default_min_messages_per_minute(),
            max_failure_percent: default_max_failure_percent(),
            min_outcomes: default_min_outcomes(),
            suspend: false,
        }
    }
}

fn default_rate_factor() -> u32 {
    10
}
fn default_min_messages_per_minute() -> u32 {
    100
}
fn default_max_failure_percent() -> u32 {
    50
}
fn default_min_outcomes() -> u32 {
    20
}

impl Default for Listeners {
    fn default() -> Self {
        Self { submission: default_submission(), submissions: default_submissions(), http: default_http(), admin: default_admin(), allowed_client_cidrs: vec![], trusted_proxy_cidrs: vec![] }
    }
}
