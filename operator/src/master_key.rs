//! The master key that encrypts every private key the operator stores (AES-256-GCM, the spool's
//! sealed format). It lives in the Secret `cascade-master-key` in the operator's namespace as a
//! key ring: lines `<id> <base64 key>`, the first encrypts, all decrypt, so rotating is adding a
//! new first line (and re-sealing happens as keys are rewritten). Created on first start.

use crate::secrets::SecretStore;
use cascade_relay::spool::format::{self, KeyRing};

pub const SECRET_NAME: &str = "cascade-master-key";
const FIELD: &str = "keys";

/// Loads the master key ring, creating it when absent (a concurrent creator wins; we then read
/// theirs).
pub async fn ensure(store: &SecretStore, namespace: &str) -> anyhow::Result<KeyRing> {
    for _ in 0..3 {
        if let Some(data) = store.get(namespace, SECRET_NAME).await? {
            let text = String::from_utf8_lossy(data.get(FIELD).map(Vec::as_slice).unwrap_or_default()).into_owned();
            return KeyRing::parse(&text).map_err(|e| anyhow::anyhow!("Secret {namespace}/{SECRET_NAME}: {e}"));
        }
        let line = KeyRing::generate_line(&format!("m{}", cascade_relay::time::now_unix()))?;
        let labels = [("app.kubernetes.io/managed-by".to_string(), "cascade-operator".to_string())].into();
        if store.create(namespace, SECRET_NAME, &[(FIELD.to_string(), line.into_bytes())].into(), labels).await? {
            tracing::info!(namespace, "created the master key");
        }
    }
    anyhow::bail!("could not create or read Secret {namespace}/{SECRET_NAME}")
}

/// Encrypts `plaintext` bound to `context` (e.g. `namespace/name`): a copy moved elsewhere does
/// not decrypt.
pub fn seal(ring: &KeyRing, context: &str, plaintext: &[u8]) -> Result<Vec<u8>, format::FormatError> {
    format::seal_blob(ring, context, plaintext)
}

pub fn open(ring: &KeyRing, context: &str, sealed: &[u8]) -> Result<Vec<u8>, format::FormatError> {
    format::open_blob(ring, context, sealed)
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
