//! The values of the DNS records a sending domain publishes: what `render` and the pool put in
//! `status.records`, and what the DNS checks expect to find. Pure.

use cascade_crds::v1alpha1::{DmarcExpectation, DmarcPolicy, SpfExpectation};

pub fn spf_value(spec: &SpfExpectation) -> Option<String> {
    if let Some(inc) = &spec.include {
        return Some(format!("v=spf1 include:{inc} -all"));
    }
    if spec.egress.is_empty() {
        return None;
    }
    let mechs: Vec<String> = spec.egress.iter().map(|c| if c.contains(':') { format!("ip6:{c}") } else { format!("ip4:{c}") }).collect();
    Some(format!("v=spf1 {} -all", mechs.join(" ")))
}

pub fn dmarc_value(spec: &DmarcExpectation) -> String {
    let p = match spec.policy {
        DmarcPolicy::None => "none",
        DmarcPolicy::Quarantine => "quarantine",
        DmarcPolicy::Reject => "reject",
    };
    match &spec.rua {
        Some(rua) => format!("v=DMARC1; p={p}; rua={rua}"),
        None => format!("v=DMARC1; p={p}"),
    }
}
