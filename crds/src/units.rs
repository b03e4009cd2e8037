//! Human-readable durations (`30s`, `5m`, `2h`, `5d`) and sizes (`512KiB`, `25MiB`, or a plain
//! number of bytes) for configuration files. Both deserialize from strings and serialize back to
//! the same canonical form, and refuse anything else with a message naming the accepted forms.

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use std::{fmt, time::Duration};

/// A duration written as a number and a unit: `ms`, `s`, `m`, `h` or `d` (for example `90s`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(pub Duration);

/// A size in bytes, written as a plain number or with a unit: `B`, `KiB`, `MiB`, `GiB`
/// (also `K`, `M`, `G`, `KB`, `MB`, `GB`, read as powers of 1024).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl HumanDuration {
    pub const fn secs(s: u64) -> Self {
        Self(Duration::from_secs(s))
    }
    pub const fn mins(m: u64) -> Self {
        Self(Duration::from_secs(m * 60))
    }
    pub const fn hours(h: u64) -> Self {
        Self(Duration::from_secs(h * 3600))
    }
    pub const fn days(d: u64) -> Self {
        Self(Duration::from_secs(d * 86_400))
    }
}

fn split_number(s: &str) -> Option<(u64, &str)> {
    let s = s.trim();
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let n = s[..end].parse().ok()?;
    Some((n, s[end..].trim()))
}

impl std::str::FromStr for HumanDuration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("invalid duration {s:?}: expected a number and a unit (ms, s, m, h, d), e.g. \"30s\"");
        let (n, unit) = split_number(s).ok_or_else(bad)?;
        let ms: u64 = match unit {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(bad()),
        };
        n.checked_mul(ms).map(|ms| Self(Duration::from_millis(ms))).ok_or_else(bad)
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis() as u64;
        for (unit, size) in [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)] {
            if ms > 0 && ms.is_multiple_of(size) {
                return write!(f, "{}{unit}", ms / size);
            }
        }
        write!(f, "{ms}ms")
    }
}

impl std::str::FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("invalid size {s:?}: expected bytes or a number with KiB, MiB or GiB, e.g. \"25MiB\"");
        let (n, unit) = split_number(s).ok_or_else(bad)?;
        let mult: u64 = match unit {
            "" | "B" => 1,
            "K" | "KB" | "KiB" => 1 << 10,
            "M" | "MB" | "MiB" => 1 << 20,
            "G" | "GB" | "GiB" => 1 << 30,
            _ => return Err(bad()),
        };
        n.checked_mul(mult).map(Self).ok_or_else(bad)
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (unit, size) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
            if self.0 > 0 && self.0.is_multiple_of(size) {
                return write!(f, "{}{unit}", self.0 / size);
            }
        }
        write!(f, "{}", self.0)
    }
}

macro_rules! serde_via_str {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl de::Visitor<'_> for V {
                    type Value = $t;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str(stringify!($t))
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$t, E> {
                        v.parse().map_err(E::custom)
                    }
                    fn visit_u64<E: de::Error>(self, v: u64) -> Result<$t, E> {
                        v.to_string().parse().map_err(E::custom)
                    }
                }
                d.deserialize_any(V)
            }
        }
    };
}
serde_via_str!(HumanDuration);
serde_via_str!(ByteSize);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_print_canonically() {
        for (text, secs, canon) in [("30s", 30, "30s"), ("5m", 300, "5m"), ("120m", 7200, "2h"), ("5d", 432_000, "5d")] {
            let d: HumanDuration = text.parse().unwrap();
            assert_eq!(d.0, Duration::from_secs(secs), "{text}");
            assert_eq!(d.to_string(), canon);
        }
        assert_eq!("250ms".parse::<HumanDuration>().unwrap().0, Duration::from_millis(250));
    }

    #[test]
    fn bad_durations_name_the_accepted_units() {
        for bad in ["", "5", "5w", "s", "-1s", "99999999999999999999d"] {
            let err = bad.parse::<HumanDuration>().unwrap_err();
            assert!(err.contains("ms, s, m, h, d"), "{bad}: {err}");
        }
    }

    #[test]
    fn sizes_parse_and_print() {
        assert_eq!("25MiB".parse::<ByteSize>().unwrap().0, 25 << 20);
        assert_eq!("1000".parse::<ByteSize>().unwrap().0, 1000);
        assert_eq!("2K".parse::<ByteSize>().unwrap(), ByteSize(2048));
        assert_eq!(ByteSize(25 << 20).to_string(), "25MiB");
        assert!("12 parsecs".parse::<ByteSize>().unwrap_err().contains("KiB, MiB or GiB"));
    }
}
