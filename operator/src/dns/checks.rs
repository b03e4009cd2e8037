//! The DNS checks of a sending domain as pure functions of what DNS answered: SPF (one valid
//! `v=spf1` record that authorizes the pool, no `+all`, at most 10 DNS-querying terms), DKIM
//! (each key's record carries its public key), DMARC (a record for the domain or, by the
//! DMARCbis tree walk, a parent; a policy at least as strict as asked; the `rua` asked for),
//! ownership (the claim's challenge record, see [`crate::render::evaluate::ownership`]).
//! Each result says exactly what to change.

use super::Lookup;
use cascade_crds::v1alpha1::{DmarcExpectation, DmarcPolicy, DomainOwnership, SpfExpectation};
use mail_auth::dmarc::{Alignment, DmarcRecord, Policy};
use mail_auth::dns::TxtRecordParser;
use mail_auth::spf::{Macro, Mechanism, Qualifier, SpfRecord};
use std::net::IpAddr;

/// Condition types.
pub use cascade_crds::conditions::types::{DKIM_VERIFIED as DKIM, DMARC_VERIFIED as DMARC, DOMAIN_VERIFIED as OWNERSHIP, RETURN_PATH_VERIFIED as RETURN_PATH, SPF_VERIFIED as SPF};

/// The claim's ownership challenge: one TXT record at `expected.name` is exactly its value.
pub fn ownership(domain: &str, expected: &DomainOwnership, answer: &Lookup) -> Check {
    let records = match answer {
        Lookup::Failed(e) => return Check::unknown(OWNERSHIP, &expected.name, e),
        Lookup::Missing => &[][..],
        Lookup::Found(r) => r.as_slice(),
    };
    if crate::render::evaluate::ownership::proves(records, expected) {
        return Check::pass(OWNERSHIP, "ChallengeVerified", format!("{} carries this claim's token: the namespace controls {domain}", expected.name));
    }
    let why = if records.is_empty() { "no record" } else { "no record with this claim's token" };
    Check::fail(
        OWNERSHIP,
        "ChallengeMissing",
        format!("{why} at {}: publish TXT {} {:?} (not needed for a domain the RelayPool assigns to this namespace)", expected.name, expected.name, expected.value),
    )
}

/// The return-path domain's SPF: the same check, under its own condition type.
pub fn return_path(domain: &str, expect: &SpfExpectation, answer: &Lookup) -> Check {
    Check { type_: RETURN_PATH, ..spf(domain, expect, answer) }
}

/// One check's outcome: `Some(true/false)`, or `None` when DNS could not answer (try later).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub type_: &'static str,
    pub passed: Option<bool>,
    pub reason: String,
    pub message: String,
}

impl Check {
    fn pass(type_: &'static str, reason: &str, message: impl Into<String>) -> Self {
        Self { type_, passed: Some(true), reason: reason.into(), message: message.into() }
    }
    fn fail(type_: &'static str, reason: &str, message: impl Into<String>) -> Self {
        Self { type_, passed: Some(false), reason: reason.into(), message: message.into() }
    }
    fn unknown(type_: &'static str, name: &str, error: &str) -> Self {
        Self { type_, passed: None, reason: "DNSError".into(), message: format!("looking up {name}: {error}; will retry") }
    }
}

fn starts_with_tag(record: &str, tag: &str) -> bool {
    let r = record.trim_start();
    r.len() >= tag.len() && r[..tag.len()].eq_ignore_ascii_case(tag) && r[tag.len()..].chars().next().is_none_or(|c| c == ' ' || c == ';')
}

fn literal(m: &Macro) -> Option<String> {
    match m {
        Macro::Literal(b) => Some(String::from_utf8_lossy(b).trim_end_matches('.').to_ascii_lowercase()),
        _ => None,
    }
}

/// Whether a `Pass` ip4/ip6 directive covers the network `cidr` (`a.b.c.d[/n]` or IPv6).
fn covers(record: &SpfRecord, cidr: &str) -> bool {
    let (addr, len) = cidr.split_once('/').map_or((cidr, None), |(a, l)| (a, l.parse::<u32>().ok()));
    let Ok(ip) = addr.parse::<IpAddr>() else { return false };
    record.directives.iter().filter(|d| d.qualifier == Qualifier::Pass).any(|d| match (&d.mechanism, ip) {
        (Mechanism::Ip4 { addr, mask }, IpAddr::V4(v4)) => {
            let want = len.map_or(u32::MAX, |l| if l == 0 { 0 } else { u32::MAX << (32 - l.min(32)) });
            (u32::from(v4) & mask) == (u32::from(*addr) & mask) && want & mask == *mask
        }
        (Mechanism::Ip6 { addr, mask }, IpAddr::V6(v6)) => {
            let want = len.map_or(u128::MAX, |l| if l == 0 { 0 } else { u128::MAX << (128 - l.min(128)) });
            (u128::from(v6) & mask) == (u128::from(*addr) & mask) && want & mask == *mask
        }
        _ => false,
    })
}

