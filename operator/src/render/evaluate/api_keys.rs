//! The API keys a pool serves: each checked as the relays would check it (a bad one is refused
//! alone, naming the field), narrowed to its tenant's served domains, with its status. Pure.

use super::{api_key_status, credentials_secret, key_of, Inputs, Key, Material};
use cascade_crds::relay_config as rc;
use cascade_crds::v1alpha1::{ApiKey, ApiKeyStatus};
use kube::ResourceExt;
use std::collections::BTreeMap;

/// What in an ApiKey (or the key id of its credentials) the relays would refuse, naming the
/// field: such a key is left out of the bundle alone, so the pool's other keys keep working.
pub fn api_key_problem(a: &ApiKey, key_id: &str) -> Option<String> {
    use cascade_crds::relay_config::{valid_key_id, KNOWN_SCOPES};
    if let Some((i, s)) = a.spec.scopes.iter().enumerate().find(|(_, s)| !KNOWN_SCOPES.contains(&s.as_str())) {
        return Some(format!("spec.scopes[{i}]: unknown scope {s:?}; known: {}", KNOWN_SCOPES.join(", ")));
    }
    if let Some((i, c)) = a.spec.allowed_cidrs.iter().enumerate().find(|(_, c)| !valid_cidr(c)) {
        return Some(format!("spec.allowedCidrs[{i}]: {c:?} is not an IP network like 10.0.0.0/8"));
    }
    if let Some(t) = a.spec.expires_at.as_deref().filter(|t| cascade_core::time::parse_rfc3339(t).is_none()) {
        return Some(format!("spec.expiresAt: {t:?} is not an RFC 3339 time like 2027-01-01T00:00:00Z"));
    }
    if a.spec.messages_per_minute == Some(0) || a.spec.recipients_per_minute == Some(0) {
        return Some("spec.messagesPerMinute, spec.recipientsPerMinute: must be at least 1 (use revoked: true to stop a key)".into());
    }
    (!valid_key_id(key_id)).then(|| format!("Secret {}: key id {key_id:?} is not 3-128 letters, digits, '-', '_' or '.'", credentials_secret(&a.name_any())))
}

/// `10.0.0.0/8`, `2001:db8::/32` or a bare address, as the relay reads them.
fn valid_cidr(text: &str) -> bool {
    let (addr, prefix) = text.split_once('/').unwrap_or((text, ""));
    let Ok(addr) = addr.parse::<std::net::IpAddr>() else { return false };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    prefix.is_empty() || prefix.parse::<u8>().is_ok_and(|p| p <= max)
}

/// The API keys of served tenants, as the relays get them, and their statuses. A key whose spec
/// the relays would refuse gets `Ready=False` (`InvalidSpec`, naming the field) and is left out.
pub(super) fn api_keys(inputs: &Inputs, material: &Material, tenants: &BTreeMap<String, Vec<rc::SendingDomain>>, now_unix: u64, now: &str) -> (Vec<rc::ApiKey>, BTreeMap<Key, ApiKeyStatus>) {
    let mut keys = Vec::new();
    let mut statuses = BTreeMap::new();
    for a in &inputs.api_keys {
        let k = key_of(a);
        let Some(tenant_domains) = tenants.get(&k.0) else { continue };
        let served: Vec<String> = a.spec.allowed_domains.iter().filter(|d| tenant_domains.iter().any(|t| &&t.name == d)).cloned().collect();
        let unserved = (!a.spec.allowed_domains.is_empty() && served.is_empty()).then(|| "none of allowedDomains is a served SendingDomain of this namespace".to_string());
        let Some((key_id, hash)) = material.api_keys.get(&k) else { continue };
        let invalid = api_key_problem(a, key_id);
        let (st, refused) = api_key_status(a, key_id, hash, invalid.clone().or(unserved), now_unix, now);
        statuses.insert(k.clone(), st);
        if invalid.is_some() {
            continue;
        }
        keys.push(rc::ApiKey {
            id: key_id.clone(),
            tenant: k.0.clone(),
            secret_hash: hash.clone(),
            scopes: a.spec.scopes.clone(),
            allowed_domains: served,
            allowed_cidrs: a.spec.allowed_cidrs.clone(),
            messages_per_minute: a.spec.messages_per_minute,
            recipients_per_minute: a.spec.recipients_per_minute,
            // Any offset, written in UTC.
            expires_at: a.spec.expires_at.as_deref().and_then(cascade_core::time::parse_rfc3339).map(cascade_core::time::rfc3339_utc),
            revoked: refused,
            anomalies: a.spec.anomalies.as_ref().map(|x| x.policy.clone()).unwrap_or_default(),
            generation: a.metadata.generation.unwrap_or(0),
        });
    }
    (keys, statuses)
}
