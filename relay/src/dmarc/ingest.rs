//! Taking reports in, from an authenticated API key: each report must be about a domain of the
//! key's tenant (a tenant cannot feed another tenant's metrics). Used by the HTTP upload and by
//! mail to the report address.

use super::{Report, ReportError};
use crate::relay::Relay;

/// Records the reports when every one is about a domain of `key_id`'s tenant; returns a summary
/// for the client.
pub fn accept(relay: &Relay, key_id: &str, reports: &[Report]) -> Result<String, ReportError> {
    let rt = relay.runtime();
    let tenant = rt.keys.get(key_id).map(|k| k.tenant.clone()).unwrap_or_default();
    for r in reports {
        let ours = rt.domains.get(r.domain()).is_some_and(|d| d.tenant == tenant);
        if !ours {
            refused(relay, r);
            return Err(ReportError::new(format!("the report is about {}, which is not a domain of this key's tenant", r.domain())));
        }
    }
    let mut parts = Vec::new();
    for r in reports {
        super::record::record(&relay.metrics, &relay.dmarc_sources, r);
        if let Report::Aggregate(a) = r {
            relay.dmarc_summaries.add(a);
        }
        parts.push(match r {
            Report::Aggregate(a) => {
                format!("aggregate report {} from {} for {}: {} record(s), {} message(s)", a.report_id, a.org_name, a.domain, a.rows.len(), a.rows.iter().map(|x| x.count).sum::<u64>())
            }
            Report::Failure(f) => format!("failure report for {}", f.domain),
        });
        tracing::info!(key = %key_id, domain = %r.domain(), "DMARC report accepted");
        relay.audit.record("dmarc.report", serde_json::json!({ "key": key_id, "domain": r.domain(), "result": "accepted" }));
    }
    Ok(parts.join("; "))
}

fn refused(relay: &Relay, r: &Report) {
    let kind = if matches!(r, Report::Aggregate(_)) { "aggregate" } else { "failure" };
    relay.metrics.dmarc_reports.with_label_values(&[kind, "refused"]).inc();
}

/// A parse failure, counted.
pub fn malformed(relay: &Relay, e: &ReportError) {
    relay.metrics.dmarc_reports.with_label_values(&["unknown", "refused"]).inc();
    tracing::warn!(error = %e, "DMARC report refused");
}
