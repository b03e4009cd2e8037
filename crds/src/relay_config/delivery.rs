//! How mail leaves the relay: the route, outbound TLS, the smarthost, retries, client timeouts,
//! and the spool it is kept in until then.

use super::defaults::*;
use crate::units::HumanDuration;
use serde::{Deserialize, Serialize};

/// How mail leaves the relay.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Delivery {
    /// `mx` (look up each recipient domain), `smarthost` (everything to one host) or `capture`
    /// (write each message as an `.eml` file to `captureDir`; for `cascade-relay dev`).
    #[serde(default)]
    pub mode: DeliveryMode,
    /// Destination TCP port for MX delivery (25 in production; tests point it elsewhere).
    #[serde(default = "default_mx_port")]
    pub mx_port: u16,
    /// DNS servers (`IP:PORT`) for MX and address lookups; empty means the system's resolv.conf.
    #[serde(default)]
    pub nameservers: Vec<String>,
    /// The smarthost, required when `mode` is `smarthost`.
    #[serde(default)]
    pub smarthost: Option<Smarthost>,
    /// Directory for `capture` mode.
    #[serde(default)]
    pub capture_dir: Option<String>,
    /// Outbound TLS for MX delivery: `opportunistic` (STARTTLS whenever offered) or `required`.
    #[serde(default)]
    pub tls: OutboundTls,
    /// Parallel outbound deliveries.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Parallel deliveries of one tenant's mail: a tenant whose mail is slow to deliver (a
    /// tarpit MX) cannot hold the slots every other tenant needs.
    #[serde(default = "default_concurrency_per_tenant")]
    pub concurrency_per_tenant: usize,
    /// Parallel MX deliveries to one recipient domain (Postfix's
    /// `default_destination_concurrency_limit`): one slow destination cannot hold every slot.
    #[serde(default = "default_concurrency_per_destination")]
    pub concurrency_per_destination: usize,
    /// Retry schedule for temporary failures.
    #[serde(default)]
    pub retry: Retry,
    /// Timeouts of the outbound SMTP client.
    #[serde(default)]
    pub timeouts: ClientTimeouts,
    /// Networks (CIDR) MX delivery never connects to, on top of the built-in list (loopback,
    /// RFC 1918, link-local, CGNAT, multicast, unspecified, reserved, and their IPv4-mapped
    /// forms): the cluster's pod and service ranges when they are not private. A recipient whose
    /// MX resolves only there fails permanently with "destination address not allowed".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub denied_destination_cidrs: Vec<String>,
    /// Networks (CIDR) MX delivery may connect to even when denied above or built in (an
    /// internal mail hub, or loopback in tests). The smarthost is always allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_destination_cidrs: Vec<String>,
}

/// Delivery route.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum DeliveryMode {
    #[default]
    Mx,
    Smarthost,
    Capture,
}

/// Outbound TLS policy.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub enum OutboundTls {
    /// Use STARTTLS when the receiver offers it; certificates are not verified (RFC 7435).
    #[default]
    Opportunistic,
    /// Refuse to deliver without TLS; certificates are verified against the web PKI or `caFile`.
    Required,
}

/// A fixed next hop.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Smarthost {
    /// `host:port`.
    pub address: String,
    /// `opportunistic` or `required` (verified) TLS.
    #[serde(default)]
    pub tls: OutboundTls,
    /// PEM CA bundle to verify the smarthost with instead of the built-in web PKI roots.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// AUTH username.
    #[serde(default)]
    pub username: Option<String>,
    /// File holding the AUTH password (never inline).
    #[serde(default)]
    pub password_file: Option<String>,
}

/// Exponential backoff with jitter for temporary failures.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Retry {
    /// First retry delay.
    #[serde(default = "default_retry_initial")]
    pub initial: HumanDuration,
    /// Upper bound of one delay.
    #[serde(default = "default_retry_max_delay")]
    pub max_delay: HumanDuration,
    /// After this age a still-deferred recipient fails permanently and is bounced.
    #[serde(default = "default_max_age")]
    pub max_age: HumanDuration,
}

/// Outbound SMTP client timeouts (RFC 5321 section 4.5.3.2 gives the classic values).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClientTimeouts {
    /// TCP connect.
    #[serde(default = "default_connect_timeout")]
    pub connect: HumanDuration,
    /// Greeting and each command's reply.
    #[serde(default = "default_command_timeout")]
    pub command: HumanDuration,
    /// The reply after the final dot of DATA.
    #[serde(default = "default_data_end_timeout")]
    pub data_end: HumanDuration,
    /// How long an idle connection is kept for reuse.
    #[serde(default = "default_idle_timeout")]
    pub idle: HumanDuration,
}

/// The encrypted queue.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Spool {
    /// Directory for queued messages (created if missing).
    pub dir: String,
    /// Key file: one key per line, `<key-id> <base64 of 32 bytes>`; the first line encrypts new
    /// messages, every line can decrypt (so keys rotate by adding a line on top).
    pub key_file: String,
    /// How long the final state of a finished message is kept for `GET /v1/messages/{id}`.
    #[serde(default = "default_status_retention")]
    pub status_retention: HumanDuration,
}

fn default_status_retention() -> HumanDuration {
    HumanDuration::days(7)
}

impl Default for Delivery {
    fn default() -> Self {
        Self {
            mode: DeliveryMode::Mx,
            mx_port: default_mx_port(),
            nameservers: vec![],
            smarthost: None,
            capture_dir: None,
            tls: OutboundTls::Opportunistic,
            concurrency: default_concurrency(),
            concurrency_per_tenant: default_concurrency_per_tenant(),
            concurrency_per_destination: default_concurrency_per_destination(),
            retry: Retry::default(),
            timeouts: ClientTimeouts::default(),
            denied_destination_cidrs: vec![],
            allowed_destination_cidrs: vec![],
        }
    }
}

impl Default for Retry {
    fn default() -> Self {
        Self { initial: default_retry_initial(), max_delay: default_retry_max_delay(), max_age: default_max_age() }
    }
}

impl Default for ClientTimeouts {
    fn default() -> Self {
        Self { connect: default_connect_timeout(), command: default_command_timeout(), data_end: default_data_end_timeout(), idle: default_idle_timeout() }
    }
}
