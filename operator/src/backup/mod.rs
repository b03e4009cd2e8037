//! Encrypted backups and verified restores (`cascade-operator backup`, `restore`, `erase
//! --tenant`). A backup is one archive ([`archive`]) holding what cannot be re-derived: the
//! master key ring, the audit key, every Cascade custom resource (specs, and the statuses that
//! carry state: DkimKey rotations, ApiKey suspensions and last use), and every Secret the
//! operator wrote (sealed DKIM keys, API-key credentials, webhook secrets, pool keys) except the
//! relay bundles, which the operator renders again. Everything is under the backup key the user
//! holds; each tenant's objects are sealed again under that tenant's data key, which lives in the
//! cluster ([`tenant_keys`]) and in the key escrow file, never in the archive. Destroying a
//! tenant's data key (`erase --tenant`) makes every older archive's copy of that tenant
//! unreadable: crypto-shredding.
//!
//! [`collect`] reads the cluster, [`restore`] writes it back: everything is decrypted and
//! checked before the first write, so a wrong key, a tampered file or an occupied cluster change
//! nothing.

pub mod archive;
pub mod cli;
pub mod collect;
pub mod restore;
pub mod tenant_keys;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub use archive::{ArchiveError, KeySource};

/// One object as it was read, cleaned of what the API server assigns (uid, resourceVersion,
/// managedFields, owner references); `owner` names its controller for re-linking.
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Item {
    pub kind: String,
    pub object: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Owner {
    pub kind: String,
    pub name: String,
}

impl Item {
    pub fn namespace(&self) -> &str {
        self.object["metadata"]["namespace"].as_str().unwrap_or_default()
    }
    pub fn name(&self) -> &str {
        self.object["metadata"]["name"].as_str().unwrap_or_default()
    }
}

/// What an archive holds, readable once it is opened: printed by `backup` and `restore`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Manifest {
    /// `backup` or `escrow`.
    pub kind: String,
    /// RFC 3339 UTC.
    pub created: String,
    pub operator_namespace: String,
    /// Objects per kind, outside tenant sections.
    pub platform: BTreeMap<String, usize>,
    /// Objects per kind, per tenant namespace.
    pub tenants: BTreeMap<String, BTreeMap<String, usize>>,
}

impl Manifest {
    pub fn count(items: &[Item]) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for i in items {
            *counts.entry(i.kind.clone()).or_default() += 1;
        }
        counts
    }

    /// One line per section, for people.
    pub fn summary(&self) -> String {
        let line = |counts: &BTreeMap<String, usize>| counts.iter().map(|(k, n)| format!("{n} {k}")).collect::<Vec<_>>().join(", ");
        let mut out = format!("{} of {} (format {}), operator namespace {}\n  platform: {}\n", self.kind, self.created, archive::FORMAT, self.operator_namespace, line(&self.platform));
        for (ns, counts) in &self.tenants {
            out.push_str(&format!("  tenant {ns}: {}\n", line(counts)));
        }
        out
    }
}

/// Why a backup, restore or erasure did not happen (or stopped), naming the operation.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error("{what}: {source}")]
    Kube { what: String, source: kube::Error },
    #[error("{0}")]
    Refused(String),
}

pub(crate) fn kube(what: impl Into<String>) -> impl FnOnce(kube::Error) -> BackupError {
    let what = what.into();
    move |source| BackupError::Kube { what, source }
}

/// The kinds a backup holds, in the order a restore creates them (owners before what they own;
/// SendingDomains oldest first, so claims keep their precedence).
pub const KINDS: [&str; 7] = ["RelayPool", "SendingDomain", "DkimKey", "ApiKey", "WebhookEndpoint", "SuppressionShard", "Secret"];

/// The kinds whose status carries state a restore must bring back.
pub const STATEFUL: [&str; 2] = ["DkimKey", "ApiKey"];

/// The master key ring as the cluster holds it (a backup never creates one).
async fn master(secrets: &crate::secrets::SecretStore, ns: &str) -> Result<cascade_core::seal::KeyRing, BackupError> {
    let name = crate::master_key::SECRET_NAME;
    let data = secrets.get(ns, name).await.map_err(kube(format!("reading Secret {ns}/{name}")))?;
    let text =
        data.and_then(|d| d.get(crate::master_key::FIELD).cloned()).ok_or_else(|| BackupError::Refused(format!("Secret {ns}/{name} does not exist: is the operator installed in namespace {ns}?")))?;
    cascade_core::seal::KeyRing::parse(&String::from_utf8_lossy(&text)).map_err(|e| BackupError::Refused(format!("Secret {ns}/{name}: {e}")))
}

/// A backup: the archive, the key escrow (every live tenant data key under the same backup
/// key; keep only the latest) and the manifest.
pub struct Written {
    pub archive: Vec<u8>,
    pub escrow: Vec<u8>,
    pub manifest: Manifest,
}

pub async fn backup(client: &kube::Client, operator_ns: &str, source: &KeySource, now: u64) -> Result<Written, BackupError> {
    let secrets = crate::secrets::SecretStore::new(client.clone());
    let ring = master(&secrets, operator_ns).await?;
    let (platform, tenants) = collect::collect(client, operator_ns).await?;
    let names: Vec<&str> = tenants.keys().map(String::as_str).collect();
    let keys = tenant_keys::ensure(&secrets, operator_ns, &ring, &names).await?;
    let created = cascade_core::time::rfc3339_utc(now);
    let manifest = Manifest {
        kind: "backup".into(),
        created: created.clone(),
        operator_namespace: operator_ns.into(),
        platform: Manifest::count(&platform),
        tenants: tenants.iter().map(|(ns, items)| (ns.clone(), Manifest::count(items))).collect(),
    };
    let header = archive::new_header(source)?;
    let mut payload = archive::Payload { manifest: manifest.clone(), platform, ..Default::default() };
    for (ns, items) in &tenants {
        payload.tenants.insert(ns.clone(), archive::seal_tenant(&header, ns, &keys[ns], items)?);
    }
    let archive = archive::write(&header, source, &payload)?;
    let all_keys = tenant_keys::load(&secrets, operator_ns, &ring).await?;
    let escrow_manifest =
        Manifest { kind: "escrow".into(), created, operator_namespace: operator_ns.into(), tenants: all_keys.keys().map(|t| (t.clone(), Default::default())).collect(), ..Default::default() };
    let escrow = archive::Payload { manifest: escrow_manifest, tenant_keys: all_keys, ..Default::default() };
    let escrow = archive::write(&archive::new_header(source)?, source, &escrow)?;
    Ok(Written { archive, escrow, manifest })
}

/// Destroys tenant `tenant`'s data key: every backup taken before no longer yields its data.
/// True when there was a key.
pub async fn erase_tenant(client: &kube::Client, operator_ns: &str, tenant: &str) -> Result<bool, BackupError> {
    let secrets = crate::secrets::SecretStore::new(client.clone());
    let ring = master(&secrets, operator_ns).await?;
    tenant_keys::destroy(&secrets, operator_ns, &ring, tenant).await
}
