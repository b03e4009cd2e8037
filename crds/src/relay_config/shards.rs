//! Tenant configuration in shards: one file per tenant (in a cluster, one Secret per tenant),
//! listed by `relay.yaml` with a digest, so no file grows with the number of tenants (Kubernetes
//! caps a Secret at 1 MiB) and a relay never mixes two versions: it installs only a set whose
//! every digest matches.

use super::{ApiKey, Tenant};
use serde::{Deserialize, Serialize};

/// A shard `relay.yaml` lists.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ShardRef {
    /// The shard file (`tenant-<namespace>.yaml`): beside `relay.yaml`, or an entry of the
    /// bundle in a cluster.
    pub file: String,
    /// In a cluster, the Secret holding the file and the DKIM key files it names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// `sha256:<hex>` over the file and each key file it names (see `cascade_core::shard`).
    pub digest: String,
}

/// One shard's contents: tenants and their API keys.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Shard {
    #[serde(default)]
    pub tenants: Vec<Tenant>,
    #[serde(default)]
    pub api_keys: Vec<ApiKey>,
}

impl Shard {
    /// The key files its domains name, in order.
    pub fn key_files(&self) -> Vec<&str> {
        self.tenants.iter().flat_map(|t| &t.domains).flat_map(|d| &d.dkim).map(|k| k.key_file.as_str()).collect()
    }
}
