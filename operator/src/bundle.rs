//! The relay bundle: `relay.yaml` and every file it names, built here and only here for both
//! places it goes. Each tenant's domains and API keys go into a shard of their own
//! (`tenant-<ns>.yaml` with its DKIM keys), listed in `relay.yaml` with a digest, so nothing
//! grows with the number of tenants. [`Layout::Pod`] is a pool's bundle Secret plus one shard
//! Secret per tenant (the spool on the pod's volume, the spool, sealing and audit keys mounted
//! from `<pool>-keys`, DKIM keys sealed under the pool's sealing key); [`Layout::Directory`] is
//! `render`'s output directory (every file beside `relay.yaml`, DKIM keys in the clear with mode
//! 0600). Pure.

use crate::secrets::SecretData;
use crate::workloads::{KEYS_DIR, SPOOL_DIR};
use cascade_core::seal::{self, FormatError, KeyRing};
use cascade_crds::relay_config::{RelayConfig, Shard, ShardRef};
use std::collections::BTreeMap;

/// The pool's keys (in Secret `<pool>-keys` in a cluster, beside `relay.yaml` from `render`).
pub const SPOOL_KEY: &str = "spool.key";
pub const SEALING_KEY: &str = "sealing.key";
/// The relays' audit HMAC key (base64 of 32 random bytes).
pub const AUDIT_KEY: &str = "audit.key";

/// What goes into a bundle besides the configuration.
pub struct Parts<'a> {
    /// `tls.crt` and `tls.key`.
    pub tls: &'a SecretData,
    /// The admin channel's files (see [`crate::admin_authority::relay_files`]).
    pub admin: SecretData,
    /// The smarthost's password and CA files, when it has credentials.
    pub smarthost: SecretData,
    /// Each DkimKey's private key (PEM), by the `keyFile` the configuration names.
    pub dkim_private: &'a BTreeMap<String, Vec<u8>>,
}

pub enum Layout<'a> {
    /// A pool's bundle Secret `bundle` and its shard Secrets `<bundle>-<tenant>`. `published` is
    /// what they hold now, merged: sealing is randomized, so a sealed key already published under
    /// the same key stays byte for byte.
    Pod { bundle: &'a str, sealing: &'a KeyRing, published: Option<&'a SecretData> },
    /// `render`'s directory; `keys` holds `spool.key` and `audit.key`.
    Directory { keys: &'a SecretData },
}

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("sealing {file}: {source}")]
    Seal { file: String, source: FormatError },
    #[error("writing relay.yaml: {0}")]
    Yaml(#[from] serde_saphyr::ser::Error),
}

pub struct Bundle {
    /// `relay.yaml` as written before its `configGeneration` (the hash of this) is stamped in:
    /// the hash rolls the relay pods and is the generation the relays report.
    pub yaml: String,
    /// The bundle Secret's entries (Pod), or every file of the directory (Directory).
    pub files: SecretData,
    /// Pod layout: each tenant's shard Secret by name, with its entries.
    pub shards: BTreeMap<String, SecretData>,
}

/// The shard file of a tenant.
pub fn shard_file(tenant: &str) -> String {
    format!("tenant-{tenant}.yaml")
}

/// The DKIM key files and webhook signing secrets of `shard` as the relays get them: sealed to
/// their names (Pod), or in the clear (Directory); renames the references to the sealed names.
fn key_files(shard: &mut Shard, private: &BTreeMap<String, Vec<u8>>, layout: &Layout<'_>) -> Result<SecretData, BundleError> {
    let mut files = SecretData::new();
    let tenants = shard.tenants.iter_mut();
    let refs = tenants.flat_map(|t| t.domains.iter_mut().flat_map(|d| d.dkim.iter_mut().map(|k| &mut k.key_file)).chain(t.webhooks.iter_mut().map(|w| &mut w.secret_file)));
    for file in refs {
        let Some(pem) = private.get(file.as_str()) else { continue };
        match layout {
            Layout::Pod { sealing, published, .. } => {
                *file = format!("{file}.sealed");
                let sealed = seal::seal_blob(sealing, file, pem).map_err(|source| BundleError::Seal { file: file.clone(), source })?;
                let kept = published.and_then(|p| p.get(file.as_str())).filter(|old| {
                    let now = seal::open_blob(sealing, file, &sealed).ok();
                    now.is_some() && seal::open_blob(sealing, file, old).ok() == now
                });
                files.insert(file.clone(), kept.cloned().unwrap_or(sealed));
            }
            Layout::Directory { .. } => drop(files.insert(file.clone(), pem.clone())),
        }
    }
    Ok(files)
}

