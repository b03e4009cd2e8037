//! `kubectl cascade dns NAMESPACE/DOMAIN`: the records a SendingDomain needs, as the operator
//! computed them (`status.records`, and the ownership challenge when the domain is claimed
//! rather than assigned), in zone-file form and as an external-dns `DNSEndpoint`, then the same
//! SPF, DKIM, DMARC (and ownership) checks the operator runs, against live DNS.

use super::output::{self, Format, Table};
use super::{Outcome, PluginError};
use crate::dns::{checks, domain_checks, Dns};
use cascade_crds::v1alpha1::{DkimKey, DnsRecord, SendingDomain};
use kube::api::{Api, ListParams};
use kube::ResourceExt;
use serde_json::json;

/// `NAMESPACE/DOMAIN`, or `DOMAIN` in `namespace`.
pub fn parse_target<'a>(target: &'a str, namespace: &'a str) -> (&'a str, &'a str) {
    target.split_once('/').unwrap_or((namespace, target))
}

/// One record as a zone-file line: absolute name, TTL, class, type, the value quoted and split
/// into strings of at most 255 bytes (RFC 1035's limit; DKIM RSA keys are longer).
pub fn zone_line(r: &DnsRecord) -> String {
    let name = if r.name.ends_with('.') { r.name.clone() } else { format!("{}.", r.name) };
    let value = match r.type_.as_str() {
        "TXT" => r.value.as_bytes().chunks(255).map(|c| format!("\"{}\"", String::from_utf8_lossy(c).replace('"', "\\\""))).collect::<Vec<_>>().join(" "),
        _ => r.value.clone(),
    };
    format!("{name} 300 IN {} {value}", r.type_)
}

/// The records to publish for `d`: its status' records and its ownership challenge.
pub fn records(d: &SendingDomain) -> Vec<DnsRecord> {
    let st = d.status.clone().unwrap_or_default();
    let mut all = st.records;
    if let Some(o) = st.ownership {
        all.push(DnsRecord { name: o.name, type_: "TXT".into(), value: o.value });
    }
    all
}

pub async fn run(client: &kube::Client, namespace: &str, target: &str, nameservers: &[std::net::SocketAddr], no_check: bool, format: Format) -> Outcome {
    let (ns, wanted) = parse_target(target, namespace);
    let wanted = wanted.trim_end_matches('.');
    let domains: Api<SendingDomain> = Api::namespaced(client.clone(), ns);
    let list = domains.list(&ListParams::default()).await.map_err(PluginError::api(format!("listing SendingDomains in {ns}")))?;
    let d = list.items.into_iter().find(|d| d.spec.domain == wanted || d.name_any() == wanted).ok_or_else(|| PluginError::NotFound(format!("no SendingDomain for {wanted} in namespace {ns}")))?;
    let recs = records(&d);
    let endpoint = crate::external_dns::endpoint(&d, &recs);
    let mut healthy = !recs.is_empty();
    let mut checked = Vec::new();
    if !no_check {
        let keys: Api<DkimKey> = Api::namespaced(client.clone(), ns);
        let keys = keys.list(&ListParams::default()).await.map_err(PluginError::api(format!("listing DkimKeys in {ns}")))?.items;
        let signing = crate::render::evaluate::signing_keys(&d, &keys).map_err(|e| PluginError::Other(format!("SendingDomain {ns}/{}: {e}", d.name_any())))?;
        let dns = Dns::new(nameservers).map_err(|e| PluginError::Other(format!("DNS: {e}")))?;
        let mut found = domain_checks(&dns, &d, &signing).await;
        if let Some(o) = d.status.as_ref().and_then(|s| s.ownership.clone()) {
            found.push(checks::ownership(&d.spec.domain, &o, &dns.txt(&o.name).await));
        }
        healthy &= found.iter().all(|c| c.passed == Some(true));
        checked = found;
    }
    let verdict = |p: Option<bool>| match p {
        Some(true) => "True",
        Some(false) => "False",
        None => "Unknown",
    };
    let checks_doc: Vec<_> = checked.iter().map(|c| json!({ "type": c.type_, "passed": verdict(c.passed), "reason": c.reason, "message": c.message })).collect();
    let doc = json!({ "namespace": ns, "name": d.name_any(), "domain": d.spec.domain, "records": recs, "zoneFile": recs.iter().map(zone_line).collect::<Vec<_>>(), "dnsEndpoint": endpoint, "checks": checks_doc, "healthy": healthy });
    output::print(format, &doc, || {
        let mut out = format!("; SendingDomain {ns}/{} ({}): publish these records\n", d.name_any(), d.spec.domain);
        if recs.is_empty() {
            out.push_str("; (none yet: the operator has not computed them; see the SendingDomain's Ready condition)\n");
        }
        for r in &recs {
            out.push_str(&zone_line(r));
            out.push('\n');
        }
        out.push_str("\n# Or let external-dns publish them (RelayPool spec.externalDns does this for you):\n");
        out.push_str(&serde_saphyr::to_string(&endpoint).unwrap_or_default());
        if !no_check {
            let mut t = Table::new(Some("\nLIVE CHECK"), &["CHECK", "PASSED", "REASON", "MESSAGE"]);
            for c in &checked {
                t.row(vec![c.type_.to_string(), verdict(c.passed).to_string(), c.reason.clone(), c.message.clone()]);
            }
            t.render(&mut out);
        }
        out
    });
    Ok(healthy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_lines_are_absolute_and_split_long_txt_values() {
        let short = DnsRecord { name: "_dmarc.shop.example.".into(), type_: "TXT".into(), value: "v=DMARC1; p=reject".into() };
        assert_eq!(zone_line(&short), "_dmarc.shop.example. 300 IN TXT \"v=DMARC1; p=reject\"");
        let long = DnsRecord { name: "s1._domainkey.shop.example".into(), type_: "TXT".into(), value: format!("v=DKIM1; k=rsa; p={}", "A".repeat(400)) };
        let line = zone_line(&long);
        assert!(line.starts_with("s1._domainkey.shop.example. 300 IN TXT \"v=DKIM1; k=rsa; p=AAA"), "{line}");
        let strings: Vec<&str> = line.split("TXT ").nth(1).unwrap().split("\" \"").collect();
        assert_eq!(strings.len(), 2, "{line}");
        assert_eq!(line.matches('A').count(), 400, "nothing lost in the split");
        assert_eq!(parse_target("shop/shop.example", "default"), ("shop", "shop.example"));
        assert_eq!(parse_target("shop.example", "blog"), ("blog", "shop.example"));
    }
}
