//! Unusual sending per API key, measured against the key's own past: a minute far above its
//! recent per-minute average (rate), or a window where most outcomes failed (policy refusals and
//! bounced recipients against accepted messages). Each kind is reported at most once per
//! [`QUIET_MS`] per key. Memory is one small record per key that has sent. Time is passed in.

use cascade_crds::relay_config::KeyAnomalies;
use std::collections::HashMap;
use std::sync::Mutex;

/// Weight of each finished minute in the baseline: an exponentially weighted mean with a
/// memory of about 30 minutes.
const ALPHA: f64 = 1.0 / 30.0;
/// Failure outcomes are counted in 5-minute buckets; the window is the current and last one.
const BUCKET_MS: u64 = 5 * 60_000;
/// After a finding, the same kind is not reported again for this long.
pub const QUIET_MS: u64 = 10 * 60_000;
const MAX_TRACKED: usize = 100_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Rate,
    Failures,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Rate => "rate",
            Kind::Failures => "failures",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    pub kind: Kind,
    /// What was measured against what, for logs, audit and the operator's status.
    pub detail: String,
}

#[derive(Default)]
struct KeyState {
    minute: u64,
    count: u32,
    baseline: f64,
    bucket: u64,
    ok: [u32; 2],
    failed: [u32; 2],
    quiet_until: [u64; 2],
}

impl KeyState {
    fn roll_minute(&mut self, minute: u64) {
        if minute > self.minute {
            self.baseline += ALPHA * (f64::from(self.count) - self.baseline);
            // Idle minutes count as zero (a few hundred are enough to forget everything).
            let idle = (minute - self.minute - 1).min(500) as i32;
            self.baseline *= (1.0 - ALPHA).powi(idle);
            self.minute = minute;
            self.count = 0;
        }
    }

    fn roll_bucket(&mut self, bucket: u64) {
        if bucket > self.bucket {
            let keep = bucket == self.bucket + 1;
            self.ok = [if keep { self.ok[1] } else { 0 }, 0];
            self.failed = [if keep { self.failed[1] } else { 0 }, 0];
            self.bucket = bucket;
        }
    }

    fn report(&mut self, kind: Kind, now_ms: u64, detail: String) -> Option<Finding> {
        let slot = &mut self.quiet_until[kind as usize];
        if now_ms < *slot {
            return None;
        }
        *slot = now_ms + QUIET_MS;
        Some(Finding { kind, detail })
    }
}

#[derive(Default)]
pub struct Detector(Mutex<HashMap<String, KeyState>>);

impl Detector {
    fn with<T>(&self, key: &str, now_ms: u64, f: impl FnOnce(&mut KeyState) -> T) -> T {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_TRACKED && !map.contains_key(key) {
            map.clear();
        }
        let st = map.entry(key.to_string()).or_insert_with(|| KeyState { minute: now_ms / 60_000, bucket: now_ms / BUCKET_MS, ..Default::default() });
        f(st)
    }

    /// A message accepted for `key`.
    pub fn accepted(&self, key: &str, policy: &KeyAnomalies, now_ms: u64) -> Option<Finding> {
        self.with(key, now_ms, |st| {
            st.roll_minute(now_ms / 60_000);
            st.count += 1;
            let threshold = (f64::from(policy.rate_factor) * st.baseline).max(f64::from(policy.min_messages_per_minute));
            let rate = (f64::from(st.count) > threshold).then(|| format!("{} messages this minute; usual {:.1}/min, threshold {threshold:.0}", st.count, st.baseline));
            let rate = rate.and_then(|d| st.report(Kind::Rate, now_ms, d));
            rate.or_else(|| outcome(st, policy, false, now_ms))
        })
    }

    /// A failed outcome for `key`: a policy refusal or a bounced recipient.
    pub fn failed(&self, key: &str, policy: &KeyAnomalies, now_ms: u64) -> Option<Finding> {
        self.with(key, now_ms, |st| outcome(st, policy, true, now_ms))
    }
}