/// Splits the tenants and API keys off `config` into one shard per tenant, listed in
/// `config.shards` with their digests.
fn shards(config: &mut RelayConfig, private: &BTreeMap<String, Vec<u8>>, layout: &Layout<'_>) -> Result<Vec<(String, SecretData)>, BundleError> {
    let mut by_tenant: BTreeMap<String, Shard> = BTreeMap::new();
    for t in std::mem::take(&mut config.tenants) {
        by_tenant.entry(t.name.clone()).or_default().tenants.push(t);
    }
    for k in std::mem::take(&mut config.api_keys) {
        by_tenant.entry(k.tenant.clone()).or_default().api_keys.push(k);
    }
    let mut out = Vec::new();
    for (tenant, mut shard) in by_tenant {
        let mut files = key_files(&mut shard, private, layout)?;
        let file = shard_file(&tenant);
        let text = serde_saphyr::to_string(&shard)?.into_bytes();
        let keys: Vec<&[u8]> = shard.key_files().iter().filter_map(|f| files.get(*f).map(Vec::as_slice)).collect();
        let digest = cascade_core::shard::digest(&text, &keys);
        let secret = match layout {
            Layout::Pod { bundle, .. } => Some(format!("{bundle}-{tenant}")),
            Layout::Directory { .. } => None,
        };
        config.shards.push(ShardRef { file: file.clone(), secret: secret.clone(), digest });
        files.insert(file, text);
        out.push((secret.unwrap_or_default(), files));
    }
    Ok(out)
}

