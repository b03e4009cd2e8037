//! Per-tenant suppression lists: addresses a tenant's mail is not sent to — added on a hard
//! bounce (an enhanced status `5.1.x` bad address or `5.2.1` mailbox disabled, when the tenant's
//! `suppressedReasons` include `bounce`) or by hand through the API, each with its reason, time,
//! source message id and optional expiry. Checked at accept time (SMTP `RCPT`, the send API) in
//! memory (a hash lookup); kept durably in the relay's state database ([`crate::store`]), sealed.
//! Addresses compare without regard to case.

use crate::relay::Relay;
use crate::smtp::reply::Reply;
use crate::store::StoreError;
pub use cascade_core::suppression::Entry;
use cascade_core::suppression::{shard_of, Change, SHARDS};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, RwLock};

pub mod shared;

/// Why an address is suppressed.
pub const REASONS: &[&str] = &["bounce", "complaint", "manual"];
/// At most this many entries per tenant.
pub const MAX_PER_TENANT: usize = 100_000;

/// The API's view of an entry (times in RFC 3339).
pub fn view(e: &Entry) -> serde_json::Value {
    let time = |t: u64| cascade_core::time::rfc3339_utc(t);
    serde_json::json!({ "address": e.address, "reason": e.reason, "createdAt": time(e.created), "messageId": e.message_id, "expiresAt": e.expires.map(time), "detail": e.detail })
}

pub fn normalize(address: &str) -> String {
    address.trim().to_ascii_lowercase()
}

/// Whether a permanent failure's reply says the address itself is bad (`5.1.x`) or the
/// mailbox disabled (`5.2.1`).
pub fn bad_address(reply: &str) -> bool {
    let mut words = reply.split_whitespace();
    let code_ok = words.next().is_some_and(|c| c.starts_with('5') && c.len() == 3);
    code_ok && words.next().is_some_and(|e| e.starts_with("5.1.") || e == "5.2.1")
}

/// `550 5.1.1 <addr>: recipient suppressed (bounced 2026-12-03)`.
pub fn refusal(e: &Entry) -> Reply {
    let date = cascade_core::time::rfc3339_utc(e.created).chars().take(10).collect::<String>();
    let why = match e.reason.as_str() {
        "bounce" => "bounced",
        "complaint" => "complained",
        _ => "suppressed by the sender",
    };
    Reply::new(550, "5.1.1", format!("<{}>: recipient suppressed ({why} {date})", e.address))
}

/// A tenant's list, by shard (see [`cascade_core::suppression::shard_of`]), then address.
type Shards = Vec<HashMap<String, Entry>>;

fn empty() -> Shards {
    vec![HashMap::new(); usize::from(SHARDS)]
}

#[derive(Default)]
pub struct Suppressions {
    lists: RwLock<HashMap<String, Shards>>,
    /// Held across every change (durable write, log, memory) so changes are numbered, logged and
    /// seen in one order; the changes the operator has not yet confirmed merged, by seq.
    pending: Mutex<BTreeMap<u64, Change>>,
    /// Set when the pool shares its lists: this relay's change log.
    log: Option<shared::Log>,
}

impl Suppressions {
    /// Every unexpired entry from the state database, and (with `shared`, the pool's name) the
    /// change log not yet confirmed. Blocking.
    pub fn load(relay_store: &crate::store::Store, spool: &crate::spool::Spool, shared: Option<&str>) -> Result<Self, StoreError> {
        let now = cascade_core::time::now_unix();
        let mut lists: HashMap<String, Shards> = HashMap::new();
        for (tenant, json) in relay_store.suppressions(spool, now)? {
            if let Ok(e) = serde_json::from_slice::<Entry>(&json) {
                let i = usize::from(shard_of(&tenant, &e.address));
                lists.entry(tenant).or_insert_with(empty)[i].insert(e.address.clone(), e);
            }
        }
        let (log, pending) = match shared {
            Some(pool) => {
                let pending = relay_store.logged(spool, now)?.into_iter().map(|c| (c.seq, c)).collect::<BTreeMap<_, _>>();
                (Some(shared::Log::new(relay_store.log_id()?, pool, pending.keys().next_back().copied().unwrap_or(0))), pending)
            }
            None => (None, BTreeMap::new()),
        };
        Ok(Self { lists: RwLock::new(lists), pending: Mutex::new(pending), log })
    }

