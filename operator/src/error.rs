//! The reconcile error every controller returns: each variant names the operation that failed
//! and keeps its source. The error policy counts it by kind and retries.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("reading or writing Kubernetes objects: {0}")]
    Kube(#[from] kube::Error),
    #[error("generating key material: {0}")]
    Random(#[from] cascade_core::secret::RngFailed),
    #[error("generating a DKIM key: {0}")]
    DkimKey(#[from] cascade_core::dkim_key::KeyError),
    #[error("sealing {what}: {source}")]
    Seal { what: String, source: cascade_core::seal::FormatError },
    #[error("generating the pool's self-signed certificate: {0}")]
    Certificate(#[from] cascade_core::certificate::CertificateError),
    #[error("writing the relay configuration: {0}")]
    Render(#[from] serde_saphyr::ser::Error),
    #[error("Secret {secret}: {reason}")]
    Secret { secret: String, reason: String },
    #[error("RelayPool field {field}: {reason}")]
    Spec { field: &'static str, reason: String },
    #[error("StatefulSet {0} still exists 10 s after its deletion")]
    StillThere(String),
    #[error("destroying the backup data key of tenant {tenant}: {reason}")]
    Shred { tenant: String, reason: String },
}

impl ReconcileError {
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Kube(_) => "kube",
            Self::Random(_) | Self::DkimKey(_) | Self::Seal { .. } | Self::Certificate(_) => "key",
            Self::Render(_) | Self::Secret { .. } | Self::Spec { .. } => "input",
            Self::StillThere(_) => "workload",
            Self::Shred { .. } => "key",
        }
    }
}

/// Failures in a row per object (a failure more than [`FORGET`] after the last starts again).
#[derive(Default)]
pub struct Failures(std::sync::Mutex<std::collections::HashMap<String, (u32, u64)>>);

/// A failure this long after the object's last one counts as its first again.
const FORGET: u64 = 600;

impl Failures {
    /// Records one for `key` at `now`; how many in a row now.
    pub fn bump(&self, key: &str, now: u64) -> u32 {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > 10_000 {
            map.retain(|_, (_, at)| now < *at + FORGET);
        }
        let entry = map.entry(key.to_string()).or_insert((0, now));
        entry.0 = if now >= entry.1 + FORGET { 1 } else { entry.0 + 1 };
        entry.1 = now;
        entry.0
    }

    /// Forgets `key`'s failures (it reconciled); whether it had any.
    pub fn clear(&self, key: &str) -> bool {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(key).is_some()
    }
}

/// The wait before retry number `n` (1-based): 5 s doubling, at most 5 minutes.
pub fn backoff(n: u32) -> Duration {
    Duration::from_secs((5u64 << n.saturating_sub(1).min(6)).min(300))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_and_a_quiet_spell_starts_again() {
        let f = Failures::default();
        let waits: Vec<u64> = (0..9).map(|i| backoff(f.bump("RelayPool/ns/main", 1000 + i)).as_secs()).collect();
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(f.bump("RelayPool/ns/other", 1010), 1, "per object");
        assert_eq!(f.bump("RelayPool/ns/main", 1010 + FORGET), 1, "forgotten after a quiet spell");
        assert!(f.clear("RelayPool/ns/main") && !f.clear("RelayPool/ns/main"), "a success clears, once");
        assert_eq!(f.bump("RelayPool/ns/main", 1011 + FORGET), 1);
    }
}
