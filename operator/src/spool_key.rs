//! Rotation of a pool's spool key. The relays seal every spool file with the first key of
//! `spool.key` in the Secret `<pool>-keys` and open files with any key listed, so a rotation puts
//! a new key first and keeps the newest older ones ([`KEEP`] in all: far longer than any message
//! stays queued). It happens every `spec.spool.rotateKeyEvery` (30 days by default) and whenever
//! the RelayPool's annotation `cascade-mail.com/rotate-spool-key` takes a new value. When the last
//! rotation happened (and which request it answered) is kept in the same Secret. Pure: the
//! controller applies what [`rotate`] returns and the relays reload the mounted file.

use crate::secrets::SecretData;
use std::time::Duration;

pub use crate::bundle::SPOOL_KEY;
/// Unix seconds of the last rotation.
pub const ROTATED_AT: &str = "spool.key.rotated-at";
/// The annotation value the last requested rotation answered.
pub const ANSWERED: &str = "spool.key.request";
pub const ROTATE_ANNOTATION: &str = "cascade-mail.com/rotate-spool-key";
/// Keys kept in the ring: the sealing one and three older ones.
pub const KEEP: usize = 4;

#[derive(Debug, PartialEq, Eq)]
pub enum Change {
    /// The first reconcile since rotation was tracked: the current key's age starts now.
    Tracked,
    /// A new key seals from now on (`key` is its id); `requested` when the annotation asked.
    Rotated { key: String, requested: bool },
}

/// The keys Secret's new data when something is due, else `None`.
pub fn rotate(data: &SecretData, now: u64, every: Duration, request: Option<&str>) -> Result<Option<(SecretData, Change)>, cascade_core::seal::FormatError> {
    let text = |k: &str| data.get(k).map(|b| String::from_utf8_lossy(b).trim().to_string());
    let Some(rotated_at) = text(ROTATED_AT).and_then(|t| t.parse::<u64>().ok()) else {
        let mut next = data.clone();
        next.insert(ROTATED_AT.into(), now.to_string().into_bytes());
        if let Some(r) = request {
            next.insert(ANSWERED.into(), r.as_bytes().to_vec());
        }
        return Ok(Some((next, Change::Tracked)));
    };
    let requested = request.is_some_and(|r| text(ANSWERED).as_deref() != Some(r));
    if !requested && now < rotated_at.saturating_add(every.as_secs()) {
        return Ok(None);
    }
    let ring = text(SPOOL_KEY).unwrap_or_default();
    let lines: Vec<&str> = ring.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    let highest = lines.iter().filter_map(|l| l.split_whitespace().next()?.strip_prefix('s')?.parse::<u64>().ok()).max().unwrap_or(0);
    let key = format!("s{}", highest + 1);
    let line = cascade_core::seal::KeyRing::generate_line(&key)?;
    let mut ring: Vec<String> = vec![line.trim_end().to_string()];
    ring.extend(lines.iter().take(KEEP - 1).map(|l| l.to_string()));
    let mut next = data.clone();
    next.insert(SPOOL_KEY.into(), format!("{}\n", ring.join("\n")).into_bytes());
    next.insert(ROTATED_AT.into(), now.to_string().into_bytes());
    if let Some(r) = request {
        next.insert(ANSWERED.into(), r.as_bytes().to_vec());
    }
    Ok(Some((next, Change::Rotated { key, requested })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cascade_core::seal::KeyRing;

    const DAY: u64 = 86_400;

    fn secret() -> SecretData {
        [(SPOOL_KEY.to_string(), KeyRing::generate_line("s1").unwrap().into_bytes())].into()
    }

    fn ring(data: &SecretData) -> Vec<String> {
        String::from_utf8_lossy(&data[SPOOL_KEY]).lines().map(|l| l.split_whitespace().next().unwrap().to_string()).collect()
    }

    #[test]
    fn rotates_on_schedule_and_on_request_keeping_older_keys() {
        let every = Duration::from_secs(30 * DAY);
        let base = secret();
        let (tracked, change) = rotate(&base, 1000, every, None).unwrap().unwrap();
        assert_eq!(change, Change::Tracked);
        assert_eq!(ring(&tracked), ["s1"]);
        assert_eq!(rotate(&tracked, 1000 + 29 * DAY, every, None).unwrap(), None);
        let (rotated, change) = rotate(&tracked, 1000 + 30 * DAY, every, None).unwrap().unwrap();
        assert_eq!(change, Change::Rotated { key: "s2".into(), requested: false });
        assert_eq!(ring(&rotated), ["s2", "s1"]);
        // The ring parses, seals with the new key and still opens the old one's files.
        let old = KeyRing::parse(&String::from_utf8_lossy(&base[SPOOL_KEY])).unwrap();
        let sealed = cascade_core::seal::seal_blob(&old, "q", b"x").unwrap();
        let new = KeyRing::parse(&String::from_utf8_lossy(&rotated[SPOOL_KEY])).unwrap();
        assert_eq!(new.active(), "s2");
        assert_eq!(cascade_core::seal::open_blob(&new, "q", &sealed).unwrap(), b"x");

        // A request rotates at once, once per annotation value.
        let now = 1000 + 31 * DAY;
        let (asked, change) = rotate(&rotated, now, every, Some("incident-42")).unwrap().unwrap();
        assert_eq!(change, Change::Rotated { key: "s3".into(), requested: true });
        assert_eq!(rotate(&asked, now + 1, every, Some("incident-42")).unwrap(), None);
        // Only the newest KEEP keys stay.
        let mut data = asked;
        for i in 0..3 {
            data = rotate(&data, now + 10 + i, every, Some(&format!("r{i}"))).unwrap().unwrap().0;
        }
        assert_eq!(ring(&data), ["s6", "s5", "s4", "s3"]);
    }
}
