use super::RelayPoolStatus;
use crate::relay_config::OutboundTls;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A pool of relay pods: listeners, delivery route, spool storage and limits, and which tenant
/// namespaces it serves. Platform admins own RelayPools; tenants reference them from their
/// SendingDomains.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "cascade-mail.com",
    version = "v1alpha1",
    kind = "RelayPool",
    doc = "A pool of relay pods serving the tenant namespaces it selects.",
    namespaced,
    status = "RelayPoolStatus",
    shortname = "rp",
    category = "cascade",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Message","type":"string","priority":1,"jsonPath":".status.conditions[?(@.type==\"Ready\")].message"}"#,
    printcolumn = r#"{"name":"Replicas","type":"integer","jsonPath":".spec.replicas"}"#,
    printcolumn = r#"{"name":"Available","type":"integer","jsonPath":".status.readyReplicas"}"#,
    printcolumn = r#"{"name":"Delivery","type":"string","jsonPath":".spec.delivery.mode"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct RelayPoolSpec {
    /// Number of relay pods (ignored while `autoscaling` is set).
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0, max = 100))]
    pub replicas: i32,
    /// Scale the pool with a HorizontalPodAutoscaler between these bounds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<Autoscaling>,
    /// The relay pods' resources and placement.
    #[serde(default)]
    pub pod: super::PodSettings,
    /// Host name the relays use in greetings, `Received:` headers and bounces.
    #[serde(default = "default_hostname")]
    pub hostname: String,
    /// SMTP and HTTP ports.
    #[serde(default)]
    pub listeners: PoolListeners,
    /// How the client-facing Service exposes the SMTP ports.
    #[serde(default)]
    pub service: PoolService,
    /// Server certificate for STARTTLS and implicit TLS.
    #[serde(default)]
    pub tls: PoolTls,
    /// How mail leaves the pool.
    #[serde(default)]
    pub delivery: PoolDelivery,
    /// The persistent volume each pod's encrypted spool lives on.
    #[serde(default)]
    pub spool: PoolSpool,
    /// Protocol limits applied by every pod.
    #[serde(default)]
    pub limits: PoolLimits,
    /// Which namespaces' SendingDomains and ApiKeys this pool serves (empty: none).
    #[serde(default)]
    pub tenants: NamespaceSelector,
    /// Domains the platform team assigns to tenants, by namespace (`shop: [shop.example]`): a
    /// SendingDomain of that namespace for a listed domain, or a subdomain of one, owns it
    /// without the DNS ownership challenge (and before any claim that passed it). With
    /// `externalDns`, records are published only for domains listed here for their namespace.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 1000))]
    pub assigned_domains: BTreeMap<String, Vec<String>>,
    /// Tenants in lockdown, by namespace, with the reason and time (`cascade-operator lockdown
    /// NS` writes it, `unlock` removes it): every API key of the tenant is refused and its queued
    /// mail is held on every relay (kept, not delivered, not expired) until the entry goes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 1000, "additionalProperties" = {"type": "string", "maxLength": 256}))]
    pub lockdown: BTreeMap<String, String>,
    /// `enforce` (default): the relays send for a domain only once its DKIM record is verified in
    /// DNS (until then its mail is refused with `550 5.7.1` and the reason), and a domain is
    /// `Ready` only when SPF, DKIM and DMARC are verified. `warn`: failed checks show in the
    /// conditions but change nothing.
    #[serde(default)]
    pub dns_verification: DnsVerification,
    /// Also publish each served domain's records as an external-dns `DNSEndpoint`
    /// (`externaldns.k8s.io/v1alpha1`, named `<SendingDomain>-records`, in its namespace), so a
    /// cluster running external-dns publishes them. Skipped (condition `ExternalDNS`) when that
    /// CRD is not installed.
    #[serde(default)]
    pub external_dns: bool,
    /// An address on the relays that takes DMARC reports: tenants forward (submit) their
    /// aggregate and failure reports to it, and the relays turn them into metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dmarc_report_address: Option<String>,
    /// An address on the relays that takes ARF feedback reports (RFC 5965): tenants forward
    /// (submit) the complaint reports mailbox providers send them, with a key holding
    /// `suppressions:manage`, and the complained recipient gets a `message.complained` event and
    /// a suppression entry (as `POST /v1/feedback`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 254), regex(pattern = r"^[^@\s<>]{1,64}@([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"))]
    pub feedback_address: Option<String>,
    /// Client networks (CIDR) allowed to connect besides pods in the tenant namespaces. The
    /// pool's NetworkPolicy admits exactly the tenant namespaces and these networks (list
    /// `0.0.0.0/0` to admit everyone); when set, the relay also refuses any other address, so
    /// include the pod network if tenants connect from inside the cluster.
    #[serde(default)]
    pub allowed_client_cidrs: Vec<String>,
}

