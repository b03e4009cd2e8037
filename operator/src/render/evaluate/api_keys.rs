//! The API keys a pool serves: each checked as the relays would check it (a bad one is refused
//! alone, naming the field), narrowed to its tenant's served domains, with its status. Pure.

use super::{api_key_status, credentials_secret, key_of, Inputs, Key, Material};
use cascade_core::cidr::Cidr;
use cascade_crds::relay_config as rc;
use cascade_crds::v1alpha1::{ApiKey, ApiKeyStatus};
use kube::ResourceExt;
use std::collections::BTreeMap;

/// What in an ApiKey (or the key id of its credentials) the relays would refuse, naming the
/// field: such a key is left out of the bundle alone, so the pool's other keys keep working.
pub fn api_key_problem(a: &ApiKey, key_id: &str) -> Option<String> {
    use cascade_crds::relay_config::{valid_key_id, KNOWN_SCOPES};
    use cascade_crds::v1alpha1::bounds::{MAX_ALLOWED_CIDRS, MAX_ALLOWED_DOMAINS, MAX_LABELLED_NAME, MAX_SCOPES};
    let s = &a.spec;
    for (field, len, max) in
        [("spec.scopes", s.scopes.len(), MAX_SCOPES), ("spec.allowedDomains", s.allowed_domains.len(), MAX_ALLOWED_DOMAINS), ("spec.allowedCidrs", s.allowed_cidrs.len(), MAX_ALLOWED_CIDRS)]
    {
        if len > max {
            return Some(format!("{field}: {len} items; at most {max}"));
        }
    }
    if a.name_any().len() > MAX_LABELLED_NAME {
        return Some(format!("metadata.name: {} characters; at most {MAX_LABELLED_NAME} (it labels the credentials Secret)", a.name_any().len()));
    }
    if let Some((i, scope)) = s.scopes.iter().enumerate().find(|(_, x)| !KNOWN_SCOPES.contains(&x.as_str())) {
        return Some(format!("spec.scopes[{i}]: unknown scope {}; known: {}", shown(scope), KNOWN_SCOPES.join(", ")));
    }
    if let Some((i, c)) = s.allowed_cidrs.iter().enumerate().find(|(_, c)| c.parse::<Cidr>().is_err()) {
        return Some(format!("spec.allowedCidrs[{i}]: {} is not an IP network like 10.0.0.0/8", shown(c)));
    }
    if let Some(t) = s.expires_at.as_deref().filter(|t| cascade_core::time::parse_rfc3339(t).is_none()) {
        return Some(format!("spec.expiresAt: {} is not an RFC 3339 time like 2027-01-01T00:00:00Z", shown(t)));
    }
    if s.messages_per_minute == Some(0) || s.recipients_per_minute == Some(0) {
        return Some("spec.messagesPerMinute, spec.recipientsPerMinute: must be at least 1 (use revoked: true to stop a key)".into());
    }
    (!valid_key_id(key_id)).then(|| format!("Secret {}: key id {} is not 3-128 letters, digits, '-', '_' or '.'", credentials_secret(&a.name_any()), shown(key_id)))
}

/// A tenant's value as a status message quotes it: at most 64 characters, escaped.
fn shown(value: &str) -> String {
    match value.char_indices().nth(64) {
        Some((cut, _)) => format!("{:?}…", &value[..cut]),
        None => format!("{value:?}"),
    }
}

/// The status of an ApiKey whose credentials Secret the operator did not issue: no key id, no
/// fingerprint (nothing a tenant wrote is shown as the key's), `Ready=False InvalidSpec`.
pub fn refused_status(a: &ApiKey, why: &str, now: &str) -> ApiKeyStatus {
    let generation = a.metadata.generation.unwrap_or(0);
    let mut st = a.status.clone().unwrap_or_default();
    st.observed_generation = generation;
    (st.key_id, st.fingerprint, st.state) = (None, None, None);
    cascade_crds::conditions::set(&mut st.conditions, cascade_crds::conditions::types::READY, false, cascade_crds::conditions::reasons::INVALID_SPEC, why, generation, now);
    st
}

/// Marks a status `Ready=False`, reason `QuotaExceeded`.
pub fn quota_exceeded(a: &ApiKey, st: &mut ApiKeyStatus, why: &str, now: &str) {
    use cascade_crds::conditions::{reasons, set, types};
    set(&mut st.conditions, types::READY, false, reasons::QUOTA_EXCEEDED, why, a.metadata.generation.unwrap_or(0), now);
}

/// The API keys of served tenants, as the relays get them, and their statuses. A key whose spec
/// the relays would refuse gets `Ready=False` (`InvalidSpec`, naming the field) and is left out.
pub(super) fn api_keys(
    inputs: &Inputs,
    material: &Material,
    tenants: &BTreeMap<String, Vec<rc::SendingDomain>>,
    max_keys: u32,
    now_unix: u64,
    now: &str,
) -> (Vec<rc::ApiKey>, BTreeMap<Key, ApiKeyStatus>) {
    let mut keys = Vec::new();
    let mut statuses = BTreeMap::new();
    let ranks = super::quota::ranks(&inputs.api_keys);
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for (ns, _) in ranks.keys() {
        *counts.entry(ns.clone()).or_default() += 1;
    }
    for a in &inputs.api_keys {
        let k = key_of(a);
        let Some(tenant_domains) = tenants.get(&k.0) else { continue };
        let served: Vec<String> = a.spec.allowed_domains.iter().filter(|d| tenant_domains.iter().any(|t| &&t.name == d)).cloned().collect();
        let unserved = (!a.spec.allowed_domains.is_empty() && served.is_empty()).then(|| "none of allowedDomains is a served SendingDomain of this namespace".to_string());
        if let Some(why) = material.refused_credentials.get(&k) {
            statuses.insert(k.clone(), refused_status(a, why, now));
            continue;
        }
        let Some((key_id, hash)) = material.api_keys.get(&k) else { continue };
        let invalid = api_key_problem(a, key_id);
        let over = (ranks[&k] >= max_keys as usize).then(|| super::quota::message(&k.0, counts[&k.0], max_keys, "limits.tenantMaxApiKeys", "ApiKeys"));
        let (mut st, refused) = api_key_status(a, key_id, hash, invalid.clone().or(over.clone()).or(unserved), now_unix, now);
        if let Some(over) = over.as_deref().filter(|_| invalid.is_none()) {
            quota_exceeded(a, &mut st, over, now);
        }
        statuses.insert(k.clone(), st);
        if invalid.is_some() || over.is_some() {
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
