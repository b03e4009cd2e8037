//! Prometheus metrics of one relay, all prefixed `cascade_relay_`.

use prometheus::{Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};

pub struct Metrics {
    registry: Registry,
    /// By tenant (`namespace`): bounded by the tenants the configuration lists.
    pub accepted: IntCounterVec,
    pub rejected: IntCounterVec,
    pub delivered: IntCounterVec,
    pub deferred: IntCounterVec,
    pub bounced: IntCounterVec,
    pub queue_depth: IntGauge,
    /// Breaks the run-time audit check found since the relay started.
    pub audit_chain_breaks: IntGauge,
    /// Audit records the run-time check verified since the relay started.
    pub audit_records_verified: IntGauge,
    /// Age of the oldest message waiting in the queue, by tenant.
    pub queue_oldest: IntGaugeVec,
    pub delivery_latency: Histogram,
    pub outbound_connections: IntCounterVec,
    pub auth_failures: IntCounterVec,
    pub sessions: IntGauge,
    pub config_reloads: IntCounterVec,
    pub config_dropped: IntGauge,
    pub purged: IntCounter,
    pub dmarc_reports: IntCounterVec,
    pub dmarc_messages: IntCounterVec,
    pub dmarc_sources: IntCounterVec,
    pub dmarc_failures: IntCounterVec,
    pub dmarc_repairs: IntCounterVec,
    pub spool_seals: IntGaugeVec,
    pub anomalies: IntCounterVec,
    pub suspended_keys: IntGauge,
    pub handed_over: IntCounterVec,
    pub events_pending: IntGauge,
    pub webhook_requests: IntCounterVec,
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(format!("cascade_relay_{name}"), help).expect("valid metric");
    r.register(Box::new(c.clone())).expect("unique metric");
    c
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(format!("cascade_relay_{name}"), help), labels).expect("valid metric");
    r.register(Box::new(c.clone())).expect("unique metric");
    c
}

fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(format!("cascade_relay_{name}"), help), labels).expect("valid metric");
    r.register(Box::new(g.clone())).expect("unique metric");
    g
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(format!("cascade_relay_{name}"), help).expect("valid metric");
    r.register(Box::new(g.clone())).expect("unique metric");
    g
}

impl Default for Metrics {
    fn default() -> Self {
        let r = Registry::new();
        let delivery_latency = Histogram::with_opts(
            HistogramOpts::new("cascade_relay_delivery_latency_seconds", "Seconds from acceptance to final delivery of a recipient")
                .buckets(vec![0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0, 3600.0, 86400.0]),
        )
        .expect("valid metric");
        r.register(Box::new(delivery_latency.clone())).expect("unique metric");
        Self {
            accepted: counter_vec(&r, "messages_accepted_total", "Messages accepted (spooled and acknowledged with 250), by tenant", &["namespace"]),
            rejected: counter_vec(&r, "messages_rejected_total", "Commands or messages refused, by reason", &["reason"]),
            delivered: counter_vec(&r, "recipients_delivered_total", "Recipients delivered, by tenant", &["namespace"]),
            deferred: counter_vec(&r, "recipients_deferred_total", "Recipient delivery attempts that failed temporarily, by tenant", &["namespace"]),
            bounced: counter_vec(&r, "recipients_bounced_total", "Recipients that failed permanently, by tenant", &["namespace"]),
            queue_depth: gauge(&r, "queue_depth", "Messages in the spool"),
            audit_chain_breaks: gauge(&r, "audit_chain_breaks", "Breaks in the audit trail (chain, mac, missing checkpoint, cut-short file) the run-time check found since the relay started"),
            audit_records_verified: gauge(&r, "audit_records_verified", "Audit records the run-time check verified since the relay started"),
            queue_oldest: gauge_vec(&r, "queue_oldest_message_age_seconds", "Age of the oldest message waiting for delivery, by tenant (updated every 10 s)", &["namespace"]),
            delivery_latency,
            outbound_connections: counter_vec(&r, "outbound_connections_total", "Outbound SMTP sessions, by whether TLS was used (true or false)", &["tls"]),
            auth_failures: counter_vec(&r, "auth_failures_total", "Failed AUTH attempts, by reason", &["reason"]),
            sessions: gauge(&r, "smtp_sessions", "Open SMTP sessions"),
            config_reloads: counter_vec(&r, "config_reloads_total", "Configuration reloads, by result", &["result"]),
            config_dropped: gauge(&r, "config_dropped_entries", "Tenant entries (domains, API keys) of the running configuration left out for their problems"),
            purged: counter(&r, "messages_purged_total", "Queued messages purged because their domain was deleted from the tenant"),
            dmarc_reports: counter_vec(&r, "dmarc_reports_total", "DMARC reports received, by kind and result", &["kind", "result"]),
            dmarc_messages: counter_vec(
                &r,
                "dmarc_messages_total",
                "Messages in DMARC aggregate reports, by domain, disposition and aligned DKIM and SPF result",
                &["domain", "disposition", "dkim", "spf"],
            ),
            dmarc_sources: counter_vec(
                &r,
                "dmarc_source_messages_total",
                "Messages in DMARC aggregate reports, by domain, source address and whether they passed DMARC",
                &["domain", "source", "aligned"],
            ),
            dmarc_failures: counter_vec(&r, "dmarc_failure_reports_total", "DMARC failure reports, by domain and failure", &["domain", "failure"]),
            spool_seals: gauge_vec(&r, "spool_key_seals", "Files this relay sealed with each spool key (AES-GCM random nonces: rotate well before 2^32 per key, summed over the pool)", &["key"]),
            dmarc_repairs: counter_vec(&r, "dmarc_report_repairs_total", "DMARC aggregate reports read despite a deviation real reporters produce, by repair", &["repair"]),
            anomalies: counter_vec(&r, "key_anomalies_total", "Unusual sending found per API key, by kind (rate or failures)", &["kind"]),
            suspended_keys: gauge(&r, "suspended_keys", "API keys this relay holds suspended after an anomaly"),
            handed_over: counter_vec(&r, "messages_handed_over_total", "Queued messages handed to or taken from peer relays, by direction", &["direction"]),
            events_pending: gauge(&r, "events_pending", "Webhook events waiting to be sent or being sent"),
            webhook_requests: counter_vec(&r, "webhook_requests_total", "Webhook deliveries by result (sent, failed, gone, dropped)", &["result"]),
            registry: {
                let info = IntGaugeVec::new(Opts::new("cascade_relay_build_info", "The relay's version (always 1)"), &["version"]).expect("valid metric");
                info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
                r.register(Box::new(info)).expect("unique metric");
                // process_cpu_seconds_total, process_resident_memory_bytes, process_open_fds, ...
                r.register(Box::new(prometheus::process_collector::ProcessCollector::for_self())).expect("unique metric");
                r
            },
        }
    }
}

impl Metrics {
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}
