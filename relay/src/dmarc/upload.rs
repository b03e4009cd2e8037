//! `POST /dmarc/reports` on the relay's HTTP listener: an aggregate report (XML, gzip or zip) as
//! the body, authenticated with an API key holding the `dmarc:upload` scope (HTTP Basic: key id
//! and secret). Brute force is limited per client address like SMTP AUTH, and uploads per key by
//! the key's `messagesPerMinute`.

use crate::config::SCOPE_DMARC_UPLOAD;
use crate::policy::auth::{self, Denied};
use crate::relay::Relay;
use base64::Engine;
use std::net::IpAddr;

fn credentials(authorization: Option<&str>) -> Option<(String, String)> {
    let encoded = authorization?.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, pass) = text.split_once(':')?;
    Some((user.to_string(), pass.to_string()))
}

/// The uploading key's id, checked before the body is read: credentials, scope, the address's
/// failed attempts and the key's rate.
pub fn authorize(relay: &Relay, authorization: Option<&str>, peer: IpAddr) -> Result<String, (u16, String)> {
    let now_ms = cascade_core::time::now_unix_ms();
    if relay.auth_failures.is_blocked(peer, now_ms) {
        return Err((429, "too many failed authentications from this address; try again later\n".into()));
    }
    let Some((key_id, secret)) = credentials(authorization) else {
        return Err((401, "authenticate with HTTP Basic: the API key id as user name and its secret as password\n".into()));
    };
    let rt = relay.runtime();
    if let Err(denied) = auth::verify_for(&rt, &key_id, &secret, peer, now_ms / 1000, SCOPE_DMARC_UPLOAD) {
        relay.metrics.auth_failures.with_label_values(&[denied.as_str()]).inc();
        relay.audit.record(
            "auth.failure",
            serde_json::json!({ "client": peer.to_string(), "key": key_id.chars().filter(|c| c.is_ascii_graphic()).take(64).collect::<String>(), "reason": denied.as_str(), "via": "http" }),
        );
        if matches!(denied, Denied::UnknownKey | Denied::BadSecret) {
            relay.auth_failures.record(peer, now_ms);
            return Err((401, "authentication failed\n".into()));
        }
        return Err((403, format!("this API key may not upload reports ({}; it needs the {SCOPE_DMARC_UPLOAD} scope)\n", denied.as_str())));
    }
    if let Some(limit) = rt.keys.get(&key_id).and_then(|k| k.messages_per_minute) {
        if !relay.rates.allow(&key_id, limit, now_ms) {
            return Err((429, format!("rate limit of {limit} per minute for this API key reached; try again later\n")));
        }
    }
    Ok(key_id)
}

/// An authorized key's report: parsed and recorded.
pub fn ingest(relay: &Relay, key_id: &str, body: &[u8]) -> (u16, String) {
    // On a blocking-pool thread (the HTTP listener runs POST handlers there): wait for a parser slot.
    let parsing = futures::executor::block_on(crate::dmarc::PARSERS.acquire());
    let parsed = crate::dmarc::parse_upload(body);
    drop(parsing);
    let report = match parsed {
        Ok(r) => r,
        Err(e) => {
            crate::dmarc::ingest::malformed(relay, &e);
            return (400, format!("report refused: {e}\n"));
        }
    };
    match crate::dmarc::ingest::accept(relay, key_id, std::slice::from_ref(&report)) {
        Ok(summary) => (202, format!("{summary}\n")),
        Err(e) => (403, format!("report refused: {e}\n")),
    }
}
