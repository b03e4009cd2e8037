//! DNS verification of sending domains: [`checks`] are pure functions of DNS answers; this
//! module asks DNS (hickory, nameservers configurable so tests use a server on loopback) and
//! [`domain_checks`] runs every check of one domain.

pub mod checks;

use cascade_crds::v1alpha1::{DkimKey, SendingDomain};
use checks::Check;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::TokioResolver;
use std::time::Duration;

/// What DNS said about one name and type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The records, each TXT record's strings joined.
    Found(Vec<String>),
    /// NXDOMAIN or no record of the type.
    Missing,
    /// Timeout, SERVFAIL, network: nothing can be concluded.
    Failed(String),
}

/// DNS lookups for the checks.
#[derive(Clone)]
pub struct Dns {
    resolver: TokioResolver,
}

impl Dns {
    /// Uses `nameservers` (`IP:PORT`), or the system configuration when empty. Nothing is
    /// cached, so a fixed record is seen at the next check.
    pub fn new(nameservers: &[std::net::SocketAddr]) -> Result<Self, String> {
        let mut opts = hickory_resolver::config::ResolverOpts::default();
        opts.cache_size = 0;
        opts.timeout = Duration::from_secs(2);
        opts.attempts = 1;
        Ok(Self { resolver: cascade_core::resolver::build(nameservers, opts).map_err(|e| e.to_string())? })
    }

    pub async fn txt(&self, name: &str) -> Lookup {
        let fqdn = format!("{}.", name.trim_end_matches('.'));
        match self.resolver.txt_lookup(fqdn.as_str()).await {
            Ok(lookup) => {
                let records: Vec<String> = lookup
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::TXT(t) => Some(t.txt_data.iter().map(|s| String::from_utf8_lossy(s).into_owned()).collect()),
                        _ => None,
                    })
                    .collect();
                if records.is_empty() {
                    Lookup::Missing
                } else {
                    Lookup::Found(records)
                }
            }
            Err(e) if e.is_nx_domain() || e.is_no_records_found() => Lookup::Missing,
            Err(e) => Lookup::Failed(e.to_string()),
        }
    }
}

impl Dns {
    /// The addresses of a name (none when it does not resolve).
    pub async fn addresses(&self, name: &str) -> Vec<std::net::IpAddr> {
        self.resolver.lookup_ip(name).await.map(|l| l.iter().collect()).unwrap_or_default()
    }
}

/// The DNS name of a DkimKey's current record (its status names it; else the first selector's).
pub fn dkim_name(key: &DkimKey) -> String {
    match key.status.as_ref().and_then(|s| s.dns_name.clone()) {
        Some(n) => n.trim_end_matches('.').to_string(),
        None => format!("{}._domainkey.{}", key.spec.selector, key.spec.domain),
    }
}

/// One DkimKey's record checked against its status `txtValue` (when it has one).
pub async fn dkim_key_check(dns: &Dns, key: &DkimKey) -> Check {
    let name = dkim_name(key);
    let expected = key.status.as_ref().and_then(|s| s.txt_value.clone());
    checks::dkim_key(&format!("{name}."), expected.as_deref(), &dns.txt(&name).await)
}

/// Ownership, SPF, DKIM and DMARC of a domain; `keys` are the DkimKeys that sign for it.
pub async fn domain_checks(dns: &Dns, domain: &SendingDomain, keys: &[DkimKey]) -> Vec<Check> {
    let name = &domain.spec.domain;
    let spf = checks::spf(name, &domain.spec.spf, &dns.txt(name).await);
    let mut key_checks = Vec::new();
    for k in keys {
        key_checks.push((kube::ResourceExt::name_any(k), dkim_key_check(dns, k).await));
    }
    let dkim = checks::dkim_domain(name, &key_checks);
    let mut answers = Vec::new();
    for n in checks::dmarc_names(name) {
        let answer = dns.txt(&n).await;
        let found = !matches!(answer, Lookup::Missing);
        answers.push((n, answer));
        if found {
            break;
        }
    }
    let dmarc = checks::dmarc(name, &domain.spec.dmarc, &answers);
    let challenge = crate::render::evaluate::ownership::challenge(domain);
    let ownership = checks::ownership(name, &challenge, &dns.txt(&challenge.name).await);
    let mut out = vec![ownership, spf, dkim, dmarc];
    if let Some(rp) = &domain.spec.return_path {
        out.push(checks::return_path(rp, &domain.spec.spf, &dns.txt(rp).await));
    }
    out
}

/// When to check again.
#[derive(Clone, Copy, Debug)]
pub struct Recheck {
    /// While every check passes.
    pub passing: Duration,
    /// Backoff bounds while a check fails or DNS does not answer.
    pub min: Duration,
    pub max: Duration,
}

impl Default for Recheck {
    fn default() -> Self {
        Self { passing: Duration::from_secs(3600), min: Duration::from_secs(30), max: Duration::from_secs(3600) }
    }
}

impl Recheck {
    /// The delay after these checks: `passing`, or half the time the oldest failure has lasted
    /// (so a fix is seen soon after a change, and a long-broken domain is not hammered), within
    /// `min`..`max`. Pure.
    pub fn after(&self, checks: &[Check], failing_for: Duration) -> Duration {
        if checks.iter().all(|c| c.passed == Some(true)) {
            return self.passing;
        }
        (failing_for / 2).clamp(self.min, self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use checks::SPF;

    fn check(passed: Option<bool>) -> Check {
        Check { type_: SPF, passed, reason: "r".into(), message: "m".into() }
    }

    #[test]
    fn rechecks_back_off_while_failing() {
        let r = Recheck::default();
        let s = Duration::from_secs;
        assert_eq!(r.after(&[check(Some(true)), check(Some(true))], s(0)), s(3600));
        assert_eq!(r.after(&[check(Some(true)), check(Some(false))], s(0)), s(30));
        assert_eq!(r.after(&[check(Some(false))], s(600)), s(300));
        assert_eq!(r.after(&[check(None)], s(86_400)), s(3600));
    }
}
