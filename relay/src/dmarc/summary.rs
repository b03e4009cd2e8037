//! The latest report window per domain, for the operator to show in SendingDomain statuses:
//! messages, how many passed DMARC (aligned DKIM or SPF), and the sources that failed. Reports
//! for the same window add up; a newer window replaces an older one; older reports are ignored.

use super::aggregate::Aggregate;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Window {
    pub begin: u64,
    pub end: u64,
    pub messages: u64,
    pub passed: u64,
    /// Messages that failed DMARC, by source address.
    pub failing: BTreeMap<String, u64>,
}

const MAX_FAILING_SOURCES: usize = 100;

impl Window {
    fn of(a: &Aggregate) -> Self {
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

    fn count_failing(&mut self, source: &str, n: u64) {
        if self.failing.len() < MAX_FAILING_SOURCES || self.failing.contains_key(source) {
            let e = self.failing.entry(source.to_string()).or_default();
            *e = e.saturating_add(n);
        }
    }

    /// Folds `other` in: an overlapping window adds up, a newer one replaces this one, an older
    /// one is ignored (`false`). Relays fold reports in; the operator folds relays' windows.
    pub fn absorb(&mut self, other: &Window) -> bool {
        if *self == Window::default() || other.begin >= self.end && other.end > self.end {
            *self = other.clone();
        } else if other.begin < self.end && other.end > self.begin {
            self.begin = self.begin.min(other.begin);
            self.end = self.end.max(other.end);
            self.messages = self.messages.saturating_add(other.messages);
            self.passed = self.passed.saturating_add(other.passed);
            for (source, n) in &other.failing {
                self.count_failing(source, *n);
            }
        } else {
            return false;
        }
        true
    }

    /// Adds a report to this window, or starts a new one; `false` when the report is older.
    pub fn add(&mut self, a: &Aggregate) -> bool {
        self.absorb(&Window::of(a))
    }
}

#[derive(Default)]
pub struct Summaries(Mutex<HashMap<String, Window>>);

impl Summaries {
    pub fn add(&self, a: &Aggregate) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).entry(a.domain.clone()).or_default().add(a);
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
    use crate::dmarc::aggregate::Row;

    fn report(begin: u64, end: u64, rows: &[(&str, u64, bool)]) -> Aggregate {
        let rows =
            rows.iter().map(|(ip, n, pass)| Row { source_ip: ip.parse().unwrap(), count: *n, disposition: "none".into(), dkim_pass: *pass, spf_pass: false, header_from: String::new() }).collect();
        Aggregate { org_name: "x".into(), report_id: "r".into(), begin, end, domain: "shop.example".into(), policy: "reject".into(), rows, repairs: vec![] }
    }

    #[test]
    fn windows_add_up_and_newer_ones_replace_older() {
        let mut w = Window::default();
        assert!(w.add(&report(100, 200, &[("192.0.2.1", 8, true), ("203.0.113.9", 2, false)])));
        assert!(w.add(&report(100, 200, &[("192.0.2.2", 5, true)])), "another reporter, same window");
        assert_eq!((w.messages, w.passed, w.failing.get("203.0.113.9").copied()), (15, 13, Some(2)));
        assert!(!w.add(&report(0, 100, &[("192.0.2.1", 1, true)])), "older");
        assert!(w.add(&report(200, 300, &[("192.0.2.1", 4, true)])));
        assert_eq!((w.begin, w.end, w.messages, w.passed, w.failing.len()), (200, 300, 4, 4, 0));
    }
}
