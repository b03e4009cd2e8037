//! What the operator reports of a RelayPool: readiness, the configuration hash, the relays'
//! audit anchors, retired domains and the queue per tenant.

use crate::conditions::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Observed state of a RelayPool.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RelayPoolStatus {
    /// The generation the status was computed for.
    #[serde(default)]
    pub observed_generation: i64,
    /// Pods ready to accept mail.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Hash of the relay configuration the pods should run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_hash: Option<String>,
    /// `Ready` and friends.
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// SendingDomains deleted from this pool recently: the relays purge their queued mail. Kept
    /// for seven days (longer than the relay keeps any message).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired_domains: Vec<RetiredDomain>,
    /// Each relay's latest audit checkpoint (`GET /audit/anchor`), kept here, outside the relays'
    /// volumes: `cascade-relay audit verify --anchor SEQ:MAC` then reports a trail cut short.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audit_anchors: Vec<AuditAnchor>,
    /// Mail waiting for delivery per tenant, summed over the relays that answer (refreshed with
    /// each reconcile, about once a minute; `kubectl cascade status` shows it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queues: Vec<TenantQueue>,
}

/// One tenant's waiting mail.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TenantQueue {
    /// The tenant.
    pub namespace: String,
    /// Messages waiting on all relays.
    pub messages: u64,
    /// When the oldest of them was accepted (RFC 3339).
    pub oldest_accepted_at: String,
}

/// A relay's latest durable audit checkpoint.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AuditAnchor {
    /// The relay (its pod name).
    pub relay: String,
    /// Sequence number of the checkpoint record.
    pub seq: u64,
    /// Its mac (hex).
    pub mac: String,
    /// When it was written.
    pub time: String,
}

/// A SendingDomain deleted from a pool.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RetiredDomain {
    /// The domain name.
    pub domain: String,
    /// The namespace (tenant) whose SendingDomain was deleted.
    pub namespace: String,
    /// When the deletion was seen (RFC 3339).
    pub retired_at: String,
}
