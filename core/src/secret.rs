//! API key credentials: new ids and secrets from the system RNG, and the SHA-256 hash that is
//! all the operator stores and the relays compare against.

use aws_lc_rs::digest::{digest, SHA256};

/// Every API key secret starts with this, so secret scanners can recognise a leaked one.
pub const SECRET_PREFIX: &str = "cascade_sk_";

/// An API key's username (its id) and password (its secret).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

#[derive(Debug, thiserror::Error)]
#[error("the system random number generator failed")]
pub struct RngFailed;

fn random_bytes<const N: usize>() -> Result<[u8; N], RngFailed> {
    use aws_lc_rs::rand::{SecureRandom, SystemRandom};
    let mut b = [0u8; N];
    SystemRandom::new().fill(&mut b).map_err(|_| RngFailed)?;
    Ok(b)
}

/// 32 random bytes (an HMAC key).
pub fn random_key() -> Result<[u8; 32], RngFailed> {
    random_bytes::<32>()
}

/// A new API key: id `ck_<16 hex>`, secret `cascade_sk_<43 base64url chars>` (256 bits).
pub fn new_api_key() -> Result<Credentials, RngFailed> {
    use base64::Engine;
    let id: String = random_bytes::<8>()?.iter().map(|b| format!("{b:02x}")).collect();
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>()?);
    Ok(Credentials { username: format!("ck_{id}"), password: format!("{SECRET_PREFIX}{secret}") })
}

/// A new webhook signing secret (Standard Webhooks): `whsec_` and 24 random bytes in base64.
pub fn new_webhook_secret() -> Result<String, RngFailed> {
    use base64::Engine;
    let key = random_key()?;
    Ok(format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(&key[..24])))
}

/// `whsec_<base64>` → the key bytes (at least 16 of them).
pub fn parse_webhook_secret(line: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let key = base64::engine::general_purpose::STANDARD.decode(line.trim().strip_prefix("whsec_")?).ok()?;
    (key.len() >= 16).then_some(key)
}

pub fn hash_secret(secret: &str) -> [u8; 32] {
    digest(&SHA256, secret.as_bytes()).as_ref().try_into().expect("sha256 is 32 bytes")
}

pub fn format_secret_hash(hash: &[u8; 32]) -> String {
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

pub fn parse_secret_hash(s: &str) -> Option<[u8; 32]> {
    let hex = s.strip_prefix("sha256:")?;
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_hash_round_trip_and_format() {
        let h = hash_secret("s3cret");
        let text = format_secret_hash(&h);
        assert!(text.starts_with("sha256:") && text.len() == 71);
        assert_eq!(parse_secret_hash(&text), Some(h));
        assert_eq!(parse_secret_hash("sha256:zz"), None);
        assert_eq!(parse_secret_hash(&text.replace("sha256:", "md5:")), None);
    }

    #[test]
    fn new_keys_have_the_documented_shape() {
        let k = new_api_key().unwrap();
        assert!(k.username.starts_with("ck_") && k.username.len() == 19);
        assert!(k.password.starts_with(SECRET_PREFIX) && k.password.len() == SECRET_PREFIX.len() + 43);
        assert_ne!(new_api_key().unwrap(), k);
    }
}
