//! The retry schedule for temporary failures: exponential backoff from `initial`, capped at
//! `max_delay`, with ±20 % jitter so a receiver that was down is not hit by every sender at once.
//! Pure: the jitter sample is passed in.

use std::time::Duration;

/// Delay before attempt `attempts + 1`, given `attempts` failed attempts so far (≥ 1) and a
/// uniform sample `jitter` in `[0, 1)`.
pub fn next_delay(attempts: u32, initial: Duration, max: Duration, jitter: f64) -> Duration {
    let exp = attempts.saturating_sub(1).min(30);
    let base = initial.saturating_mul(1u32 << exp).min(max);
    base.mul_f64(0.8 + 0.4 * jitter.clamp(0.0, 1.0))
}

/// Whether a message accepted at `created` has run out of time at `now` (unix seconds).
pub fn expired(created: u64, now: u64, max_age: Duration) -> bool {
    now.saturating_sub(created) >= max_age.as_secs()
}

pub fn jitter_sample() -> f64 {
    use aws_lc_rs::rand::{SecureRandom, SystemRandom};
    let mut b = [0u8; 4];
    let _ = SystemRandom::new().fill(&mut b);
    f64::from(u32::from_be_bytes(b)) / f64::from(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);
    const CAP: Duration = Duration::from_secs(4 * 3600);

    #[test]
    fn doubles_from_initial_up_to_the_cap() {
        let plain: Vec<u64> = (1..=10).map(|a| next_delay(a, MIN, CAP, 0.5).as_secs()).collect();
        assert_eq!(plain, vec![60, 120, 240, 480, 960, 1920, 3840, 7680, 14400, 14400]);
        assert_eq!(next_delay(1000, MIN, CAP, 0.5), CAP);
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        assert_eq!(next_delay(1, MIN, CAP, 0.0).as_secs(), 48);
        assert_eq!(next_delay(1, MIN, CAP, 1.0).as_secs(), 72);
        for _ in 0..100 {
            let d = next_delay(3, MIN, CAP, jitter_sample()).as_secs();
            assert!((192..=288).contains(&d), "{d}");
        }
    }

    #[test]
    fn messages_expire_after_max_age() {
        let five_days = Duration::from_secs(5 * 86_400);
        assert!(!expired(1000, 1000 + 5 * 86_400 - 1, five_days));
        assert!(expired(1000, 1000 + 5 * 86_400, five_days));
    }
}
