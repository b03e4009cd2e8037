//! Small, memory-bounded limiters: failed AUTH attempts per client IP and per key id (one that
//! fails too often within a window is refused for that window), a GCRA rate limit per name
//! (messages of a key or a tenant, recipients of a key: per minute, bursting up to one minute's
//! worth), and concurrent sessions per client address. Time is passed in, so tests need no clock.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

const MAX_TRACKED: usize = 100_000;

pub struct AuthFailures<K = IpAddr> {
    max: u32,
    window_ms: u64,
    by_ip: Mutex<HashMap<K, (u32, u64)>>,
}

impl<K: Hash + Eq + Clone> AuthFailures<K> {
    pub fn new(max: u32, window_ms: u64) -> Self {
        Self { max, window_ms, by_ip: Mutex::new(HashMap::new()) }
    }

    pub fn is_blocked(&self, ip: K, now_ms: u64) -> bool {
        let map = self.by_ip.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&ip).is_some_and(|&(n, start)| n >= self.max && now_ms < start + self.window_ms)
    }

    /// Records a failure; true when the IP is now blocked.
    pub fn record(&self, ip: K, now_ms: u64) -> bool {
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

    pub fn clear(&self, ip: K) {
        self.by_ip.lock().unwrap_or_else(|e| e.into_inner()).remove(&ip);
    }
}

/// Concurrent sessions per client address.
#[derive(Default)]
pub struct ClientSessions(Mutex<HashMap<IpAddr, usize>>);

/// One session of a client; dropping it frees the slot.
pub struct ClientSlot(Arc<ClientSessions>, IpAddr);

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut map = self.0 .0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.1);
            }
        }
    }
}

impl ClientSessions {
    /// A slot for `ip` unless it already holds `max` sessions.
    pub fn enter(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<ClientSlot> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(ClientSlot(self.clone(), ip))
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

/// A tenant's share of this relay's queue, measured before one more message of `size` bytes is
/// spooled: the refusal (`451 4.3.1`, for that tenant only) when it would go over.
pub fn queue_share(queued: (u64, u64), size: u64, limits: &cascade_crds::relay_config::Limits) -> Option<crate::smtp::reply::Reply> {
    let (messages, bytes) = queued;
    let over = if messages >= limits.tenant_queued_messages {
        format!("{} messages", limits.tenant_queued_messages)
    } else if bytes.saturating_add(size) > limits.tenant_queued_bytes.0 {
        format!("{} of mail", limits.tenant_queued_bytes)
    } else {
        return None;
    };
    Some(crate::smtp::reply::Reply::new(451, "4.3.1", format!("Your tenant has {over} queued on this relay, its share; try again later")))
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
    fn sessions_per_client_are_capped_and_freed() {
        let s = Arc::new(ClientSessions::default());
        let ip: IpAddr = [127, 0, 0, 9].into();
        let (a, b) = (s.enter(ip, 2), s.enter(ip, 2));
        assert!(a.is_some() && b.is_some() && s.enter(ip, 2).is_none());
        assert!(s.enter([127, 0, 0, 8].into(), 2).is_some(), "others are not affected");
        drop(a);
        assert!(s.enter(ip, 2).is_some());
    }

    #[test]
    fn key_ids_are_blocked_like_addresses() {
        let f: AuthFailures<String> = AuthFailures::new(2, 1000);
        assert!(!f.record("ck_1".into(), 0) && f.record("ck_1".into(), 1));
        assert!(f.is_blocked("ck_1".into(), 2) && !f.is_blocked("ck_2".into(), 2));
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

    #[test]
    fn a_tenant_over_its_queue_share_is_refused_with_451() {
        let limits = cascade_crds::relay_config::Limits { tenant_queued_messages: 3, tenant_queued_bytes: cascade_crds::ByteSize(1000), ..Default::default() };
        assert_eq!(queue_share((2, 900), 100, &limits), None);
        let r = queue_share((3, 10), 1, &limits).unwrap();
        assert_eq!((r.code, r.enhanced, r.lines[0].as_ref()), (451, "4.3.1", "Your tenant has 3 messages queued on this relay, its share; try again later"));
        assert_eq!(queue_share((2, 900), 101, &limits).unwrap().code, 451);
    }
}
