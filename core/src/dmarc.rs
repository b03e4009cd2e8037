//! The DMARC aggregate summary a relay serves on `GET /dmarc/summary` and the operator folds
//! into SendingDomain statuses: the latest report window per domain.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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
    /// Counts `n` failing messages from `source` (at most 100 sources are kept).
    pub fn count_failing(&mut self, source: &str, n: u64) {
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
}