/// Autoscaling bounds.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("self.minReplicas <= self.maxReplicas").message("minReplicas must not exceed maxReplicas"))]
#[serde(rename_all = "camelCase")]
pub struct Autoscaling {
    /// Lower bound of pods.
    #[schemars(range(min = 1))]
    pub min_replicas: i32,
    /// Upper bound of pods.
    #[schemars(range(min = 1, max = 100))]
    pub max_replicas: i32,
    /// Average CPU utilisation (percent) the autoscaler aims for.
    #[serde(default = "default_cpu_target")]
    pub target_cpu_percent: i32,
}

/// Listener ports.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PoolListeners {
    /// STARTTLS submission port.
    #[serde(default = "default_submission_port")]
    pub submission_port: u16,
    /// Implicit-TLS submission port.
    #[serde(default = "default_submissions_port")]
    pub submissions_port: u16,
    /// Tenant-facing HTTP port (DMARC report upload, health).
    #[serde(default = "default_http_port")]
    pub http_port: u16,
    /// Platform HTTPS port (metrics, DMARC summaries for the operator, handovers, health, the
    /// kubelet's probes), mutual TLS within the pool's admin authority; tenants cannot reach it.
    #[serde(default = "default_admin_port")]
    pub admin_port: u16,
    /// Whether Prometheus needs a client certificate of the pool's admin authority to scrape
    /// `/metrics` (`optional` by default: scraped over HTTPS, the server verified with the CA in
    /// Secret `<pool>-admin-ca`). Every other admin endpoint always needs one.
    #[serde(default, skip_serializing_if = "crate::relay_config::ClientCertificate::is_optional")]
    pub metrics_client_certificate: crate::relay_config::ClientCertificate,
    /// Namespaces besides the operator's that may reach the admin port (for example where
    /// Prometheus runs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub admin_namespaces: Vec<String>,
    /// Load balancers (CIDR) that send a PROXY protocol v2 header on each SMTP and tenant HTTP
    /// connection; connections from them must carry one, and its source address is the client.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub trusted_proxy_cidrs: Vec<String>,
}

/// The client-facing Service `<pool>-relay`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[x_kube(validation = Rule::new("self.type == 'NodePort' || (!has(self.submissionNodePort) && !has(self.submissionsNodePort))").message("node ports need type NodePort"))]
#[x_kube(validation = Rule::new("self.type != 'ClusterIP' || !has(self.externalTrafficPolicy)").message("externalTrafficPolicy needs type NodePort or LoadBalancer"))]
#[serde(rename_all = "camelCase")]
pub struct PoolService {
    /// `ClusterIP` (default), `NodePort` or `LoadBalancer`.
    #[serde(default, rename = "type")]
    pub type_: ServiceType,
    /// Node port of STARTTLS submission (type NodePort; none: chosen by Kubernetes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 30000, max = 32767))]
    pub submission_node_port: Option<i32>,
    /// Node port of implicit-TLS submission (type NodePort).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 30000, max = 32767))]
    pub submissions_node_port: Option<i32>,
    /// `Local` keeps the client's source address (no SNAT to the node), so per-client limits see
    /// the real client; traffic then goes only to relays on the receiving node. `Cluster`
    /// (Kubernetes' default) when unset. The other way is a PROXY v2 load balancer
    /// (`listeners.trustedProxyCidrs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_traffic_policy: Option<TrafficPolicy>,
}

