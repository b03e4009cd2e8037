//! Operator metrics, prefixed `cascade_operator_`, and the probes its HTTP listener serves
//! (`/metrics`, `/healthz`, `/readyz`, with the relay's tiny HTTP responder).

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

pub struct Metrics {
    pub registry: Registry,
    pub reconciles: IntCounterVec,
    pub reconcile_errors: IntCounterVec,
    pub reconcile_duration: HistogramVec,
    pub managed: IntGaugeVec,
    pub leader: IntGauge,
    pub dns_checks: IntGaugeVec,
    pub dkim_phase: IntGaugeVec,
    pub dkim_age: IntGaugeVec,
    pub dkim_next_rotation: IntGaugeVec,
    /// Per RelayPool: replicas `desired`, `ready`, and relays on the `current` configuration.
    pub pool_replicas: IntGaugeVec,
    /// Per RelayPool: 1 while a relay refuses the configuration it was given.
    pub pool_config_refused: IntGaugeVec,
    ready: AtomicBool,
}

impl Default for Metrics {
    fn default() -> Self {
        let registry = Registry::new();
        let reconciles = IntCounterVec::new(Opts::new("cascade_operator_reconciles_total", "Reconciles started, by kind"), &["kind"]).expect("valid metric");
        let reconcile_errors = IntCounterVec::new(Opts::new("cascade_operator_reconcile_errors_total", "Failed reconciles, by kind and error"), &["kind", "error"]).expect("valid metric");
        let buckets = vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
        let reconcile_duration = HistogramVec::new(HistogramOpts::new("cascade_operator_reconcile_duration_seconds", "Reconcile duration, by kind").buckets(buckets), &["kind"]).expect("valid metric");
        let managed = IntGaugeVec::new(Opts::new("cascade_operator_managed_objects", "Custom resources the operator manages, by kind"), &["kind"]).expect("valid metric");
        let dns_checks = IntGaugeVec::new(Opts::new("cascade_operator_dns_check", "DNS check of a SendingDomain: 1 passed, 0 failed, -1 DNS did not answer"), &["namespace", "domain", "check"])
            .expect("valid metric");
        let key_labels = &["namespace", "dkim_key", "selector"];
        let dkim_phase =
            IntGaugeVec::new(Opts::new("cascade_operator_dkim_key_phase", "Phase of each DKIM key generation: 0 Pending, 1 Active, 2 Retiring, 3 Retired"), key_labels).expect("valid metric");
        let dkim_age = IntGaugeVec::new(Opts::new("cascade_operator_dkim_key_age_seconds", "Age of each DKIM key generation"), key_labels).expect("valid metric");
        let dkim_next_rotation =
            IntGaugeVec::new(Opts::new("cascade_operator_dkim_next_rotation_timestamp_seconds", "When the Active key of a DkimKey is due to be replaced (unix time)"), &["namespace", "dkim_key"])
                .expect("valid metric");
        let leader = IntGauge::new("cascade_operator_leader", "1 while this replica holds the leader Lease").expect("valid metric");
        let pool_replicas =
            IntGaugeVec::new(Opts::new("cascade_operator_pool_replicas", "Relays of a RelayPool: desired, ready, and on the current configuration (current)"), &["namespace", "pool", "state"])
                .expect("valid metric");
        let pool_config_refused =
            IntGaugeVec::new(Opts::new("cascade_operator_pool_config_refused", "1 while a relay of the pool refuses the configuration it was given"), &["namespace", "pool"]).expect("valid metric");
        let build = IntGaugeVec::new(Opts::new("cascade_operator_build_info", "The operator's version (always 1)"), &["version"]).expect("valid metric");
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        for c in [
            Box::new(reconciles.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(reconcile_errors.clone()),
            Box::new(reconcile_duration.clone()),
            Box::new(managed.clone()),
            Box::new(leader.clone()),
            Box::new(dns_checks.clone()),
            Box::new(dkim_phase.clone()),
            Box::new(dkim_age.clone()),
            Box::new(dkim_next_rotation.clone()),
            Box::new(pool_replicas.clone()),
            Box::new(pool_config_refused.clone()),
            Box::new(build),
            Box::new(prometheus::process_collector::ProcessCollector::for_self()),
        ] {
            registry.register(c).expect("unique metric");
        }
        Self {
            registry,
            reconciles,
            reconcile_errors,
            reconcile_duration,
            managed,
            leader,
            dns_checks,
            dkim_phase,
            dkim_age,
            dkim_next_rotation,
            pool_replicas,
            pool_config_refused,
            ready: AtomicBool::new(false),
        }
    }
}

/// Counts a reconcile when created and records its duration when dropped.
pub struct Timer<'a> {
    metrics: &'a Metrics,
    kind: &'static str,
    started: Instant,
}

impl Drop for Timer<'_> {
    fn drop(&mut self) {
        self.metrics.reconcile_duration.with_label_values(&[self.kind]).observe(self.started.elapsed().as_secs_f64());
    }
}

impl Metrics {
    pub fn reconcile(&self, kind: &'static str) -> Timer<'_> {
        self.reconciles.with_label_values(&[kind]).inc();
        Timer { metrics: self, kind, started: Instant::now() }
    }

    /// Ready once the operator reached the API server and holds its master key (standby
    /// replicas are ready too: they are healthy and waiting for the Lease).
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::SeqCst);
    }
}

impl Metrics {
    /// Every metric in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        use prometheus::Encoder;
        let _ = prometheus::TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reconciles_are_counted_and_timed() {
        let m = super::Metrics::default();
        drop(m.reconcile("ApiKey"));
        m.managed.with_label_values(&["ApiKey"]).set(3);
        let text = m.render();
        assert!(text.contains("cascade_operator_reconciles_total{kind=\"ApiKey\"} 1"), "{text}");
        assert!(text.contains("cascade_operator_reconcile_duration_seconds_count{kind=\"ApiKey\"} 1"));
        assert!(text.contains("cascade_operator_managed_objects{kind=\"ApiKey\"} 3"));
        assert!(!m.is_ready());
        m.set_ready();
        assert!(m.is_ready());
    }
}
