//! Tenant data keys: one per tenant namespace, in the Secret `cascade-backup-tenant-keys` of the
//! operator's namespace, each entry sealed under the master key ring bound to its namespace.
//! Backups never contain this Secret: a tenant's sections open only with the key held here (or
//! in the latest key escrow file), so destroying an entry shreds every older backup of it.

use super::archive::{new_tenant_key, TenantKey};
use super::{kube, BackupError};
use crate::secrets::SecretStore;
use cascade_core::seal::KeyRing;
use std::collections::BTreeMap;

pub const SECRET_NAME: &str = "cascade-backup-tenant-keys";

fn context(tenant: &str) -> String {
    format!("backup-tenant-key/{tenant}")
}

/// The live tenant keys (none when the Secret does not exist yet). An entry that does not open
/// under this master key ring is reported, not skipped.
pub async fn load(secrets: &SecretStore, ns: &str, master: &KeyRing) -> Result<BTreeMap<String, TenantKey>, BackupError> {
    let data = secrets.get(ns, SECRET_NAME).await.map_err(kube(format!("reading Secret {ns}/{SECRET_NAME}")))?.unwrap_or_default();
    let mut keys = BTreeMap::new();
    for (tenant, sealed) in data {
        let refuse = || BackupError::Refused(format!("Secret {ns}/{SECRET_NAME}: the key of tenant {tenant} does not open with the master key"));
        let plain = cascade_core::seal::open_blob(master, &context(&tenant), &sealed).map_err(|_| refuse())?;
        let key = serde_json::from_slice(&plain).map_err(|_| refuse())?;
        keys.insert(tenant, key);
    }
    Ok(keys)
}

async fn store(secrets: &SecretStore, ns: &str, master: &KeyRing, keys: &BTreeMap<String, TenantKey>) -> Result<(), BackupError> {
    let mut data = crate::secrets::SecretData::new();
    for (tenant, key) in keys {
        let plain = serde_json::to_vec(key).map_err(super::ArchiveError::from)?;
        let sealed = cascade_core::seal::seal_blob(master, &context(tenant), &plain).map_err(|e| BackupError::Refused(format!("sealing the key of tenant {tenant}: {e}")))?;
        data.insert(tenant.clone(), sealed);
    }
    secrets.apply(ns, SECRET_NAME, &data, crate::labels::managed(&[]), None).await.map_err(kube(format!("writing Secret {ns}/{SECRET_NAME}")))
}

/// The keys of `tenants`, creating (and storing) those that have none yet.
pub async fn ensure(secrets: &SecretStore, ns: &str, master: &KeyRing, tenants: &[&str]) -> Result<BTreeMap<String, TenantKey>, BackupError> {
    let mut keys = load(secrets, ns, master).await?;
    let missing: Vec<&&str> = tenants.iter().filter(|t| !keys.contains_key(**t)).collect();
    if !missing.is_empty() {
        for t in missing {
            keys.insert(t.to_string(), new_tenant_key()?);
        }
        store(secrets, ns, master, &keys).await?;
    }
    Ok(keys.into_iter().filter(|(t, _)| tenants.contains(&t.as_str())).collect())
}

/// Destroys the key of `tenant`; true when there was one. Every backup taken before can no
/// longer yield that tenant's data (the next backup gets a new key).
pub async fn destroy(secrets: &SecretStore, ns: &str, master: &KeyRing, tenant: &str) -> Result<bool, BackupError> {
    let mut keys = load(secrets, ns, master).await?;
    let had = keys.remove(tenant).is_some();
    if had {
        store(secrets, ns, master, &keys).await?;
    }
    Ok(had)
}

/// Writes the key ring (used by restore, which brings the tenants' keys back from an escrow).
pub async fn put(secrets: &SecretStore, ns: &str, master: &KeyRing, add: &BTreeMap<String, TenantKey>) -> Result<(), BackupError> {
    let mut keys = load(secrets, ns, master).await?;
    let before = keys.clone();
    keys.extend(add.iter().map(|(t, k)| (t.clone(), k.clone())));
    if keys != before {
        store(secrets, ns, master, &keys).await?;
    }
    Ok(())
}
