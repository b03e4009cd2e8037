//! Delivery events sent to tenants' webhook endpoints (Standard Webhooks 1.0).

use crate::units::HumanDuration;
use serde::{Deserialize, Serialize};

/// The event types a relay emits.
pub const EVENT_TYPES: &[&str] = &["message.accepted", "message.delivered", "message.deferred", "message.bounced", "message.suppressed", "message.complained", "key.suspended"];

/// One endpoint of a tenant (a `WebhookEndpoint`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Webhook {
    /// Its name, unique within the tenant (the WebhookEndpoint's name).
    pub name: String,
    /// `https://host[:port]/path`; `http://` only to a loopback address, and only where
    /// `webhooks.allowPlainLoopback` is set (`cascade-relay dev`).
    pub url: String,
    /// The event types sent there; empty: all of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<String>,
    /// A file holding the signing secrets (`whsec_<base64>`), one per line: every request is
    /// signed with each (several during a rotation).
    pub secret_file: String,
    /// Send the events due at once in one request (a JSON array of payloads, each with its
    /// `id`), up to [`MAX_BATCH`]; off: one event per request.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub batch: bool,
}

/// The most events one batched request carries.
pub const MAX_BATCH: usize = 100;

/// How events are sent, for every tenant.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WebhookSettings {
    /// Extra trust anchors (PEM) for endpoints' certificates, besides the public roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// Allow `http://` endpoints on loopback (development only).
    #[serde(default)]
    pub allow_plain_loopback: bool,
    /// How long one request may take.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
}

fn default_timeout() -> HumanDuration {
    HumanDuration::secs(15)
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self { ca_file: None, allow_plain_loopback: false, timeout: default_timeout() }
    }
}

/// What a relay knows of one endpoint's deliveries (its admin `GET /webhooks` lists them; the
/// operator folds them into the WebhookEndpoint's status). Times are Unix seconds.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EndpointReport {
    pub tenant: String,
    pub name: String,
    pub last_success: Option<u64>,
    pub last_failure: Option<u64>,
    pub last_error: Option<String>,
    /// Set when the endpoint answered `410 Gone`: nothing more is sent to that URL.
    pub disabled_at: Option<u64>,
    /// The URL it was disabled at (a new URL enables the endpoint again).
    #[serde(default)]
    pub disabled_url: Option<String>,
}