pub fn build(config: &RelayConfig, parts: Parts<'_>, layout: Layout<'_>) -> Result<Bundle, BundleError> {
    let mut config = config.clone();
    let mut files = SecretData::new();
    let mut shard_secrets = BTreeMap::new();
    match &layout {
        Layout::Pod { .. } => {
            config.spool.dir = SPOOL_DIR.into();
            config.spool.key_file = format!("{KEYS_DIR}/{SPOOL_KEY}");
            config.sealing_key_file = Some(format!("{KEYS_DIR}/{SEALING_KEY}"));
            // The audit trail on the spool volume (the pod's only writable path).
            if let Some(audit) = config.audit.as_mut() {
                audit.dir = format!("{SPOOL_DIR}/audit");
                audit.key_file = format!("{KEYS_DIR}/{AUDIT_KEY}");
            }
            shard_secrets = shards(&mut config, parts.dkim_private, &layout)?.into_iter().collect();
        }
        Layout::Directory { keys } => {
            for (_, shard) in shards(&mut config, parts.dkim_private, &layout)? {
                files.extend(shard);
            }
            for (name, path) in [(SPOOL_KEY, Some(config.spool.key_file.clone())), (AUDIT_KEY, config.audit.as_ref().map(|a| a.key_file.clone()))] {
                if let (Some(path), Some(contents)) = (path, keys.get(name)) {
                    files.insert(path, contents.clone());
                }
            }
        }
    }
    let yaml = serde_saphyr::to_string(&config)?;
    // The generation stamped in: each relay reports the one it loaded (RelayPool readiness).
    let stamped = format!("configGeneration: {}\n{yaml}", cascade_core::shard::config_hash(yaml.as_bytes()));
    let text = match layout {
        Layout::Pod { .. } => stamped,
        Layout::Directory { .. } => format!("# Rendered by `cascade-operator render`; do not edit.\n{stamped}"),
    };
    files.insert("relay.yaml".into(), text.into_bytes());
    for file in ["tls.crt", "tls.key"] {
        files.insert(file.into(), parts.tls.get(file).cloned().unwrap_or_default());
    }
    files.extend(parts.admin);
    files.extend(parts.smarthost);
    Ok(Bundle { yaml, files, shards: shard_secrets })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> RelayConfig {
        let yaml = "tls: {certFile: tls.crt, keyFile: tls.key}\nspool: {dir: spool, keyFile: spool.key}\ntenants:\n- name: shop\n  domains:\n  - name: shop.example\n    dkim:\n    - {selector: s1, keyFile: dkim-shop.k.pem}\n";
        let mut c: RelayConfig = serde_saphyr::from_str(yaml).unwrap();
        c.audit = Some(cascade_crds::relay_config::AuditConfig::at("audit", AUDIT_KEY));
        c
    }

    fn parts<'a>(tls: &'a SecretData, private: &'a BTreeMap<String, Vec<u8>>) -> Parts<'a> {
        Parts { tls, admin: Default::default(), smarthost: [("smarthost.password".to_string(), b"pw".to_vec())].into(), dkim_private: private }
    }

    #[test]
    fn a_pod_bundle_seals_dkim_keys_into_tenant_shards_mounts_the_others_and_keeps_what_is_published() {
        let ring = KeyRing::parse(&KeyRing::generate_line("b1").unwrap()).unwrap();
        let tls: SecretData = [("tls.crt".to_string(), b"CERT".to_vec()), ("tls.key".to_string(), b"KEY".to_vec())].into();
        let private = [("dkim-shop.k.pem".to_string(), b"-----BEGIN PRIVATE KEY-----".to_vec())].into();
        let pod = |published| Layout::Pod { bundle: "main-relay-config", sealing: &ring, published };
        let first = build(&config(), parts(&tls, &private), pod(None)).unwrap();
        let shard = &first.shards["main-relay-config-shop"];
        let sealed = &shard["dkim-shop.k.pem.sealed"];
        assert!(!String::from_utf8_lossy(sealed).contains("PRIVATE KEY"));
        assert_eq!(seal::open_blob(&ring, "dkim-shop.k.pem.sealed", sealed).unwrap(), b"-----BEGIN PRIVATE KEY-----");
        assert!(!first.files.keys().any(|f| f.starts_with("dkim-")) && !first.files.contains_key(SPOOL_KEY) && !first.files.contains_key(AUDIT_KEY));
        assert!(first.yaml.contains("keyFile: /etc/cascade-keys/spool.key") && first.yaml.contains("dir: /var/spool/cascade/audit"), "{}", first.yaml);
        // relay.yaml lists the shard with the digest of what the shard Secret holds.
        let listed: RelayConfig = serde_saphyr::from_str(&first.yaml).unwrap();
        assert!(listed.tenants.is_empty() && listed.api_keys.is_empty());
        let r = &listed.shards[0];
        assert_eq!((r.file.as_str(), r.secret.as_deref()), ("tenant-shop.yaml", Some("main-relay-config-shop")));
        assert_eq!(r.digest, cascade_core::shard::digest(&shard["tenant-shop.yaml"], &[sealed]));
        assert_eq!(first.files["smarthost.password"], b"pw");
        // Sealing is randomized; an unchanged key keeps its published bytes, so nothing is rewritten.
        let again = build(&config(), parts(&tls, &private), pod(Some(shard))).unwrap();
        assert_eq!((again.files, again.shards), (first.files, first.shards));
    }

    #[test]
    fn a_directory_bundle_has_every_file_beside_relay_yaml() {
        let tls: SecretData = [("tls.crt".to_string(), b"CERT".to_vec()), ("tls.key".to_string(), b"KEY".to_vec())].into();
        let private = [("dkim-shop.k.pem".to_string(), b"PEM".to_vec())].into();
        let keys: SecretData = [(SPOOL_KEY.to_string(), b"k1 x".to_vec()), (AUDIT_KEY.to_string(), b"a".to_vec())].into();
        let b = build(&config(), parts(&tls, &private), Layout::Directory { keys: &keys }).unwrap();
        let names: Vec<&str> = b.files.keys().map(String::as_str).collect();
        assert_eq!(names, ["audit.key", "dkim-shop.k.pem", "relay.yaml", "smarthost.password", "spool.key", "tenant-shop.yaml", "tls.crt", "tls.key"]);
        assert!(b.shards.is_empty());
        assert!(String::from_utf8_lossy(&b.files["relay.yaml"]).starts_with("# Rendered by `cascade-operator render`"));
    }
}
