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

/// An HTTP request's API key, from `Authorization: Basic base64(id:secret)` or
/// `Authorization: Bearer id:secret`, checked for `scope` before the body is read: the
/// address's failed attempts (as SMTP AUTH, `429`), the credentials (`401`, counted against the
/// address), then the key's state (`403`). Failures are counted and audited (`auth.failure`).
pub fn http(relay: &crate::relay::Relay, authorization: Option<&str>, peer: IpAddr, scope: &str) -> Result<String, (u16, String)> {
    let now_ms = cascade_core::time::now_unix_ms();
    if relay.auth_failures.is_blocked(peer, now_ms) {
        return Err((429, "too many failed authentications from this address; try again later".into()));
    }
    let Some((key_id, secret)) = http_credentials(authorization) else {
        return Err((401, "authenticate with HTTP Basic (the API key id as user name, its secret as password) or Bearer <id>:<secret>".into()));
    };
    let rt = relay.runtime();
    let Err(denied) = verify_for(&rt, &key_id, &secret, peer, now_ms / 1000, scope) else {
        relay.note_key_use(&key_id, peer);
        return Ok(key_id);
    };
    relay.metrics.auth_failures.with_label_values(&[denied.as_str()]).inc();
    let shown: String = key_id.chars().filter(|c| c.is_ascii_graphic()).take(64).collect();
    relay.audit.record("auth.failure", serde_json::json!({ "client": peer.to_string(), "key": shown, "reason": denied.as_str(), "via": "http" }));
    if matches!(denied, Denied::UnknownKey | Denied::BadSecret) {
        relay.auth_failures.record(peer, now_ms);
        return Err((401, "authentication failed".into()));
    }
    Err((403, format!("this API key may not do this ({}; it needs the {scope} scope, and to be neither revoked nor expired, from an allowed network)", denied.as_str())))
}

fn http_credentials(authorization: Option<&str>) -> Option<(String, String)> {
    use base64::Engine;
    let (scheme, value) = authorization?.trim().split_once(' ')?;
    let text = if scheme.eq_ignore_ascii_case("Basic") {
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(value.trim()).ok()?).ok()?
    } else if scheme.eq_ignore_ascii_case("Bearer") {
        value.trim().to_string()
    } else {
        return None;
    };
    let (user, pass) = text.split_once(':')?;
    Some((user.to_string(), pass.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_compare_in_constant_time() {
        let h = hash_secret("s3cret");
        assert!(constant_time_eq(&h, &h) && !constant_time_eq(&h, &hash_secret("other")));
    }

    #[test]
    fn http_credentials_come_from_basic_or_bearer_only() {
        let basic = format!("Basic {}", base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "ck_1:cascade_sk_x"));
        for header in [basic.as_str(), "Bearer ck_1:cascade_sk_x", "bearer  ck_1:cascade_sk_x "] {
            assert_eq!(http_credentials(Some(header)), Some(("ck_1".into(), "cascade_sk_x".into())), "{header}");
        }
        for header in ["Bearer ck_1", "Digest ck_1:x", "Basic %%%", "ck_1:x", ""] {
            assert_eq!(http_credentials(Some(header)), None, "{header}");
        }
    }
}
