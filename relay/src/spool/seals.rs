//! How many times each spool key has sealed a file. Every seal draws a random 96-bit AES-GCM
//! nonce, and NIST SP 800-38D bounds that to 2^32 seals per key; the counts persist in
//! `seals.json` in the spool directory (saved every [`SAVE_EVERY`] seals and when asked), are
//! exported as a metric, and a warning is logged from [`WARN_AT`] on, well before the bound, so
//! the key is rotated in time. The pool's relays share a key: the metric summed over them is
//! what counts (see the PrometheusRule).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A quarter of the 2^32 bound: rotate from here.
pub const WARN_AT: u64 = 1 << 30;
pub const SAVE_EVERY: u64 = 1000;

#[derive(Debug)]
pub struct Seals {
    path: PathBuf,
    counts: BTreeMap<String, u64>,
    unsaved: u64,
}

impl Seals {
    /// The counts saved in `dir` (none yet: zero).
    pub fn load(dir: &Path) -> Self {
        let path = dir.join("seals.json");
        let counts = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        Self { path, counts, unsaved: 0 }
    }

    /// Counts one seal under `key`; returns the count when it warrants a warning (at `WARN_AT`
    /// and every 2^26 seals after it).
    pub fn add(&mut self, key: &str) -> Option<u64> {
        let n = self.counts.entry(key.to_string()).or_default();
        *n += 1;
        let count = *n;
        self.unsaved += 1;
        if self.unsaved >= SAVE_EVERY {
            self.save();
        }
        (count >= WARN_AT && (count - WARN_AT).is_multiple_of(1 << 26)).then_some(count)
    }

    pub fn counts(&self) -> &BTreeMap<String, u64> {
        &self.counts
    }

    /// Writes the counts (temporary file, rename); a failure only costs precision.
    pub fn save(&mut self) {
        let tmp = self.path.with_extension("json.tmp");
        let ok = serde_json::to_vec(&self.counts).ok().is_some_and(|b| std::fs::write(&tmp, b).and_then(|()| std::fs::rename(&tmp, &self.path)).is_ok());
        if ok {
            self.unsaved = 0;
        }
    }

    #[cfg(test)]
    pub fn set(&mut self, key: &str, n: u64) {
        self.counts.insert(key.to_string(), n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_persist_and_warn_before_the_bound() {
        let dir = crate::spool::tests::temp_dir("seals");
        let mut s = Seals::load(&dir);
        assert_eq!(s.add("k1"), None);
        s.set("k1", WARN_AT - 1);
        assert_eq!(s.add("k1"), Some(WARN_AT));
        assert_eq!(s.add("k1"), None);
        s.save();
        let again = Seals::load(&dir);
        assert_eq!(again.counts()["k1"], WARN_AT + 1);
        let _ = std::fs::remove_dir_all(dir);
    }
}
