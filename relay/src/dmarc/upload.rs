//! `POST /dmarc/reports` on the relay's HTTP listener: an aggregate report (XML, gzip or zip) as
//! the body, authenticated with an API key holding the `dmarc:upload` scope (HTTP Basic: key id
//! and secret). Brute force is limited per client address like SMTP AUTH, and uploads per key by
//! the key's `messagesPerMinute`.

use crate::config::SCOPE_DMARC_UPLOAD;
use crate::policy::auth;
use crate::relay::Relay;
use std::net::IpAddr;

/// The uploading key's id, checked before the body is read: credentials and scope (see
/// [`auth::http`]), then the key's rate.
pub fn authorize(relay: &Relay, authorization: Option<&str>, peer: IpAddr) -> Result<String, (u16, String)> {
    let key_id = auth::http(relay, authorization, peer, SCOPE_DMARC_UPLOAD).map_err(|(code, text)| (code, format!("{text}\n")))?;
    if let Some(limit) = relay.runtime().keys.get(&key_id).and_then(|k| k.messages_per_minute) {
        if !relay.rates.allow(&key_id, limit, cascade_core::time::now_unix_ms()) {
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
