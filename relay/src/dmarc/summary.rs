//! The latest report window per domain, for the operator to show in SendingDomain statuses:
//! messages, how many passed DMARC (aligned DKIM or SPF), and the sources that failed. Reports
//! for the same window add up; a newer window replaces an older one; older reports are ignored.

use super::aggregate::Aggregate;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

pub use cascade_core::dmarc::Window;

fn window_of(a: &Aggregate) -> Window {
    let mut w = Window { begin: a.begin, end: a.end, ..Default::default() };
    for r in &a.rows {
        w.messages = w.messages.saturating_add(r.count);
        if r.dkim_pass || r.spf_pass {
            w.passed = w.passed.saturating_add(r.count);
        } else {
            w.count_failing(&r.source_ip.to_string(), r.count);
        }
    }
    w
}

#[derive(Default)]
pub struct Summaries(Mutex<HashMap<String, Window>>);

impl Summaries {
    pub fn add(&self, a: &Aggregate) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).entry(a.domain.clone()).or_default().absorb(&window_of(a));
    }

    /// Every domain's window, as JSON (`GET /dmarc/summary`).
    pub fn json(&self) -> String {
        let map: BTreeMap<String, Window> = self.0.lock().unwrap_or_else(|e| e.into_inner()).iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        serde_json::to_string(&map).unwrap_or_else(|_| "{}".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Adds a report to `w`, or starts a new window; `false` when the report is older.
    fn add(w: &mut Window, a: &Aggregate) -> bool {
        w.absorb(&window_of(a))
    }
    use crate::dmarc::aggregate::Row;

    fn report(begin: u64, end: u64, rows: &[(&str, u64, bool)]) -> Aggregate {
        let rows =
            rows.iter().map(|(ip, n, pass)| Row { source_ip: ip.parse().unwrap(), count: *n, disposition: "none".into(), dkim_pass: *pass, spf_pass: false, header_from: String::new() }).collect();
        Aggregate { org_name: "x".into(), report_id: "r".into(), begin, end, domain: "shop.example".into(), policy: "reject".into(), rows, repairs: vec![] }
    }

    #[test]
    fn windows_add_up_and_newer_ones_replace_older() {
        let mut w = Window::default();
        assert!(add(&mut w, &report(100, 200, &[("192.0.2.1", 8, true), ("203.0.113.9", 2, false)])));
        assert!(add(&mut w, &report(100, 200, &[("192.0.2.2", 5, true)])), "another reporter, same window");
        assert_eq!((w.messages, w.passed, w.failing.get("203.0.113.9").copied()), (15, 13, Some(2)));
        assert!(!add(&mut w, &report(0, 100, &[("192.0.2.1", 1, true)])), "older");
        assert!(add(&mut w, &report(200, 300, &[("192.0.2.1", 4, true)])));
        assert_eq!((w.begin, w.end, w.messages, w.passed, w.failing.len()), (200, 300, 4, 4, 0));
    }
}
