//! Two small, memory-bounded limiters: failed AUTH attempts per client IP (a client that fails
//! too often within a window is refused for that window), and a GCRA rate limit per API key
//! (messages per minute, bursting up to one minute's worth). Time is passed in, so tests need no
//! clock.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

const MAX_TRACKED: usize = 100_000;

pub struct AuthFailures {
    max: u32,
    window_ms: u64,
    by_ip: Mutex<HashMap<IpAddr, (u32, u64)>>,
}

impl AuthFailures {
    pub fn new(max: u32, window_ms: u64) -> Self {
        Self { max, window_ms, by_ip: Mutex::new(HashMap::new()) }
    }

    pub fn is_blocked(&self, ip: IpAddr, now_ms: u64) -> bool {
        let map = self.by_ip.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&ip).is_some_and(|&(n, start)| n >= self.max && now_ms < start + self.window_ms)
    }

    /// Records a failure; true when the IP is now blocked.
    pub fn record(&self, ip: IpAddr, now_ms: u64) -> bool {
        let mut map = self.by_ip.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_TRACKED {
            let window = self.window_ms;
            map.retain(|_, &mut (_, start)| now_ms < start + window);
            if map.len() >= MAX_TRACKED {
                map.clear();
            }
        }
        let entry = map.entry(ip).or_insert((0, now_ms));
        if now_ms >= entry.1 + self.window_ms {
            *entry = (0, now_ms);
        }
        entry.0 += 1;
        if entry.0 >= self.max {
            entry.1 = now_ms; // the block lasts one full window from the last failure
        }
        entry.0 >= self.max
    }

    pub fn clear(&self, ip: IpAddr) {
        self.by_ip.lock().unwrap_or_else(|e| e.into_inner()).remove(&ip);
    }
}

/// GCRA: one theoretical arrival time per key.
pub struct KeyRates {
    tat_ms: Mutex<HashMap<String, u64>>,
}

impl Default for KeyRates {
    fn default() -> Self {
        Self { tat_ms: Mutex::new(HashMap::new()) }
    }
}

impl KeyRates {
    /// Takes one message from `key`'s allowance of `per_minute`; false when over the limit.
    pub fn allow(&self, key: &str, per_minute: u32, now_ms: u64) -> bool {
        let interval = 60_000 / u64::from(per_minute.max(1));
        let burst = 60_000u64;
        let mut map = self.tat_ms.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_TRACKED {
            map.retain(|_, &mut tat| tat > now_ms);
        }
        let tat = map.get(key).copied().unwrap_or(now_ms).max(now_ms);
        if tat + interval > now_ms + burst {
            return false;
        }
        map.insert(key.to_string(), tat + interval);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_repeated_failures_for_one_window() {
        let f = AuthFailures::new(3, 1000);
        let ip: IpAddr = [127, 0, 0, 9].into();
        assert!(!f.record(ip, 0) && !f.record(ip, 10));
        assert!(!f.is_blocked(ip, 20));
        assert!(f.record(ip, 30));
        assert!(f.is_blocked(ip, 500) && f.is_blocked(ip, 1029));
        assert!(!f.is_blocked(ip, 1030));
        assert!(!f.is_blocked([127, 0, 0, 8].into(), 500));
        f.clear(ip);
        assert!(!f.is_blocked(ip, 31));
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let f = AuthFailures::new(2, 1000);
        let ip: IpAddr = [127, 0, 0, 9].into();
        assert!(!f.record(ip, 0));
        assert!(!f.record(ip, 5000));
    }

    #[test]
    fn gcra_allows_a_minute_of_burst_then_the_steady_rate() {
        let r = KeyRates::default();
        let allowed = (0..100).filter(|_| r.allow("k", 60, 0)).count();
        assert_eq!(allowed, 60);
        assert!(!r.allow("k", 60, 500));
        assert!(r.allow("k", 60, 1000));
        assert!(r.allow("other", 60, 1000));
    }
}
