//! API key authentication: secrets are compared as SHA-256 hashes in constant time; a key must
//! exist, not be revoked or expired, carry the `smtp:submit` scope and be used from an allowed
//! network. The client only ever hears one generic failure; the log says which rule failed.

use crate::config::{Runtime, SCOPE_SMTP_SUBMIT};
use cascade_core::secret::hash_secret;
use std::net::IpAddr;

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
    fn hashes_compare_in_constant_time() {
        let h = hash_secret("s3cret");
        assert!(constant_time_eq(&h, &h) && !constant_time_eq(&h, &hash_secret("other")));
    }
}
