//! Who owns a domain. A SendingDomain is only a claim; it owns its domain once proven, by one
//! of two proofs:
//! - **assigned**: the RelayPool it names lists the domain (or a parent of it) for its namespace
//!   in `spec.assignedDomains` — the platform team's word;
//! - **verified**: its ownership challenge passed — the TXT record `_cascade-challenge.<domain>`
//!   carries `cascade-verification=<token>`, a token bound to this very claim (namespace, name
//!   and uid), so no other claim's record proves it.
//!
//! Among proven claims of a domain, assigned ones come first, then the earliest verification;
//! the claim already served, creation time and then the name break ties, so the answer never depends on listing order.
//! Unproven claims own nothing and block no one. Pure.

use super::{key_of, Inputs, Key};
use cascade_crds::v1alpha1::{DomainOwnership, RelayPool, SendingDomain};
use kube::ResourceExt;
use std::collections::BTreeMap;

/// The label under the domain that carries the challenge record.
pub const CHALLENGE_LABEL: &str = "_cascade-challenge";
const TOKEN_PREFIX: &str = "cascade-verification=";

/// The challenge record of a claim (without `verifiedAt`).
pub fn challenge(d: &SendingDomain) -> DomainOwnership {
    let input = format!("cascade-mail.com/challenge\0{}\0{}\0{}", d.namespace().unwrap_or_default(), d.name_any(), d.uid().unwrap_or_default());
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, input.as_bytes());
    let token: String = digest.as_ref()[..16].iter().map(|b| format!("{b:02x}")).collect();
    DomainOwnership { name: format!("{CHALLENGE_LABEL}.{}.", d.spec.domain), value: format!("{TOKEN_PREFIX}{token}"), verified_at: None }
}

/// Whether `pool` assigns `domain` to namespace `ns`: listed, or a subdomain of a listed one.
pub fn assigned(pool: &RelayPool, ns: &str, domain: &str) -> bool {
    let zones = pool.spec.assigned_domains.get(ns).map(Vec::as_slice).unwrap_or_default();
    zones.iter().map(|z| z.trim_end_matches('.')).any(|z| domain == z || domain.strip_suffix(z).is_some_and(|rest| rest.ends_with('.')))
}

/// How a claim is proven; the derived order is precedence (earlier wins).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Proof {
    Assigned,
    /// Unix time of the first verification.
    Verified(u64),
}

/// The proof of a claim, if any: the pool it names (when among `inputs.pools`) assigns it, or
/// `inputs.verified` has its verification time.
pub fn proof(inputs: &Inputs, d: &SendingDomain) -> Option<Proof> {
    let (ns, _) = key_of(d);
    let pool = inputs.pools.iter().find(|p| key_of(*p) == (d.spec.relay_pool.namespace.clone(), d.spec.relay_pool.name.clone()));
    if pool.is_some_and(|p| assigned(p, &ns, &d.spec.domain)) {
        return Some(Proof::Assigned);
    }
    inputs.verified.get(&key_of(d)).map(|t| Proof::Verified(*t))
}

/// For each domain with a proven claim, the claim that owns it.
pub fn domain_owners(inputs: &Inputs) -> BTreeMap<String, Key> {
    // Then: the claim already served (verification times have one-second resolution, and a tie
    // must never move a domain), creation time, the name.
    type Rank = (Proof, bool, i64, Key);
    let mut owners: BTreeMap<String, Rank> = BTreeMap::new();
    for d in &inputs.domains {
        let Some(proof) = proof(inputs, d) else { continue };
        let served = d.status.as_ref().is_some_and(|s| cascade_crds::conditions::is_true(&s.conditions, cascade_crds::conditions::types::READY));
        let created = d.metadata.creation_timestamp.as_ref().map(|t| t.0.as_second()).unwrap_or(i64::MAX);
        let rank = (proof, !served, created, key_of(d));
        match owners.get(&d.spec.domain) {
            Some(cur) if *cur <= rank => {}
            _ => drop(owners.insert(d.spec.domain.clone(), rank)),
        }
    }
    owners.into_iter().map(|(domain, (.., key))| (domain, key)).collect()
}

/// The claims `inputs.verified` should hold, from the statuses the SendingDomain controller
/// writes (`status.ownership.verifiedAt`, for this claim's current challenge).
pub fn verified_from_status(domains: &[SendingDomain]) -> BTreeMap<Key, u64> {
    let mut out = BTreeMap::new();
    for d in domains {
        let Some(o) = d.status.as_ref().and_then(|s| s.ownership.as_ref()) else { continue };
        let current = challenge(d);
        if let Some(at) = o.verified_at.as_deref().and_then(cascade_core::time::parse_rfc3339).filter(|_| o.value == current.value && o.name == current.name) {
            out.insert(key_of(d), at);
        }
    }
    out
}

/// What an unproven claim is told.
pub fn unproven_message(d: &SendingDomain) -> String {
    let c = challenge(d);
    format!(
        "ownership of {} is not proven: publish TXT {} {:?} (or have RelayPool {}/{} list it in spec.assignedDomains for this namespace); until then this claim is not served and blocks no one",
        d.spec.domain, c.name, c.value, d.spec.relay_pool.namespace, d.spec.relay_pool.name
    )
}

/// Whether a challenge TXT answer proves `expected` (one of the records is exactly it).
pub fn proves(records: &[String], expected: &DomainOwnership) -> bool {
    records.iter().any(|r| r.trim() == expected.value)
}
