use crate::conditions::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A request to erase one address from this tenant's data (GDPR Art. 17): the operator removes
/// it from every relay's queued mail (purged or the recipient failed and masked, no DSN), message
/// statuses (masked), the tenant's suppression list and its pending webhook events (masked),
/// records the erasure (masked) in the audit trails, and — `shredBackups` — destroys the
/// tenant's backup data key so no earlier backup yields the address. A namespace's requests run
/// one at a time, oldest first. Done once; delete the object afterwards (it holds the address).
#[derive(CustomResource, JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "cascade-mail.com",
    version = "v1alpha1",
    kind = "ErasureRequest",
    doc = "A request to erase one address from a tenant's data, backups included.",
    namespaced,
    status = "ErasureRequestStatus",
    category = "cascade",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Completed","type":"string","jsonPath":".status.completedAt"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ErasureRequestSpec {
    /// The address to erase (case does not matter).
    #[schemars(length(min = 3, max = 320), regex(pattern = r"^[^@\s]+@[^@\s]+$"))]
    pub address: String,
    /// Also destroy the tenant's backup data key (default): every backup taken before can no
    /// longer yield any of this tenant's data — take a new backup afterwards.
    #[serde(default = "yes")]
    pub shred_backups: bool,
}

fn yes() -> bool {
    true
}

/// What the erasure did.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ErasureRequestStatus {
    /// `Waiting` (an older request of this namespace runs first), `Pending` (some relay has not
    /// answered yet; retried) or `Done`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// RFC 3339 UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
    /// Relays that carried it out.
    #[serde(default)]
    pub relays: u32,
    /// The admin addresses of the relays that answered (a retry asks only the others).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub erased_on: Vec<String>,
    #[serde(default)]
    pub queued_messages_purged: u64,
    #[serde(default)]
    pub queued_recipients_erased: u64,
    #[serde(default)]
    pub statuses_masked: u64,
    #[serde(default)]
    pub suppressions_removed: u64,
    /// Webhook events waiting for the tenant's endpoints, masked.
    #[serde(default)]
    pub events_masked: u64,
    /// The tenant's backup data key was destroyed.
    #[serde(default)]
    pub backups_shredded: bool,
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    #[serde(default)]
    pub conditions: Vec<Condition>,
}
