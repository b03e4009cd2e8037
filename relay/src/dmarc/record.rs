//! Reports into Prometheus series: messages by domain, disposition and aligned DKIM/SPF result;
//! messages by domain and source address (at most [`MAX_SOURCES`] addresses per domain, the rest
//! counted as `other`, so a report cannot blow up the series); failure reports by domain and type.

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
            for r in &a.rows {
                metrics.dmarc_messages.with_label_values(&[&a.domain, &r.disposition, word(r.dkim_pass), word(r.spf_pass)]).inc_by(r.count);
                let aligned = if r.dkim_pass || r.spf_pass { "yes" } else { "no" };
                let source = sources.label(&a.domain, r.source_ip.to_string());
                metrics.dmarc_sources.with_label_values(&[&a.domain, &source, aligned]).inc_by(r.count);
            }
        }
        Report::Failure(f) => {
            metrics.dmarc_reports.with_label_values(&["failure", "accepted"]).inc();
            metrics.dmarc_failures.with_label_values(&[&f.domain, f.auth_failure.as_deref().unwrap_or(&f.feedback_type)]).inc();
        }
    }
}