    /// The entry suppressing `address` for `tenant` now, if any.
    pub fn get(&self, tenant: &str, address: &str, now: u64) -> Option<Entry> {
        let address = normalize(address);
        let lists = self.lists.read().unwrap_or_else(|e| e.into_inner());
        lists.get(tenant)?[usize::from(shard_of(tenant, &address))].get(&address).filter(|e| e.live(now)).cloned()
    }

    /// The tenant's live entries, by address, after `cursor` (an address), matching `reason` and
    /// created after `after`; at most `limit`, and the cursor for the next page.
    pub fn list(&self, tenant: &str, reason: Option<&str>, after: Option<u64>, cursor: Option<&str>, limit: usize) -> (Vec<Entry>, Option<String>) {
        let now = cascade_core::time::now_unix();
        let lists = self.lists.read().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<&Entry> = lists.get(tenant).map(|l| l.iter().flat_map(HashMap::values).collect()).unwrap_or_default();
        all.retain(|e| e.live(now) && reason.is_none_or(|r| e.reason == r) && after.is_none_or(|t| e.created > t) && cursor.is_none_or(|c| e.address.as_str() > c));
        all.sort_by(|a, b| a.address.cmp(&b.address));
        let next = (all.len() > limit).then(|| all[limit - 1].address.clone());
        (all.into_iter().take(limit).cloned().collect(), next)
    }

    /// Adds or replaces `entry` for `tenant` (durably first). Returns whether it is new; refuses
    /// an entry past the tenant's [`MAX_PER_TENANT`]. Blocking.
    pub fn put(&self, relay: &Relay, tenant: &str, entry: Entry) -> Result<bool, String> {
        let (mut added, mut refused) = self.put_all(relay, tenant, vec![entry])?;
        refused.pop().map_or(Ok(added.pop().unwrap_or(false)), Err)
    }

    /// Adds or replaces `entries` for `tenant` in one durable write (logged for the pool when it
    /// shares its lists). Returns, for those taken, whether each is new, and why each other was
    /// refused (the tenant's limit). Blocking.
    pub fn put_all(&self, relay: &Relay, tenant: &str, entries: Vec<Entry>) -> Result<(Vec<bool>, Vec<String>), String> {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let (mut taken, mut new, mut refused) = (Vec::new(), Vec::new(), Vec::new());
        {
            let lists = self.lists.read().unwrap_or_else(|e| e.into_inner());
            let list = lists.get(tenant);
            let mut count = list.map_or(0, |l| l.iter().map(HashMap::len).sum());
            let mut seen = std::collections::HashSet::new();
            for mut e in entries {
                e.address = normalize(&e.address);
                let known = list.is_some_and(|l| l[usize::from(shard_of(tenant, &e.address))].contains_key(&e.address)) || seen.contains(&e.address);
                if !known && count >= MAX_PER_TENANT {
                    refused.push(format!("the tenant's suppression list holds its limit of {MAX_PER_TENANT} entries"));
                    continue;
                }
                count += usize::from(!known);
                seen.insert(e.address.clone());
                new.push(!known);
                taken.push(e);
            }
        }
        let rows: Vec<(&str, Option<u64>, Vec<u8>)> = taken.iter().map(|e| (e.address.as_str(), e.expires, serde_json::to_vec(e).unwrap_or_default())).collect();
        let log = self.log.as_ref().map(|l| l.changes(tenant, taken.iter().map(|e| (e.address.clone(), Some(e.clone()))))).unwrap_or_default();
        relay.store.suppress(&relay.spool, tenant, &rows, &[], &log).map_err(|e| e.to_string())?;
        pending.extend(log.into_iter().map(|c| (c.seq, c)));
        let mut lists = self.lists.write().unwrap_or_else(|e| e.into_inner());
        let list = lists.entry(tenant.to_string()).or_insert_with(empty);
        for e in taken {
            list[usize::from(shard_of(tenant, &e.address))].insert(e.address.clone(), e);
        }
        Ok((new, refused))
    }