/// SPF at `domain`.
pub fn spf(domain: &str, expect: &SpfExpectation, answer: &Lookup) -> Check {
    let wanted = crate::records::spf_value(expect);
    let publish = wanted.as_deref().map(|w| format!(": publish TXT at {domain}. {w:?}")).unwrap_or_default();
    let records: Vec<&String> = match answer {
        Lookup::Failed(e) => return Check::unknown(SPF, domain, e),
        Lookup::Missing => vec![],
        Lookup::Found(txts) => txts.iter().filter(|t| starts_with_tag(t, "v=spf1")).collect(),
    };
    let record = match records.as_slice() {
        [] => return Check::fail(SPF, "SPFMissing", format!("no v=spf1 record at {domain}{publish}")),
        [one] => one,
        many => return Check::fail(SPF, "SPFMultiple", format!("{} v=spf1 records at {domain}; RFC 7208 allows exactly one: merge them into one{publish}", many.len())),
    };
    let parsed = match SpfRecord::parse(record.as_bytes()) {
        Ok(p) => p,
        Err(e) => return Check::fail(SPF, "SPFSyntax", format!("the v=spf1 record at {domain} does not parse ({e}): {record:?}")),
    };
    if parsed.directives.iter().any(|d| d.qualifier == Qualifier::Pass && d.mechanism == Mechanism::All) {
        return Check::fail(SPF, "SPFAllowsAll", format!("the record at {domain} ends in +all, which lets anyone send as {domain}: use -all or ~all"));
    }
    let lookups =
        parsed.directives.iter().filter(|d| matches!(d.mechanism, Mechanism::Include { .. } | Mechanism::A { .. } | Mechanism::Mx { .. } | Mechanism::Ptr { .. } | Mechanism::Exists { .. })).count()
            + usize::from(parsed.redirect.is_some());
    if lookups > 10 {
        return Check::fail(SPF, "SPFTooManyLookups", format!("the record at {domain} has {lookups} DNS-querying terms; RFC 7208 allows 10 (receivers return permerror): flatten some includes"));
    }
    if let Some(inc) = &expect.include {
        let inc = inc.trim_end_matches('.').to_ascii_lowercase();
        let included =
            parsed.directives.iter().any(|d| d.qualifier == Qualifier::Pass && matches!(&d.mechanism, Mechanism::Include { macro_string } if literal(macro_string).as_deref() == Some(inc.as_str())));
        if !included {
            return Check::fail(SPF, "SPFNotAuthorized", format!("the record at {domain} does not include:{inc}, so the pool's mail fails SPF: add include:{inc} before the all term"));
        }
    }
    let missing: Vec<&String> = if expect.include.is_none() { expect.egress.iter().filter(|c| !covers(&parsed, c)).collect() } else { vec![] };
    if !missing.is_empty() {
        let add: Vec<String> = missing.iter().map(|c| if c.contains(':') { format!("ip6:{c}") } else { format!("ip4:{c}") }).collect();
        return Check::fail(SPF, "SPFNotAuthorized", format!("the record at {domain} does not authorize the pool's egress: add {}", add.join(" ")));
    }
    let what = if wanted.is_some() { "authorizes the pool" } else { "is valid (spec.spf names no include or egress to check)" };
    Check::pass(SPF, "SPFVerified", format!("one v=spf1 record at {domain}, {lookups} DNS-querying terms, {what}"))
}

/// The `p=` value of a DKIM TXT record, whitespace removed.
fn dkim_p(record: &str) -> Option<String> {
    record.split(';').filter_map(|tag| tag.split_once('=')).find(|(k, _)| k.trim() == "p").map(|(_, v)| v.chars().filter(|c| !c.is_whitespace()).collect())
}

/// One DKIM key's record at `name`: `expected` is the exact TXT value (from the DkimKey status),
/// or `None` when only the record's presence can be checked.
pub fn dkim_key(name: &str, expected: Option<&str>, answer: &Lookup) -> Check {
    let publish = expected.map(|v| format!(": publish TXT at {name} {v:?}")).unwrap_or_default();
    let records: Vec<String> = match answer {
        Lookup::Failed(e) => return Check::unknown(DKIM, name, e),
        Lookup::Missing => vec![],
        Lookup::Found(txts) => txts.iter().filter(|t| dkim_p(t).is_some()).cloned().collect(),
    };
    let Some(record) = records.first() else {
        return Check::fail(DKIM, "DKIMRecordMissing", format!("no DKIM record at {name}{publish}"));
    };
    if records.len() > 1 {
        return Check::fail(DKIM, "DKIMMultiple", format!("{} DKIM records at {name}; keep exactly one{publish}", records.len()));
    }
    let Some(expected) = expected else {
        return Check::pass(DKIM, "DKIMRecordFound", format!("a DKIM record is published at {name} (its key was not compared: the DkimKey has no status.txtValue)"));
    };
    match (dkim_p(record), dkim_p(expected)) {
        (Some(got), Some(want)) if got == want => Check::pass(DKIM, "DKIMVerified", format!("{name} carries the key's public key")),
        (Some(got), _) if got.is_empty() => Check::fail(DKIM, "DKIMKeyRevoked", format!("the record at {name} has an empty p= (revoked){publish}")),
        _ => Check::fail(DKIM, "DKIMKeyMismatch", format!("the record at {name} carries a different public key{publish}")),
    }
}

