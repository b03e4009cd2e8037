//! What every submission path checks once a key is authenticated and names its envelope sender,
//! before any message is read: SMTP's MAIL FROM and the HTTP send API call [`check`], so both
//! refuse the same things with the same reason (counted and audited by the caller).

use crate::config::Runtime;
use crate::relay::Relay;
use crate::smtp::command::Address;
use crate::smtp::reply::{common, Reply};
use std::net::IpAddr;

/// A refusal: the reason counted in `cascade_relay_messages_rejected_total`, and the reply.
pub type Refusal = (&'static str, Reply);

/// The key still usable (revocation and expiry at once, network), not suspended, the size under
/// the limit, the sender's domain one the key may send as and served, the tenant under its queue
/// share, and the key's and tenant's message rates.
/// `scope` is the one the path needs (`smtp:submit`, `messages:send`).
pub fn check(relay: &Relay, rt: &Runtime, key_id: &str, scope: &str, peer: IpAddr, from: &Address, size: Option<u64>) -> Result<(), Refusal> {
    let now_ms = cascade_core::time::now_unix_ms();
    if let Err(denied) = super::auth::usable_for(rt, key_id, peer, now_ms / 1000, scope) {
        tracing::warn!(client = %peer, key = %key_id, reason = denied.as_str(), "key no longer usable");
        return Err((denied.as_str(), Reply::new(535, "5.7.8", "Authentication credentials no longer valid").closing()));
    }
    if relay.suspension(rt, key_id).is_some() {
        return Err(("suspended", common::suspended().closing()));
    }
    if size.is_some_and(|s| s > rt.config.limits.max_message_size.0) {
        return Err(("size", Reply::new(552, "5.3.4", format!("Message size exceeds the limit of {} bytes", rt.config.limits.max_message_size.0))));
    }
    if from.is_null() || !super::may_send_as(rt, key_id, &from.domain) {
        tracing::warn!(client = %peer, key = %key_id, sender = %crate::relay::mask(&from.to_string()), "sender domain not allowed for key");
        return Err(("sender_domain", Reply::new(550, "5.7.1", "Sender address domain is not authorized for this API key")));
    }
    if let Some(why) = rt.domains.get(&from.domain.to_ascii_lowercase()).and_then(|d| d.refuse.as_deref()) {
        // A reply line stays well inside RFC 5321's 512 octets.
        let why: String = why.chars().filter(|c| !c.is_control()).take(300).collect();
        return Err(("domain_refused", Reply::new(550, "5.7.1", format!("Not sending for {}: {why}", from.domain))));
    }
    let tenant = rt.keys.get(key_id).map(|k| k.tenant.clone()).unwrap_or_default();
    if let Some(refusal) = super::limits::queue_share(relay.spool.tenant_usage(&tenant), size.unwrap_or(0), &rt.config.limits) {
        return Err(("tenant_queue", refusal));
    }
    if let Some(limit) = rt.keys.get(key_id).and_then(|k| k.messages_per_minute) {
        if !relay.rates.allow(key_id, limit, now_ms) {
            return Err(("rate_limit", Reply::new(451, "4.7.1", format!("Rate limit of {limit} messages per minute for this API key reached; try again later"))));
        }
    }
    if let Some(limit) = rt.config.limits.tenant_messages_per_minute {
        if !relay.rates.allow(&format!("tenant:{tenant}"), limit, now_ms) {
            return Err(("tenant_rate_limit", Reply::new(451, "4.7.1", format!("Rate limit of {limit} messages per minute for your tenant reached; try again later"))));
        }
    }
    Ok(())
}

/// One more recipient for the key's `recipientsPerMinute`.
pub fn recipient(relay: &Relay, rt: &Runtime, key_id: &str) -> Result<(), Refusal> {
    match rt.keys.get(key_id).and_then(|k| k.recipients_per_minute) {
        Some(limit) if !relay.rates.allow(&format!("rcpt:{key_id}"), limit, cascade_core::time::now_unix_ms()) => {
            Err(("recipient_rate_limit", Reply::new(452, "4.5.3", format!("Recipient rate limit of {limit} per minute for this API key reached; try again later"))))
        }
        _ => Ok(()),
    }
}

/// A refusal on any submission path: counted by reason, charged to the key's anomaly accounting
/// (not for a suspension), and audited (`policy.reject`).
pub fn rejected(relay: &Relay, client: IpAddr, key: Option<&str>, reason: &str) {
    relay.metrics.rejected.with_label_values(&[reason]).inc();
    if let Some(key) = key.filter(|_| reason != "suspended") {
        relay.key_failed(key);
    }
    relay.audit.record("policy.reject", serde_json::json!({ "client": client.to_string(), "key": key, "reason": reason }));
}
