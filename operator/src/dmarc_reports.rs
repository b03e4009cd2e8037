//! DMARC report summaries for SendingDomain statuses: each relay of a pool answers
//! `GET /dmarc/summary` with its latest report window per domain; the pool merges them (pure:
//! [`merge`]) into `status.dmarcReports`.

use cascade_core::dmarc::Window;
use cascade_crds::v1alpha1::DmarcReportSummary;
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// One relay's summaries; `None` when it does not answer (it is then left out).
pub async fn fetch(addr: SocketAddr, tls: Option<&cascade_core::http_client::Tls>) -> Option<BTreeMap<String, Window>> {
    crate::relay_admin::get_json(addr, tls, "/dmarc/summary").await
}

/// The summaries of every relay, merged per domain: the newest window wins; relays that saw
/// reports for the same window add up.
pub fn merge(per_relay: &[BTreeMap<String, Window>]) -> BTreeMap<String, DmarcReportSummary> {
    let mut windows: BTreeMap<String, Window> = BTreeMap::new();
    for relay in per_relay {
        for (domain, w) in relay {
            windows.entry(domain.clone()).or_default().absorb(w);
        }
    }
    windows
        .into_iter()
        .filter(|(_, w)| w.messages > 0)
        .map(|(domain, w)| {
            let mut failing: Vec<(&String, &u64)> = w.failing.iter().collect();
            failing.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            let summary = DmarcReportSummary {
                window_begin: cascade_core::time::rfc3339_utc(w.begin),
                window_end: cascade_core::time::rfc3339_utc(w.end),
                messages: w.messages,
                pass_rate: format!("{:.1}%", w.passed as f64 * 100.0 / w.messages as f64),
                failing_sources: failing.into_iter().take(5).map(|(s, n)| format!("{s} ({n})")).collect(),
            };
            (domain, summary)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(begin: u64, end: u64, messages: u64, passed: u64, failing: &[(&str, u64)]) -> Window {
        Window { begin, end, messages, passed, failing: failing.iter().map(|(s, n)| (s.to_string(), *n)).collect() }
    }

    #[test]
    fn relays_add_up_per_window_and_the_newest_window_wins() {
        let a = BTreeMap::from([("shop.example".to_string(), window(1_800_000_000, 1_800_086_400, 80, 78, &[("203.0.113.9", 2)]))]);
        let b = BTreeMap::from([("shop.example".to_string(), window(1_800_000_000, 1_800_086_400, 20, 12, &[("198.51.100.1", 8)])), ("old.example".to_string(), window(1, 2, 0, 0, &[]))]);
        let m = merge(&[a.clone(), b]);
        assert_eq!(m.len(), 1, "windows without messages are left out");
        let s = &m["shop.example"];
        assert_eq!((s.messages, s.pass_rate.as_str(), s.window_begin.as_str()), (100, "90.0%", "2027-01-15T08:00:00Z"));
        assert_eq!(s.failing_sources, ["198.51.100.1 (8)", "203.0.113.9 (2)"]);
        let newer = BTreeMap::from([("shop.example".to_string(), window(1_800_086_400, 1_800_172_800, 10, 10, &[]))]);
        assert_eq!(merge(&[a, newer])["shop.example"].pass_rate, "100.0%");
    }
}