/// Where external traffic to the Service may go.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrafficPolicy {
    Cluster,
    Local,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ServiceType {
    #[default]
    ClusterIP,
    NodePort,
    LoadBalancer,
}

/// Server certificate source.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PoolTls {
    /// A `kubernetes.io/tls` Secret in the pool's namespace (e.g. from cert-manager); empty means
    /// the operator generates a self-signed certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
}

/// Delivery route.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("self.mode != 'smarthost' || has(self.smarthost)").message("smarthost is required when mode is smarthost"))]
#[serde(rename_all = "camelCase")]
pub struct PoolDelivery {
    /// `mx` (look up each recipient domain) or `smarthost`.
    #[serde(default)]
    pub mode: PoolDeliveryMode,
    /// Outbound TLS for MX delivery: `opportunistic` or `required`.
    #[serde(default)]
    pub tls: OutboundTls,
    /// The next hop for `mode: smarthost`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smarthost: Option<PoolSmarthost>,
    /// Networks (CIDR) MX delivery never connects to, besides the built-in list (loopback,
    /// RFC 1918, link-local, CGNAT, multicast, reserved and their IPv4-mapped forms). List the
    /// cluster's pod and service ranges here when they are not private addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub denied_destination_cidrs: Vec<String>,
    /// Networks (CIDR) MX delivery may connect to even when denied (an internal mail hub).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub allowed_destination_cidrs: Vec<String>,
}

/// What failed DNS checks do.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub enum DnsVerification {
    #[default]
    Enforce,
    Warn,
}

/// Delivery mode.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub enum PoolDeliveryMode {
    #[default]
    Mx,
    Smarthost,
}

/// A smarthost.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("!has(self.credentialsSecret) || (has(self.tls) && self.tls == 'required')").message("tls must be required (verified) when credentialsSecret is set"))]
#[serde(rename_all = "camelCase")]
pub struct PoolSmarthost {
    /// `host:port`.
    pub address: String,
    /// `opportunistic` or `required` (verified) TLS; `required` when `credentialsSecret` is set.
    #[serde(default)]
    pub tls: OutboundTls,
    /// Secret in the pool's namespace with keys `username` and `password` for AUTH.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<String>,
}

/// Spool volume.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PoolSpool {
    /// Size of each pod's PersistentVolumeClaim.
    #[serde(default = "default_spool_size")]
    pub size: String,
    /// StorageClass of the claims; empty means the cluster default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
    /// How often the operator rotates the pool's spool key (a new key seals, the three before it
    /// still open; e.g. `30d`, the default). The annotation `cascade-mail.com/rotate-spool-key`
    /// on the RelayPool rotates at once whenever its value changes.
    #[serde(default = "default_rotate_key_every")]
    #[schemars(length(max = 32))]
    pub rotate_key_every: String,
}

fn default_rotate_key_every() -> String {
    "30d".into()
}

