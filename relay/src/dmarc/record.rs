//! Reports into Prometheus series: messages by domain, disposition and aligned DKIM/SPF result;
//! messages by domain and source address (at most [`MAX_SOURCES`] addresses per domain, the rest
//! counted as `other`, so a report cannot blow up the series); failure reports by domain and type.
//! Every label value taken from report text is mapped to a closed set (with `other`): a report
//! is attacker input and one report must not add series without bound.

use super::Report;
use crate::metrics::Metrics;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

pub const MAX_SOURCES: usize = 100;

/// The source addresses already given their own series, per domain.
#[derive(Default)]
pub struct Sources(Mutex<HashMap<String, HashSet<String>>>);

impl Sources {
    fn label(&self, domain: &str, source: String) -> String {
        let mut seen = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let set = seen.entry(domain.to_string()).or_default();
        if set.contains(&source) || set.len() < MAX_SOURCES {
            set.insert(source.clone());
            source
        } else {
            "other".into()
        }
    }
}

/// RFC 7489 section 6.3 `p=` values, as a report's `disposition` carries them.
const DISPOSITIONS: &[&str] = &["none", "quarantine", "reject"];
/// RFC 6591 `Auth-Failure` values, then RFC 5965 `Feedback-Type` values.
const FAILURE_TYPES: &[&str] = &["adsp", "bodyhash", "revoked", "signature", "spf", "dmarc", "dkim", "auth-failure", "abuse", "fraud", "virus", "not-spam"];

/// `value` when it is one of `known`, else `other`.
fn closed(value: &str, known: &[&'static str]) -> &'static str {
    known.iter().copied().find(|k| k.eq_ignore_ascii_case(value.trim())).unwrap_or("other")
}

fn word(pass: bool) -> &'static str {
    if pass {
        "pass"
    } else {
        "fail"
    }
}

pub fn record(metrics: &Metrics, sources: &Sources, report: &Report) {
    match report {
        Report::Aggregate(a) => {
            metrics.dmarc_reports.with_label_values(&["aggregate", "accepted"]).inc();
            for repair in &a.repairs {
                metrics.dmarc_repairs.with_label_values(&[repair.label()]).inc();
            }
            for r in &a.rows {
                metrics.dmarc_messages.with_label_values(&[&a.domain, closed(&r.disposition, DISPOSITIONS), word(r.dkim_pass), word(r.spf_pass)]).inc_by(r.count);
                let aligned = if r.dkim_pass || r.spf_pass { "yes" } else { "no" };
                let source = sources.label(&a.domain, r.source_ip.to_string());
                metrics.dmarc_sources.with_label_values(&[&a.domain, &source, aligned]).inc_by(r.count);
            }
        }
        Report::Failure(f) => {
            metrics.dmarc_reports.with_label_values(&["failure", "accepted"]).inc();
            metrics.dmarc_failures.with_label_values(&[&f.domain, closed(f.auth_failure.as_deref().unwrap_or(&f.feedback_type), FAILURE_TYPES)]).inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dmarc::aggregate::{Aggregate, Row};
    use crate::dmarc::failure::Failure;

    #[test]
    fn free_text_from_reports_never_becomes_new_label_values() {
        let metrics = Metrics::default();
        let sources = Sources::default();
        let rows = (0..1000)
            .map(|i| Row { source_ip: "192.0.2.1".parse().unwrap(), count: 1, disposition: format!("d{i}"), dkim_pass: true, spf_pass: false, header_from: "shop.example".into() })
            .chain(std::iter::once(Row { source_ip: "192.0.2.1".parse().unwrap(), count: 1, disposition: "Reject".into(), dkim_pass: true, spf_pass: false, header_from: "shop.example".into() }))
            .collect();
        let report = Aggregate { org_name: "x".into(), report_id: "1".into(), begin: 0, end: 1, domain: "shop.example".into(), policy: "reject".into(), rows, repairs: vec![] };
        record(&metrics, &sources, &Report::Aggregate(report));
        for i in 0..1000 {
            let failure = Failure { feedback_type: format!("type-{i}"), domain: "shop.example".into(), source_ip: None, auth_failure: (i % 2 == 0).then(|| format!("f{i}")) };
            record(&metrics, &sources, &Report::Failure(failure));
        }
        let dkim = Failure { feedback_type: "auth-failure".into(), domain: "shop.example".into(), source_ip: None, auth_failure: Some("dkim".into()) };
        record(&metrics, &sources, &Report::Failure(dkim));
        let text = metrics.render();
        let series = |name: &str| text.lines().filter(|l| l.starts_with(name)).map(str::to_string).collect::<Vec<_>>();
        let messages = series("cascade_relay_dmarc_messages_total{");
        assert_eq!(messages.len(), 2, "{messages:?}");
        assert!(messages.iter().any(|l| l.contains("disposition=\"other\"") && l.ends_with(" 1000")));
        assert!(messages.iter().any(|l| l.contains("disposition=\"reject\"")));
        let failures = series("cascade_relay_dmarc_failure_reports_total{");
        assert_eq!(failures.len(), 2, "{failures:?}");
    }
}