fn outcome(st: &mut KeyState, policy: &KeyAnomalies, failed: bool, now_ms: u64) -> Option<Finding> {
    st.roll_bucket(now_ms / BUCKET_MS);
    if failed {
        st.failed[1] += 1;
    } else {
        st.ok[1] += 1;
    }
    let bad = st.failed[0] + st.failed[1];
    let total = bad + st.ok[0] + st.ok[1];
    if total >= policy.min_outcomes && u64::from(bad) * 100 >= u64::from(policy.max_failure_percent) * u64::from(total) {
        return st.report(Kind::Failures, now_ms, format!("{bad} of {total} outcomes failed in the last 5-10 minutes (threshold {}%)", policy.max_failure_percent));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60_000;

    fn policy() -> KeyAnomalies {
        KeyAnomalies { rate_factor: 10, min_messages_per_minute: 50, max_failure_percent: 50, min_outcomes: 20, suspend: false }
    }

    /// Sends `per_minute` messages in each of `minutes` minutes from `start`; returns findings.
    fn send(d: &Detector, start: u64, minutes: u64, per_minute: u32) -> Vec<Finding> {
        (0..minutes).flat_map(|m| (0..per_minute).filter_map(move |i| d.accepted("k", &policy(), start + m * MIN + u64::from(i)))).collect()
    }

    #[test]
    fn a_steady_key_is_never_flagged_and_a_jump_over_its_own_baseline_is() {
        let d = Detector::default();
        assert!(send(&d, 0, 60, 20).is_empty(), "20/min for an hour is this key's normal");
        // 10 × the usual ~20/min is 200: 150 in a minute is fine, 250 is not.
        assert!(send(&d, 60 * MIN, 1, 150).is_empty());
        let found = send(&d, 61 * MIN, 1, 250);
        assert_eq!(found.len(), 1, "reported once, not for every message");
        assert_eq!(found[0].kind, Kind::Rate);
        assert!(found[0].detail.starts_with("2") && found[0].detail.contains("usual"), "{}", found[0].detail);
    }

    #[test]
    fn a_quiet_key_may_send_a_batch_up_to_the_floor() {
        let d = Detector::default();
        assert!(send(&d, 0, 1, 50).is_empty());
        assert_eq!(send(&d, 10 * MIN, 1, 51)[0].kind, Kind::Rate);
    }

    #[test]
    fn the_baseline_forgets_a_busy_past_after_idle_time() {
        let d = Detector::default();
        send(&d, 0, 60, 40);
        // Two idle hours later, 300 in a minute is far above what is left of the baseline.
        assert_eq!(send(&d, 180 * MIN, 1, 300).len(), 1);
    }

    #[test]
    fn mostly_failing_outcomes_are_flagged_once_per_quiet_period() {
        let d = Detector::default();
        let p = policy();
        for i in 0..9 {
            assert!(d.accepted("k", &p, i).is_none());
        }
        let findings: Vec<_> = (0..20).filter_map(|i| d.failed("k", &p, 100 + i)).collect();
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].kind, Kind::Failures);
        assert!(findings[0].detail.starts_with("11 of 20 outcomes failed"), "{}", findings[0].detail);
        // Another key is unaffected; after the quiet period the same key is reported again.
        assert!(d.failed("other", &p, 200).is_none());
        assert!((0..30).filter_map(|i| d.failed("k", &p, QUIET_MS + 1_000 + i)).next().is_some());
    }

    #[test]
    fn failures_age_out_of_the_window() {
        let d = Detector::default();
        let p = policy();
        for i in 0..15 {
            d.failed("k", &p, i);
        }
        // Eleven minutes later the old failures are gone: 5 failures of 20 is fine.
        let later = 11 * MIN;
        for i in 0..15 {
            assert!(d.accepted("k", &p, later + i).is_none());
        }
        assert!((0..5).filter_map(|i| d.failed("k", &p, later + 100 + i)).next().is_none());
    }
}
