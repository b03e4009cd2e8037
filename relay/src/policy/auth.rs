//! API key authentication: secrets are compared as SHA-256 hashes in constant time; a key must
//! exist, not be revoked or expired, carry the `smtp:submit` scope and be used from an allowed
//! network. The client only ever hears one generic failure; the log says which rule failed.

use crate::config::{Runtime, SCOPE_SMTP_SUBMIT};
use aws_lc_rs::digest::{digest, SHA256};
use std::net::IpAddr;

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

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    UnknownKey,
    BadSecret,
    Revoked,
    Expired,
    MissingScope,
    ClientNetwork,
}

impl Denied {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownKey => "unknown_key",
            Self::BadSecret => "bad_secret",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
            Self::MissingScope => "missing_scope",
            Self::ClientNetwork => "client_network",
        }
    }
}

/// Checks a key id and secret against the runtime; `Ok` carries nothing but the fact.
pub fn verify(rt: &Runtime, key_id: &str, secret: &str, client: IpAddr, now: u64) -> Result<(), Denied> {
    verify_for(rt, key_id, secret, client, now, SCOPE_SMTP_SUBMIT)
}

/// [`verify`] for a key that must hold `scope`.
pub fn verify_for(rt: &Runtime, key_id: &str, secret: &str, client: IpAddr, now: u64, scope: &str) -> Result<(), Denied> {
    let presented = hash_secret(secret);
    let Some(key) = rt.keys.get(key_id) else {
        // Same work as a real comparison, so timing does not tell which key ids exist.
        let _ = constant_time_eq(&presented, &[0u8; 32]);
        return Err(Denied::UnknownKey);
    };
    if !constant_time_eq(&presented, &key.secret_hash) {
        return Err(Denied::BadSecret);
    }
    usable_for(rt, key_id, client, now, scope)
}

/// The rules that can change after login (revocation, expiry, scope, network): checked at AUTH and
/// again at every MAIL FROM against the current configuration.
pub fn usable(rt: &Runtime, key_id: &str, client: IpAddr, now: u64) -> Result<(), Denied> {
    usable_for(rt, key_id, client, now, SCOPE_SMTP_SUBMIT)
}

/// [`usable`] for a key that must hold `scope`.
pub fn usable_for(rt: &Runtime, key_id: &str, client: IpAddr, now: u64, scope: &str) -> Result<(), Denied> {
    let key = rt.keys.get(key_id).ok_or(Denied::UnknownKey)?;
    if key.revoked {
        return Err(Denied::Revoked);
    }
    if key.expires_at.is_some_and(|t| now >= t) {
        return Err(Denied::Expired);
    }
    if !key.scopes.iter().any(|s| s == scope) {
        return Err(Denied::MissingScope);
    }
    if !key.allowed_cidrs.is_empty() && !key.allowed_cidrs.iter().any(|n| n.contains(client)) {
        return Err(Denied::ClientNetwork);
    }
    Ok(())
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
        assert!(constant_time_eq(&h, &h) && !constant_time_eq(&h, &hash_secret("other")));
    }
}
