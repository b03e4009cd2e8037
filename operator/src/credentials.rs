//! An ApiKey's credentials Secret `<name>-credentials`, which only the operator writes: an owner
//! reference to the ApiKey plus an integrity mark, so nothing a tenant writes in its namespace
//! becomes a key id or a secret hash (a chosen weak secret, a malformed id, another tenant's id).
//!
//! The mark (data entry `mark`) is the SHA-256 of `username \0 password`, sealed with the master
//! key ring (AES-256-GCM, [`cascade_core::seal::seal_blob`]) to `credentials/<ns>/<name>/<uid>`:
//! only the holder of the master key can make one, and a copy under another ApiKey, another
//! namespace or a recreated ApiKey of the same name does not open. Pure.

use cascade_core::seal::{open_blob, seal_blob, FormatError, KeyRing};
use cascade_core::secret::{format_secret_hash, hash_secret, Credentials};
use cascade_crds::v1alpha1::ApiKey;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;

/// The Secret entry holding the integrity mark.
pub const MARK: &str = "mark";

fn context(key: &ApiKey) -> String {
    format!("credentials/{}/{}/{}", key.namespace().unwrap_or_default(), key.name_any(), key.uid().unwrap_or_default())
}

fn digest(username: &str, password: &str) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, format!("{username}\0{password}").as_bytes()).as_ref().to_vec()
}

/// The Secret data for fresh credentials of `key`: `username`, `password` and the mark.
pub fn data(master: &KeyRing, key: &ApiKey, creds: &Credentials) -> Result<crate::secrets::SecretData, FormatError> {
    let mark = seal_blob(master, &context(key), &digest(&creds.username, &creds.password))?;
    Ok([("username".to_string(), creds.username.clone().into_bytes()), ("password".to_string(), creds.password.clone().into_bytes()), (MARK.to_string(), mark)].into())
}

/// The key id and `sha256:` secret hash of `key` from its credentials Secret, or why that Secret
/// is not one the operator issued for this ApiKey (the message names the Secret).
pub fn verify(master: &KeyRing, key: &ApiKey, secret: &Secret) -> Result<(String, String), String> {
    let name = secret.metadata.name.as_deref().unwrap_or_default();
    let refuse = |why: &str| format!("Secret {name}: {why}; it was not issued by the operator for this ApiKey, delete it and the operator issues new credentials");
    let owned = secret.metadata.owner_references.iter().flatten().any(|o| o.controller == Some(true) && key.uid().is_some_and(|uid| o.uid == uid));
    if !owned {
        return Err(refuse("not controlled by this ApiKey (ownerReferences)"));
    }
    let data = secret.data.as_ref();
    let field = |k: &str| data.and_then(|d| d.get(k)).map(|v| v.0.as_slice());
    let (Some(user), Some(pass), Some(mark)) = (field("username"), field("password"), field(MARK)) else {
        return Err(refuse("username, password or mark missing"));
    };
    let (Ok(user), Ok(pass)) = (std::str::from_utf8(user), std::str::from_utf8(pass)) else { return Err(refuse("username or password is not UTF-8")) };
    match open_blob(master, &context(key), mark) {
        Ok(d) if d == digest(user, pass) => Ok((user.to_string(), format_secret_hash(&hash_secret(pass)))),
        _ => Err(refuse("integrity mark does not verify")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    fn key(ns: &str, name: &str, uid: &str) -> ApiKey {
        let mut k = ApiKey::new(name, serde_json::from_value(serde_json::json!({})).unwrap());
        k.metadata.namespace = Some(ns.into());
        k.metadata.uid = Some(uid.into());
        k
    }

    fn secret_for(owner: &ApiKey, data: &crate::secrets::SecretData) -> Secret {
        let mut s = crate::secrets::secret("shop", "app-credentials", data, Default::default(), None);
        s.metadata.owner_references = Some(vec![OwnerReference { controller: Some(true), uid: owner.uid().unwrap(), ..Default::default() }]);
        s
    }

    #[test]
    fn only_the_operators_mark_for_this_very_api_key_verifies() {
        let master = KeyRing::parse(&KeyRing::generate_line("m1").unwrap()).unwrap();
        let app = key("shop", "app", "uid-1");
        let creds = cascade_core::secret::new_api_key().unwrap();
        let data = data(&master, &app, &creds).unwrap();
        let (id, hash) = verify(&master, &app, &secret_for(&app, &data)).unwrap();
        assert_eq!((id.as_str(), hash), (creds.username.as_str(), format_secret_hash(&hash_secret(&creds.password))));

        // A tenant-written Secret: owner reference set, no mark, or a mark of its own.
        let mut forged = data.clone();
        forged.insert("password".into(), b"hunter2".to_vec());
        assert!(verify(&master, &app, &secret_for(&app, &forged)).unwrap_err().contains("integrity mark does not verify"));
        forged.remove(MARK);
        assert!(verify(&master, &app, &secret_for(&app, &forged)).unwrap_err().contains("mark missing"));
        // The operator's Secret of another ApiKey (copied), or of an ApiKey recreated under the
        // same name, does not open.
        for other in [key("shop", "other", "uid-2"), key("blog", "app", "uid-1"), key("shop", "app", "uid-3")] {
            assert!(verify(&master, &other, &secret_for(&other, &data)).is_err(), "{:?}", other.metadata);
        }
        // Not owned by the ApiKey.
        let mut unowned = secret_for(&app, &data);
        unowned.metadata.owner_references = None;
        assert!(verify(&master, &app, &unowned).unwrap_err().contains("ownerReferences"));
        // Another master key.
        let other_master = KeyRing::parse(&KeyRing::generate_line("m2").unwrap()).unwrap();
        assert!(verify(&other_master, &app, &secret_for(&app, &data)).is_err());
    }
}
