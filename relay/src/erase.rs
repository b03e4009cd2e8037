//! Erasure of one address on request (`POST /erase` on the admin listener, for the operator):
//! the address leaves every store of this relay that holds it, in one call —
//! - **queued mail**: a message *from* it is purged; as a recipient it is marked failed
//!   (`erased on request`) and masked, and a message left with no pending recipient is purged
//!   (no DSN: it would carry the address);
//! - **message status**: finished messages keep their record with the address masked;
//! - **the suppression list** of the tenant (or of every tenant): removed, and logged so the
//!   pool's shared list loses it too;
//! - **pending webhook events** (the tenant's own deliveries of `message.*` events): masked
//!   wherever the address appears in the payload, on disk; the sender reads each event's body
//!   from disk before every attempt, and writes and sends go through the active erasures
//!   ([`Erasures::scrub`]), so an event emitted or retried meanwhile is masked too.
//!
//! DMARC reports need nothing: the relay keeps only the reported domain, source IPs, counts and
//! failure types from them (see `crate::dmarc`), never an address.
//!
//! The scheduler holds queued envelopes in memory: it reloads those an erasure touched at the
//! next configuration notice, and an attempt running meanwhile gets the erasure applied again
//! when it ends ([`Erasures::reapply`]). Erasures run one at a time (each reads the whole spool,
//! on the blocking pool). Every erasure is an `erasure` audit record with the address masked.
//! [`Erasure::apply`] and [`Erasure::scrub`] are pure.

use crate::events::Pending;
use crate::relay::{mask, Relay};
use crate::spool::{Envelope, RcptStatus};
use serde_json::Value;
use std::sync::Mutex;

/// The reply recorded for an erased recipient.
pub const ERASED: &str = "erased on request";

/// How long an erasure is re-applied to attempts that were running when it happened.
const REAPPLY_SECS: u64 = 3600;

#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Erasure {
    pub address: String,
    /// Only this tenant's data; absent: every tenant's.
    #[serde(default)]
    pub tenant: Option<String>,
}

/// What [`Erasure::apply`] did to an envelope.
#[derive(Debug, PartialEq)]
pub enum Applied {
    Untouched,
    /// Some recipients erased, others still pending.
    Rewritten(usize),
    /// Nothing pending is left (or the sender was erased): the message goes.
    Removed(usize),
}

/// Counts of one erasure on one relay (the body of the answer).
#[derive(Debug, Default, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    pub queued_messages_purged: usize,
    pub queued_recipients_erased: usize,
    pub statuses_masked: usize,
    pub suppressions_removed: usize,
    pub events_masked: usize,
}

impl Erasure {
    /// The request body: `{"address": "...", "tenant": "..."}`, the address normalised.
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        let mut e: Erasure = serde_json::from_slice(body).map_err(|e| format!("the body must be {{\"address\": ..., \"tenant\": ...}}: {e}"))?;
        e.address = crate::suppression::normalize(&e.address);
        let ok = e.address.len() <= 320 && e.address.split_once('@').is_some_and(|(l, d)| !l.is_empty() && !d.is_empty()) && !e.address.chars().any(|c| c.is_control() || c.is_whitespace());
        if !ok {
            return Err("address: not an email address".into());
        }
        Ok(e)
    }

    fn is(&self, address: &str) -> bool {
        crate::suppression::normalize(address) == self.address
    }

    /// Whether `env` holds the address (as sender or recipient) in the erasure's scope.
    pub fn mentions(&self, env: &Envelope) -> bool {
        self.tenant.as_ref().is_none_or(|t| *t == env.tenant) && (self.is(&env.sender) || env.recipients.iter().any(|r| self.is(&r.address)))
    }

    /// Erases the address from `env`: masked wherever it appears, its pending deliveries failed.
    pub fn apply(&self, env: &mut Envelope) -> Applied {
        if !self.mentions(env) {
            return Applied::Untouched;
        }
        let sender = self.is(&env.sender);
        if sender {
            env.sender = mask(&self.address);
        }
        let mut erased = 0;
        for r in env.recipients.iter_mut() {
            let this = self.is(&r.address);
            if this {
                r.address = mask(&self.address);
                erased += 1;
            }
            if (this || sender) && r.status == RcptStatus::Pending {
                r.status = RcptStatus::Failed;
                r.last_reply = Some(ERASED.into());
            }
        }
        match sender || env.pending().next().is_none() {
            true => Applied::Removed(erased),
            false => Applied::Rewritten(erased),
        }
    }

    /// `text` with every occurrence of the address (ASCII case ignored) masked; `None` when it
    /// has none.
    fn masked_in(&self, text: &str) -> Option<String> {
        // ASCII lowercasing keeps every byte offset, so the matches index `text` itself.
        let lower = text.to_ascii_lowercase();
        let mut found = lower.match_indices(self.address.as_str()).peekable();
        found.peek()?;
        let (mut out, mut at) = (String::with_capacity(text.len()), 0);
        for (start, m) in found {
            out.push_str(&text[at..start]);
            out.push_str(&mask(&self.address));
            at = start + m.len();
        }
        out.push_str(&text[at..]);
        Some(out)
    }

    fn scrub_json(&self, v: &mut Value) -> bool {
        match v {
            Value::String(s) => self.masked_in(s).map(|m| *s = m).is_some(),
            Value::Array(list) => list.iter_mut().fold(false, |changed, x| self.scrub_json(x) | changed),
            Value::Object(map) => map.values_mut().fold(false, |changed, x| self.scrub_json(x) | changed),
            _ => false,
        }
    }

    /// Masks the address wherever it appears in the event's payload (a tenant's event only
    /// when the erasure is scoped to it); whether anything changed.
    pub fn scrub(&self, p: &mut Pending) -> bool {
        if self.tenant.as_ref().is_some_and(|t| *t != p.tenant) {
            return false;
        }
        let Ok(mut body) = serde_json::from_str::<Value>(&p.body) else {
            // Never written by this relay; masked as text all the same.
            return self.masked_in(&p.body).map(|m| p.body = m).is_some();
        };
        let changed = self.scrub_json(&mut body);
        if changed {
            p.body = body.to_string();
        }
        changed
    }
}