    /// Removes `address` from `tenant`'s list (durably, logged when shared); whether it was
    /// there. Blocking.
    pub fn remove(&self, relay: &Relay, tenant: &str, address: &str) -> Result<bool, String> {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let address = normalize(address);
        let log = self.log.as_ref().map(|l| l.changes(tenant, [(address.clone(), None)])).unwrap_or_default();
        relay.store.suppress(&relay.spool, tenant, &[], &[&address], &log).map_err(|e| e.to_string())?;
        pending.extend(log.into_iter().map(|c| (c.seq, c)));
        let mut lists = self.lists.write().unwrap_or_else(|e| e.into_inner());
        Ok(lists.get_mut(tenant).and_then(|l| l[usize::from(shard_of(tenant, &address))].remove(&address)).is_some())
    }
}

/// Whether `reason` (`bounce`, `complaint`) adds a recipient of `sender`'s mail to `tenant`'s list
/// by itself: the sending domain's `suppressedReasons`, else the tenant's.
pub fn reason_applies(rt: &crate::config::Runtime, tenant: &str, sender: &str, reason: &str) -> bool {
    let Some(t) = rt.config.tenants.iter().find(|t| t.name == tenant) else { return false };
    let domain = sender.rsplit_once('@').map(|(_, d)| d.trim_end_matches('>').to_ascii_lowercase());
    let own = domain.and_then(|d| t.domains.iter().find(|x| x.name == d)).and_then(|x| x.suppressed_reasons.as_ref());
    own.unwrap_or(&t.suppressed_reasons).iter().any(|r| r == reason)
}

impl Relay {
    /// Refuses `address` for `tenant` when it is suppressed: counted, audited and reported as a
    /// `message.suppressed` event. Blocking (the event is written durably).
    pub fn suppressed(&self, tenant: &str, address: &str, via: &str) -> Option<Reply> {
        let e = self.suppressions.get(tenant, address, cascade_core::time::now_unix())?;
        self.metrics.rejected.with_label_values(&["suppressed"]).inc();
        self.audit.record("policy.reject", serde_json::json!({ "reason": "suppressed", "tenant": tenant, "recipient": crate::relay::mask(address), "via": via }));
        let rt = self.runtime();
        if crate::events::Events::wanted(&rt, tenant, "message.suppressed") {
            let data = serde_json::json!({ "tenant": tenant, "recipient": e.address, "reason": e.reason, "suppressedAt": cascade_core::time::rfc3339_utc(e.created), "via": via });
            self.events.emit(&rt, &self.spool, tenant, "message.suppressed", data);
        }
        Some(refusal(&e))
    }

    /// A hard bounce of `address` (the reply names a bad address) in mail from `sender` suppresses
    /// it when the `suppressedReasons` that apply include `bounce`. Blocking.
    pub fn suppress_bounce(&self, tenant: &str, sender: &str, address: &str, reply: &str, message_id: &str) {
        let rt = self.runtime();
        let wanted = reason_applies(&rt, tenant, sender, "bounce");
        if !wanted || !bad_address(reply) || self.suppressions.get(tenant, address, cascade_core::time::now_unix()).is_some() {
            return;
        }
        let detail: String = reply.chars().filter(|c| !c.is_control()).take(300).collect();
        let entry =
            Entry { address: address.to_string(), reason: "bounce".into(), created: cascade_core::time::now_unix(), message_id: Some(message_id.to_string()), expires: None, detail: Some(detail) };
        match self.suppressions.put(self, tenant, entry) {
            Ok(_) => self.audit.record("suppression.added", serde_json::json!({ "tenant": tenant, "address": crate::relay::mask(address), "reason": "bounce", "message_id": message_id })),
            Err(e) => tracing::warn!(tenant, error = %e, "a hard-bounced address could not be suppressed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bad_address_bounces_suppress() {
        assert!(bad_address("550 5.1.1 No such user") && bad_address("552 5.2.1 mailbox disabled") && bad_address("550 5.1.10 null MX"));
        assert!(!bad_address("552 5.2.2 mailbox full") && !bad_address("550 5.7.1 policy") && !bad_address("451 4.1.1 later") && !bad_address("destination address not allowed"));
    }

    #[test]
    fn the_refusal_names_the_address_reason_and_date() {
        let e = Entry { address: "a@x.test".into(), reason: "bounce".into(), created: 1_780_000_000, message_id: None, expires: None, detail: None };
        let r = refusal(&e);
        assert_eq!((r.code, r.enhanced, r.lines[0].as_ref()), (550, "5.1.1", "<a@x.test>: recipient suppressed (bounced 2026-05-28)"));
    }
}