/// The domain's DKIM condition from its keys' checks (each key's current generation): verified
/// when every key that signs its mail (RSA and Ed25519 together, say) has its record verified.
pub fn dkim_domain(domain: &str, keys: &[(String, Check)]) -> Check {
    if keys.is_empty() {
        return Check::fail(DKIM, cascade_crds::conditions::reasons::DKIM_KEY_PENDING, format!("{domain} has no DKIM key yet"));
    }
    let not_passed = keys.iter().find(|(_, c)| c.passed == Some(false)).or_else(|| keys.iter().find(|(_, c)| c.passed.is_none()));
    match not_passed {
        Some((name, c)) => Check { type_: DKIM, passed: c.passed, reason: c.reason.clone(), message: format!("DkimKey {name}: {}", c.message) },
        None => {
            let names: Vec<&str> = keys.iter().map(|(n, _)| n.as_str()).collect();
            Check::pass(DKIM, "DKIMVerified", format!("the record of every signing key is published and matches (DkimKey {})", names.join(", ")))
        }
    }
}

fn policy_rank(p: &Policy) -> u8 {
    match p {
        Policy::Reject => 2,
        Policy::Quarantine => 1,
        _ => 0,
    }
}

fn policy_name(p: &Policy) -> &'static str {
    match p {
        Policy::Reject => "reject",
        Policy::Quarantine => "quarantine",
        _ => "none",
    }
}

/// The names the DMARCbis tree walk looks at, most specific first: `_dmarc.<domain>` and each
/// parent's, up to (not including) the top-level domain, at most 8.
pub fn dmarc_names(domain: &str) -> Vec<String> {
    let labels: Vec<&str> = domain.trim_end_matches('.').split('.').collect();
    (0..labels.len().saturating_sub(1)).take(8).map(|i| format!("_dmarc.{}", labels[i..].join("."))).collect()
}

/// DMARC for `domain`, given the answers for [`dmarc_names`] in order.
pub fn dmarc(domain: &str, expect: &DmarcExpectation, answers: &[(String, Lookup)]) -> Check {
    let wanted = crate::records::dmarc_value(expect);
    let publish = format!(": publish TXT at _dmarc.{domain}. {wanted:?}");
    for (i, (name, answer)) in answers.iter().enumerate() {
        let records: Vec<&String> = match answer {
            Lookup::Failed(e) => return Check::unknown(DMARC, name, e),
            Lookup::Missing => continue,
            Lookup::Found(txts) => txts.iter().filter(|t| starts_with_tag(t, "v=DMARC1")).collect(),
        };
        let record = match records.as_slice() {
            [] => continue,
            [one] => one,
            many => return Check::fail(DMARC, "DMARCMultiple", format!("{} DMARC records at {name}; receivers ignore them all: keep one{publish}", many.len())),
        };
        let parsed = match DmarcRecord::parse(record.as_bytes()) {
            Ok(p) => p,
            Err(e) => return Check::fail(DMARC, "DMARCSyntax", format!("the record at {name} does not parse ({e}): {record:?}")),
        };
        // A parent's record applies to this subdomain through sp=.
        let (policy, via) = if i == 0 { (&parsed.p, String::new()) } else { (&parsed.sp, format!(" (inherited from {name} through sp=)")) };
        let want = match expect.policy {
            DmarcPolicy::None => Policy::None,
            DmarcPolicy::Quarantine => Policy::Quarantine,
            DmarcPolicy::Reject => Policy::Reject,
        };
        if policy_rank(policy) < policy_rank(&want) {
            return Check::fail(DMARC, "DMARCPolicyWeaker", format!("the policy for {domain} is p={}{via}, weaker than the p={} asked for{publish}", policy_name(policy), policy_name(&want)));
        }
        if let Some(rua) = &expect.rua {
            let addr = rua.trim_start_matches("mailto:").to_ascii_lowercase();
            if !parsed.rua.iter().any(|u| u.uri == addr) {
                return Check::fail(DMARC, "DMARCReportingMissing", format!("the record at {name} does not send aggregate reports to {rua}: add rua={rua}"));
            }
        }
        let align = |a: &Alignment| if *a == Alignment::Strict { "strict" } else { "relaxed" };
        return Check::pass(
            DMARC,
            "DMARCVerified",
            format!("p={}{via}, DKIM alignment {}, SPF alignment {}, {} aggregate report address(es)", policy_name(policy), align(&parsed.adkim), align(&parsed.aspf), parsed.rua.len()),
        );
    }
    Check::fail(DMARC, "DMARCMissing", format!("no DMARC record for {domain} or its parents{publish}"))
}

#[cfg(test)]
mod tests;
