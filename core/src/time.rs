//! Wall-clock helpers on jiff: unix seconds, RFC 5322 `Date:` values, and RFC 3339 timestamps
//! (the `expiresAt` of API keys, status times). Everything Cascade writes is UTC; RFC 3339 input
//! may carry any offset and is normalised to UTC.

use jiff::{tz::TimeZone, Timestamp};

pub fn now_unix() -> u64 {
    u64::try_from(Timestamp::now().as_second()).unwrap_or(0)
}

pub fn now_unix_ms() -> u64 {
    u64::try_from(Timestamp::now().as_millisecond()).unwrap_or(0)
}

fn at(unix: u64) -> Timestamp {
    i64::try_from(unix).ok().and_then(|s| Timestamp::from_second(s).ok()).unwrap_or(Timestamp::MAX)
}

/// `Sat, 28 Nov 2026 16:20:00 +0000`
pub fn rfc5322_date(unix: u64) -> String {
    jiff::fmt::rfc2822::to_string(&at(unix).to_zoned(TimeZone::UTC)).unwrap_or_default()
}

/// `2026-11-28T16:30:00Z`
pub fn rfc3339_utc(unix: u64) -> String {
    at(unix).to_string()
}

/// Parses an RFC 3339 timestamp with any offset (`Z`, `+02:00`, fractional seconds) into unix
/// seconds (UTC). Times before 1970 are refused.
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    // jiff also accepts a few ISO 8601 forms RFC 3339 does not (`2026-11-28T16:30Z`); require
    // seconds and an explicit offset, as RFC 3339 does.
    let b = s.as_bytes();
    if b.len() < 20 || b.get(10).is_none_or(|c| !matches!(c, b'T' | b't')) || b.get(16) != Some(&b':') {
        return None;
    }
    let t: Timestamp = s.parse().ok()?;
    u64::try_from(t.as_second()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc5322_dates() {
        assert_eq!(rfc5322_date(0), "Thu, 1 Jan 1970 00:00:00 +0000");
        assert_eq!(rfc5322_date(1_795_883_400), "Sat, 28 Nov 2026 16:30:00 +0000");
    }

    #[test]
    fn parses_rfc3339_with_any_offset_and_rejects_the_rest() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2026-11-28T16:30:00Z"), Some(1_795_883_400));
        assert_eq!(parse_rfc3339("2026-11-28T16:30:00.250Z"), Some(1_795_883_400));
        assert_eq!(parse_rfc3339("2026-11-28T18:30:00+02:00"), Some(1_795_883_400));
        assert_eq!(parse_rfc3339("2026-11-28t16:30:00z"), Some(1_795_883_400));
        assert_eq!(rfc3339_utc(1_795_883_400), "2026-11-28T16:30:00Z");
        assert_eq!(parse_rfc3339(&rfc3339_utc(86_400 * 40 + 7)), Some(86_400 * 40 + 7));
        for bad in ["2026-11-28", "2026-11-28T16:30Z", "2026-11-28T16:30:00", "2026-04-31T00:00:00Z", "2026-13-01T00:00:00Z", "1969-12-31T23:59:59Z", "garbage"] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
}
