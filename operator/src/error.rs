//! The reconcile error every controller returns: each variant names the operation that failed
//! and keeps its source. The error policy counts it by kind and retries.

use kube::runtime::controller::Action;
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
}

impl ReconcileError {
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Kube(_) => "kube",
            Self::Random(_) | Self::DkimKey(_) | Self::Seal { .. } | Self::Certificate(_) => "key",
            Self::Render(_) | Self::Secret { .. } | Self::Spec { .. } => "input",
            Self::StillThere(_) => "workload",
        }
    }
}

/// Counts the failure by kind and error, logs it, and retries soon.
pub fn record(metrics: &crate::metrics::Metrics, kind: &str, name: &str, error: &ReconcileError) -> Action {
    metrics.reconcile_errors.with_label_values(&[kind, error.metric_label()]).inc();
    tracing::warn!(kind, name, %error, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(15))
}
