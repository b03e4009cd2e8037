//! MAIL FROM: authentication is required (the relay is never open), the key must still be usable
//! (revocation and expiry apply at once), its rate limit must allow another message, and the
//! envelope sender's domain must be one the key may send for.

use super::command::Address;
use super::reply::{common, Reply};
use super::{Session, Stage};
use crate::policy::{self, auth};
use tokio::io::{AsyncRead, AsyncWrite};

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    pub(crate) fn mail(&mut self, from: Address, size: Option<u64>) -> Reply {
        match self.stage {
            Stage::Connected => return common::bad_sequence("Send EHLO first"),
            Stage::Mail { .. } | Stage::Rcpt { .. } => return common::bad_sequence("Nested MAIL command"),
            Stage::Ready => {}
        }
        if !self.tls {
            self.reject("no_tls");
            return common::tls_required();
        }
        let Some(key_id) = self.key_id.clone() else {
            self.reject("no_auth");
            return common::auth_required();
        };
        let rt = self.relay.runtime();
        let now_ms = cascade_core::time::now_unix_ms();
        if let Err(denied) = auth::usable(&rt, &key_id, self.peer, now_ms / 1000) {
            self.reject(denied.as_str());
            tracing::warn!(client = %self.peer, key = %key_id, reason = denied.as_str(), "key no longer usable");
            return Reply::new(535, "5.7.8", "Authentication credentials no longer valid").closing();
        }
        if self.relay.suspension(&rt, &key_id).is_some() {
            self.reject("suspended");
            return common::suspended().closing();
        }
        if size.is_some_and(|s| s > rt.config.limits.max_message_size.0) {
            self.reject("size");
            return Reply::new(552, "5.3.4", format!("Message size exceeds the limit of {} bytes", rt.config.limits.max_message_size.0));
        }
        if from.is_null() || !policy::may_send_as(&rt, &key_id, &from.domain) {
            self.reject("sender_domain");
            tracing::warn!(client = %self.peer, key = %key_id, sender = %crate::relay::mask(&from.to_string()), "sender domain not allowed for key");
            return Reply::new(550, "5.7.1", "Sender address domain is not authorized for this API key");
        }
        if let Some(why) = rt.domains.get(&from.domain.to_ascii_lowercase()).and_then(|d| d.refuse.as_deref()) {
            self.reject("domain_refused");
            // A reply line stays well inside RFC 5321's 512 octets.
            let why: String = why.chars().filter(|c| !c.is_control()).take(300).collect();
            return Reply::new(550, "5.7.1", format!("Not sending for {}: {why}", from.domain));
        }
        let tenant = rt.keys.get(&key_id).map(|k| k.tenant.clone()).unwrap_or_default();
        if let Some(refusal) = crate::policy::limits::queue_share(self.relay.spool.tenant_usage(&tenant), size.unwrap_or(0), &rt.config.limits) {
            self.reject("tenant_queue");
            return refusal;
        }
        if let Some(limit) = rt.keys.get(&key_id).and_then(|k| k.messages_per_minute) {
            if !self.relay.rates.allow(&key_id, limit, now_ms) {
                self.reject("rate_limit");
                return Reply::new(451, "4.7.1", format!("Rate limit of {limit} messages per minute for this API key reached; try again later"));
            }
        }
        if let Some(limit) = rt.config.limits.tenant_messages_per_minute {
            if !self.relay.rates.allow(&format!("tenant:{tenant}"), limit, now_ms) {
                self.reject("tenant_rate_limit");
                return Reply::new(451, "4.7.1", format!("Rate limit of {limit} messages per minute for your tenant reached; try again later"));
            }
        }
        self.stage = Stage::Mail { from };
        common::ok()
    }
}
