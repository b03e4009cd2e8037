//! `cascade-operator check-dns -f FILE... [--nameserver IP:PORT]`: the operator's DNS checks
//! from the command line, for people debugging their DNS and for GitOps pipelines. Resources
//! come from YAML (`kubectl get sendingdomains,dkimkeys -o yaml` includes the DkimKey statuses
//! whose `txtValue` the DKIM records are compared with).

use crate::dns::{checks::Check, domain_checks, Dns};
use crate::render::evaluate::{effective_dkim_keys, key_of, signing_keys};
use std::net::SocketAddr;
use std::path::PathBuf;

/// One domain's results.
pub struct DomainReport {
    pub namespace: String,
    pub name: String,
    pub domain: String,
    pub checks: Vec<Check>,
}

pub async fn check(files: &[PathBuf], nameservers: &[SocketAddr]) -> anyhow::Result<Vec<DomainReport>> {
    let inputs = crate::render::read_inputs(files)?;
    if inputs.domains.is_empty() {
        anyhow::bail!("no SendingDomain in the input");
    }
    let dns = Dns::new(nameservers).map_err(|e| anyhow::anyhow!(e))?;
    let keys = effective_dkim_keys(&inputs);
    let mut out = Vec::new();
    for d in &inputs.domains {
        let (namespace, name) = key_of(d);
        let signing = signing_keys(d, &keys).map_err(|e| anyhow::anyhow!("SendingDomain {namespace}/{name}: {e}"))?;
        out.push(DomainReport { namespace, name, domain: d.spec.domain.clone(), checks: domain_checks(&dns, d, &signing).await });
    }
    Ok(out)
}

/// The SendingDomains in `files` whose ownership challenge DNS answers now (`render
/// --nameserver`), all verified at the same time (creation time, then the name, decide).
pub async fn verified_claims(files: &[PathBuf], nameservers: &[SocketAddr]) -> anyhow::Result<std::collections::BTreeMap<(String, String), u64>> {
    let inputs = crate::render::read_inputs(files)?;
    let dns = Dns::new(nameservers).map_err(|e| anyhow::anyhow!(e))?;
    let now = cascade_core::time::now_unix();
    let mut out = std::collections::BTreeMap::new();
    for d in &inputs.domains {
        let challenge = crate::render::evaluate::ownership::challenge(d);
        if crate::dns::checks::ownership(&d.spec.domain, &challenge, &dns.txt(&challenge.name).await).passed == Some(true) {
            out.insert(key_of(d), now);
        }
    }
    Ok(out)
}

/// The table `check-dns` prints; returns it and whether every check passed.
pub fn render(reports: &[DomainReport]) -> (String, bool) {
    let mut text = String::new();
    let mut all = true;
    for r in reports {
        text.push_str(&format!("SendingDomain {}/{} ({})\n", r.namespace, r.name, r.domain));
        for c in &r.checks {
            let status = match c.passed {
                Some(true) => "True",
                Some(false) => "False",
                None => "Unknown",
            };
            all &= c.passed == Some(true);
            text.push_str(&format!("  {:<14} {:<8} {:<22} {}\n", c.type_, status, c.reason, c.message));
        }
    }
    (text, all)
}