/// The erasures of the last hour, for attempts that were running when they happened; and the
/// lock that runs erasures one at a time.
#[derive(Default)]
pub struct Erasures {
    active: Mutex<Vec<(Erasure, u64)>>,
    running: Mutex<()>,
}

impl Erasures {
    fn add(&self, e: Erasure, now: u64) {
        let mut list = self.active.lock().unwrap_or_else(|e| e.into_inner());
        list.retain(|(_, at)| now < at + REAPPLY_SECS);
        list.push((e, now));
    }

    /// The active erasures that mention `env`.
    pub fn matching(&self, env: &Envelope) -> Vec<Erasure> {
        self.active.lock().unwrap_or_else(|e| e.into_inner()).iter().filter(|(e, _)| e.mentions(env)).map(|(e, _)| e.clone()).collect()
    }

    /// Applies every active erasure to an event about to be written or sent.
    pub fn scrub(&self, p: &mut Pending) {
        for (e, _) in self.active.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            e.scrub(p);
        }
    }

    /// An envelope back from an attempt (or in the queue): with every active erasure applied
    /// and written; `None` when the message is gone. Blocking.
    pub fn reapply(relay: &Relay, mut env: Envelope) -> Option<Envelope> {
        let erasures = relay.erasures.matching(&env);
        if erasures.is_empty() {
            return Some(env);
        }
        // Every erasure applies (each masks its own address), not just the first that removes.
        let mut removed = false;
        for e in &erasures {
            removed |= matches!(e.apply(&mut env), Applied::Removed(_));
        }
        persist(relay, &env, removed).then_some(env).filter(|_| !removed)
    }
}

/// Writes an erased envelope back (with its message) or removes the message; false when it is
/// no longer in the spool.
fn persist(relay: &Relay, env: &Envelope, removed: bool) -> bool {
    if removed {
        if relay.spool.remove(&env.id).is_ok() {
            relay.record_finished(env);
        }
        return false;
    }
    match relay.spool.load(&env.id) {
        Ok((_, message)) => relay.spool.store(env, &[&message]).is_ok(),
        Err(_) => false,
    }
}

