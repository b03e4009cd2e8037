use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One shard of a tenant's suppression list, shared by every relay of a pool: written by the
/// operator only, in the pool's namespace, read by the pool's relays (see
/// `cascade_core::suppression`). Its contents are sealed under the pool's spool key: addresses
/// are never stored in the clear. Not for people to write.
#[derive(CustomResource, JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "cascade-mail.com",
    version = "v1alpha1",
    kind = "SuppressionShard",
    doc = "A sealed shard of a tenant's suppression list, written by the operator for a RelayPool's relays.",
    namespaced,
    category = "cascade",
    printcolumn = r#"{"name":"Pool","type":"string","jsonPath":".spec.pool"}"#,
    printcolumn = r#"{"name":"Tenant","type":"string","jsonPath":".spec.tenant"}"#,
    printcolumn = r#"{"name":"Shard","type":"integer","jsonPath":".spec.index"}"#,
    printcolumn = r#"{"name":"Entries","type":"integer","jsonPath":".spec.entries"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct SuppressionShardSpec {
    /// The RelayPool (in this namespace) whose relays read it.
    #[schemars(length(max = 63))]
    pub pool: String,
    /// The tenant (namespace) whose list this is part of.
    #[schemars(length(max = 63))]
    pub tenant: String,
    /// Which of the tenant's 16 shards.
    #[schemars(range(max = 15))]
    pub index: u8,
    /// How many entries it holds (for people; the relays count what they open).
    #[serde(default)]
    pub entries: u32,
    /// The shard document: JSON, gzip, AES-256-GCM under the pool's spool key ring, base64.
    #[schemars(length(max = 1_300_000))]
    pub sealed: String,
}
