//! Operator metrics, prefixed `cascade_operator_`.

use prometheus::{IntCounterVec, Opts, Registry};

pub struct Metrics {
    pub registry: Registry,
    pub reconcile_errors: IntCounterVec,
}

impl Default for Metrics {
    fn default() -> Self {
        let registry = Registry::new();
        let reconcile_errors = IntCounterVec::new(Opts::new("cascade_operator_reconcile_errors_total", "Failed reconciles, by kind and error"), &["kind", "error"]).expect("valid metric");
        registry.register(Box::new(reconcile_errors.clone())).expect("unique metric");
        Self { registry, reconcile_errors }
    }
}
