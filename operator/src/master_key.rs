//! The master key that encrypts every private key the operator stores (AES-256-GCM, the spool's
//! sealed format). It lives in the Secret `cascade-master-key` in the operator's namespace as a
//! key ring: lines `<id> <base64 key>`, the first encrypts, all decrypt, so rotating is adding a
//! new first line (and re-sealing happens as keys are rewritten). Created on first start.

use crate::secrets::SecretStore;
use cascade_core::seal::{self, KeyRing};

pub const SECRET_NAME: &str = "cascade-master-key";
/// The field of [`SECRET_NAME`] holding the ring.
pub const FIELD: &str = "keys";
pub const AUDIT_SECRET_NAME: &str = "cascade-audit-key";

/// Why the operator's own keys could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("reading or creating Secret {namespace}/{name}: {source}")]
    Kube { namespace: String, name: String, source: kube::Error },
    #[error("Secret {namespace}/{name}: {reason}")]
    Invalid { namespace: String, name: String, reason: String },
    #[error("could not create or read Secret {namespace}/{name}")]
    Contended { namespace: String, name: String },
    #[error("generating a key: {0}")]
    Random(String),
}

/// Loads the master key ring, creating it when absent (a concurrent creator wins; we then read
/// theirs).
pub async fn ensure(store: &SecretStore, namespace: &str) -> Result<KeyRing, KeyError> {
    let generate = || KeyRing::generate_line(&format!("m{}", cascade_core::time::now_unix())).map(String::into_bytes).map_err(|e| KeyError::Random(e.to_string()));
    let bytes = ensure_secret(store, namespace, SECRET_NAME, FIELD, generate).await?;
    KeyRing::parse(&String::from_utf8_lossy(&bytes)).map_err(|reason| KeyError::Invalid { namespace: namespace.into(), name: SECRET_NAME.into(), reason })
}

/// The operator's audit key (Secret `cascade-audit-key`, field `audit.key`: base64 of 32 random
/// bytes), created on first start like the master key, so installs and upgrades never regenerate it.
pub async fn ensure_audit_key(store: &SecretStore, namespace: &str) -> Result<Vec<u8>, KeyError> {
    let generate = || cascade_core::audit::new_key_file().map(String::into_bytes).map_err(|e| KeyError::Random(e.to_string()));
    let bytes = ensure_secret(store, namespace, AUDIT_SECRET_NAME, "audit.key", generate).await?;
    cascade_core::audit::parse_key(&String::from_utf8_lossy(&bytes)).map_err(|reason| KeyError::Invalid { namespace: namespace.into(), name: AUDIT_SECRET_NAME.into(), reason })
}

/// Field `field` of Secret `namespace/name`, created with `generate()` when absent.
async fn ensure_secret(store: &SecretStore, namespace: &str, name: &str, field: &str, generate: impl Fn() -> Result<Vec<u8>, KeyError>) -> Result<Vec<u8>, KeyError> {
    let kube = |source| KeyError::Kube { namespace: namespace.into(), name: name.into(), source };
    for _ in 0..3 {
        if let Some(data) = store.get(namespace, name).await.map_err(kube)? {
            return data.get(field).cloned().ok_or_else(|| KeyError::Invalid { namespace: namespace.into(), name: name.into(), reason: format!("no field {field:?}") });
        }
        let labels = crate::labels::managed(&[]);
        if store.create(namespace, name, &[(field.to_string(), generate()?)].into(), labels).await.map_err(kube)? {
            tracing::info!(namespace, secret = name, "created");
        }
    }
    Err(KeyError::Contended { namespace: namespace.into(), name: name.into() })
}

/// Encrypts `plaintext` bound to `context` (e.g. `namespace/name`): a copy moved elsewhere does
/// not decrypt.
pub fn seal(ring: &KeyRing, context: &str, plaintext: &[u8]) -> Result<Vec<u8>, seal::FormatError> {
    seal::seal_blob(ring, context, plaintext)
}

pub fn open(ring: &KeyRing, context: &str, sealed: &[u8]) -> Result<Vec<u8>, seal::FormatError> {
    seal::open_blob(ring, context, sealed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_keys_open_only_in_their_context() {
        let ring = KeyRing::parse(&KeyRing::generate_line("m1").unwrap()).unwrap();
        let sealed = seal(&ring, "shop/k1", b"-----BEGIN PRIVATE KEY-----").unwrap();
        assert!(!String::from_utf8_lossy(&sealed).contains("PRIVATE KEY"));
        assert_eq!(open(&ring, "shop/k1", &sealed).unwrap(), b"-----BEGIN PRIVATE KEY-----");
        assert!(open(&ring, "other/k1", &sealed).is_err());
    }
}