/// Limits every pod applies.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PoolLimits {
    /// Largest message accepted (e.g. `25MiB`).
    #[serde(default = "default_max_message_size")]
    pub max_message_size: String,
    /// Recipients per message.
    #[serde(default = "default_max_recipients")]
    #[schemars(range(min = 1, max = 10000))]
    pub max_recipients: u32,
    /// Concurrent SMTP sessions per pod.
    #[serde(default = "default_max_sessions")]
    #[schemars(range(min = 1))]
    pub max_sessions: u32,
    /// Concurrent SMTP sessions per pod from one client address.
    #[serde(default = "default_max_sessions_per_client")]
    #[schemars(range(min = 1))]
    pub max_sessions_per_client: u32,
    /// Messages per minute per pod from all the keys of one tenant together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub tenant_messages_per_minute: Option<u32>,
    /// HTTP API requests other than sends (status reads, suppression list reads and changes,
    /// feedback reports) per minute per key and pod (default 600); over it `429`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub api_requests_per_minute: Option<u32>,
    /// Messages one tenant may have queued per pod (default 100000); above it that tenant gets
    /// `451 4.3.1` and the others are served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub tenant_queued_messages: Option<u64>,
    /// Bytes of queued mail one tenant may have per pod (e.g. `2GiB`; default 4GiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub tenant_queued_bytes: Option<String>,
    /// SendingDomains of one tenant this pool serves (the oldest first); the others get
    /// `Ready=False`, reason `QuotaExceeded`.
    #[serde(default = "default_tenant_max_domains")]
    #[schemars(range(min = 0, max = 100000))]
    pub tenant_max_domains: u32,
    /// ApiKeys of one tenant this pool serves (the oldest first); likewise `QuotaExceeded`.
    #[serde(default = "default_tenant_max_api_keys")]
    #[schemars(range(min = 0, max = 100000))]
    pub tenant_max_api_keys: u32,
}

fn default_tenant_max_domains() -> u32 {
    100
}
fn default_tenant_max_api_keys() -> u32 {
    1000
}

/// Namespaces selected by labels, by name, or both (a namespace matching either is selected).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceSelector {
    /// Namespaces carrying all of these labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    /// Namespaces with these names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_names: Vec<String>,
}

impl NamespaceSelector {
    /// Whether a namespace with this name and these labels is selected.
    pub fn selects(&self, name: &str, labels: &BTreeMap<String, String>) -> bool {
        self.match_names.iter().any(|n| n == name) || (!self.match_labels.is_empty() && self.match_labels.iter().all(|(k, v)| labels.get(k) == Some(v)))
    }
}

fn default_replicas() -> i32 {
    2
}
fn default_hostname() -> String {
    "localhost".into()
}
fn default_cpu_target() -> i32 {
    70
}
fn default_submission_port() -> u16 {
    587
}
fn default_submissions_port() -> u16 {
    465
}
fn default_http_port() -> u16 {
    9587
}
fn default_admin_port() -> u16 {
    9588
}
fn default_spool_size() -> String {
    "10Gi".into()
}
fn default_max_message_size() -> String {
    "25MiB".into()
}
fn default_max_recipients() -> u32 {
    100
}
fn default_max_sessions() -> u32 {
    2000
}
fn default_max_sessions_per_client() -> u32 {
    50
}

impl Default for PoolListeners {
    fn default() -> Self {
        Self {
            submission_port: default_submission_port(),
            submissions_port: default_submissions_port(),
            http_port: default_http_port(),
            admin_port: default_admin_port(),
            admin_namespaces: Vec::new(),
            metrics_client_certificate: Default::default(),
            trusted_proxy_cidrs: Vec::new(),
        }
    }
}
impl Default for PoolDelivery {
    fn default() -> Self {
        Self { mode: PoolDeliveryMode::Mx, tls: OutboundTls::Opportunistic, smarthost: None, denied_destination_cidrs: Vec::new(), allowed_destination_cidrs: Vec::new() }
    }
}
impl Default for PoolSpool {
    fn default() -> Self {
        Self { size: default_spool_size(), storage_class: None, rotate_key_every: default_rotate_key_every() }
    }
}
impl Default for PoolLimits {
    fn default() -> Self {
        Self {
            max_message_size: default_max_message_size(),
            max_recipients: default_max_recipients(),
            max_sessions: default_max_sessions(),
            max_sessions_per_client: default_max_sessions_per_client(),
            tenant_messages_per_minute: None,
            api_requests_per_minute: None,
            tenant_queued_messages: None,
            tenant_queued_bytes: None,
            tenant_max_domains: default_tenant_max_domains(),
            tenant_max_api_keys: default_tenant_max_api_keys(),
        }
    }
}