/// Runs `erasure` on every store of this relay. Blocking (an admin request, rare).
pub fn run(relay: &Relay, erasure: Erasure) -> Result<Counts, String> {
    let _one_at_a_time = relay.erasures.running.lock().unwrap_or_else(|e| e.into_inner());
    let now = cascade_core::time::now_unix();
    relay.erasures.add(erasure.clone(), now);
    let mut counts = Counts::default();
    for mut env in relay.spool.recover().map_err(|e| e.to_string())? {
        match erasure.apply(&mut env) {
            Applied::Untouched => continue,
            Applied::Rewritten(n) => {
                counts.queued_recipients_erased += n;
                persist(relay, &env, false);
            }
            Applied::Removed(n) => {
                counts.queued_recipients_erased += n;
                counts.queued_messages_purged += 1;
                persist(relay, &env, true);
            }
        }
    }
    counts.statuses_masked = relay.store.rewrite_statuses(&relay.spool, now, |env| !matches!(erasure.apply(env), Applied::Untouched)).map_err(|e| e.to_string())?;
    let rt = relay.runtime();
    for t in rt.config.tenants.iter().filter(|t| erasure.tenant.as_ref().is_none_or(|only| *only == t.name)) {
        if relay.suppressions.remove(relay, &t.name, &erasure.address)? {
            counts.suppressions_removed += 1;
        }
    }
    counts.events_masked = relay.events.erase(&relay.spool, &erasure).map_err(|e| format!("rewriting pending events: {e}"))?;
    // The scheduler reloads what it holds of the touched messages.
    relay.config_changed.notify_one();
    let record = serde_json::json!({ "address": mask(&erasure.address), "tenant": erasure.tenant, "counts": &counts });
    relay.audit.record("erasure", record);
    tracing::info!(address = %mask(&erasure.address), tenant = ?erasure.tenant, ?counts, "address erased on request");
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::Recipient;

    fn env(sender: &str, rcpts: &[&str]) -> Envelope {
        let mut e = crate::spool::tests::envelope("q1");
        e.sender = sender.into();
        e.tenant = "shop".into();
        e.recipients = rcpts.iter().map(|r| Recipient::pending(r)).collect();
        e
    }

    fn erasure(address: &str, tenant: Option<&str>) -> Erasure {
        Erasure::parse(serde_json::json!({ "address": address, "tenant": tenant }).to_string().as_bytes()).unwrap()
    }

    #[test]
    fn a_recipient_is_masked_and_failed_and_the_others_stay_pending() {
        let mut e = env("orders@shop.example", &["Gone@Dest.Test", "stay@dest.test"]);
        assert_eq!(erasure("gone@dest.test", Some("shop")).apply(&mut e), Applied::Rewritten(1));
        assert_eq!((e.recipients[0].address.as_str(), e.recipients[0].status, e.recipients[0].last_reply.as_deref()), ("g***@dest.test", RcptStatus::Failed, Some(ERASED)));
        assert_eq!(e.recipients[1].status, RcptStatus::Pending);
        assert!(!serde_json::to_string(&e).unwrap().to_lowercase().contains("gone@"));
    }

    #[test]
    fn the_last_pending_recipient_or_the_sender_removes_the_message() {
        let mut only = env("orders@shop.example", &["gone@dest.test"]);
        assert_eq!(erasure("gone@dest.test", None).apply(&mut only), Applied::Removed(1));
        let mut from = env("gone@shop.example", &["a@dest.test", "b@dest.test"]);
        assert_eq!(erasure("gone@shop.example", None).apply(&mut from), Applied::Removed(0));
        assert!(from.recipients.iter().all(|r| r.status == RcptStatus::Failed) && from.sender == "g***@shop.example");
    }

    fn event(tenant: &str, body: serde_json::Value) -> Pending {
        Pending { webhook_id: "evt_1".into(), tenant: tenant.into(), endpoint: "hooks".into(), body: body.to_string(), created: 0, attempts: 1, next_attempt: 0 }
    }

    #[test]
    fn an_event_is_masked_wherever_the_address_appears_and_only_in_scope() {
        let body = serde_json::json!({ "type": "message.bounced", "data": { "recipient": "Gone@Dest.Test", "recipients": ["keep@dest.test", "gone@dest.test"],
            "smtp": { "code": 550, "reply": "550 5.1.1 <gone@dest.test>: no such user (gone@dest.test)" } } });
        let mut p = event("shop", body);
        assert!(erasure("gone@dest.test", Some("shop")).scrub(&mut p));
        let v: serde_json::Value = serde_json::from_str(&p.body).unwrap();
        assert_eq!(v["data"]["recipient"], "g***@dest.test");
        assert_eq!(v["data"]["recipients"], serde_json::json!(["keep@dest.test", "g***@dest.test"]));
        assert_eq!(v["data"]["smtp"]["reply"], "550 5.1.1 <g***@dest.test>: no such user (g***@dest.test)");
        assert_eq!(v["data"]["smtp"]["code"], 550);
        assert!(!erasure("gone@dest.test", None).scrub(&mut p), "nothing left to mask");
        let mut other = event("blog", serde_json::json!({ "data": { "recipient": "gone@dest.test" } }));
        assert!(!erasure("gone@dest.test", Some("shop")).scrub(&mut other) && other.body.contains("gone@dest.test"), "another tenant's event");
        assert!(erasure("gone@dest.test", None).scrub(&mut other) && !other.body.contains("gone@"));
        let mut text = event("shop", serde_json::json!(null));
        text.body = "not json: GONE@dest.test".into();
        assert!(erasure("gone@dest.test", None).scrub(&mut text) && text.body == "not json: g***@dest.test");
    }

    #[test]
    fn another_tenant_or_address_is_untouched_and_bad_requests_are_refused() {
        let mut e = env("orders@shop.example", &["gone@dest.test"]);
        assert_eq!(erasure("gone@dest.test", Some("blog")).apply(&mut e), Applied::Untouched);
        assert_eq!(erasure("other@dest.test", None).apply(&mut e), Applied::Untouched);
        for bad in [r#"{"address":"nope"}"#, r#"{"address":"a b@c.d"}"#, r#"{"address":"x@y","extra":1}"#, "[]"] {
            assert!(Erasure::parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
