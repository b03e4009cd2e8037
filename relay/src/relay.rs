//! The state one relay process shares between its sessions, its delivery workers and its HTTP
//! listener: the current configuration (swapped atomically on reload), the spool, metrics,
//! limiters, the TLS certificate and the handle of the delivery queue.

use crate::config::Runtime;
use crate::delivery::queue::QueueHandle;
use crate::metrics::Metrics;
use crate::policy::limits::{AuthFailures, KeyRates};
use crate::spool::Spool;
use crate::tls::CertStore;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use tokio::sync::watch;

/// What the relay keeps on its volume, opened at start.
pub struct Volume {
    pub spool: Spool,
    pub store: crate::store::Store,
    pub events: crate::events::Events,
    pub suppressions: crate::suppression::Suppressions,
}

pub struct Relay {
    runtime: RwLock<Arc<Runtime>>,
    pub spool: Arc<Spool>,
    /// Finished messages' states and the send API's idempotency keys.
    pub store: crate::store::Store,
    /// Delivery events waiting for tenants' webhooks.
    pub events: crate::events::Events,
    /// The tenants' suppression lists.
    pub suppressions: crate::suppression::Suppressions,
    pub metrics: Metrics,
    pub auth_failures: AuthFailures,
    /// Failed AUTH attempts per key id (guessing one key's secret from many addresses).
    pub key_auth_failures: AuthFailures<String>,
    pub client_sessions: Arc<crate::policy::limits::ClientSessions>,
    pub rates: KeyRates,
    pub certs: Arc<CertStore>,
    pub tls: Arc<rustls::ServerConfig>,
    pub queue: QueueHandle,
    shutdown: watch::Sender<bool>,
    ready: AtomicBool,
    /// Set once the configuration Secret watch (see [`crate::watch`]) has installed a version:
    /// from then on the mounted files no longer drive reloads.
    watch_delivered: AtomicBool,
    /// Woken on every configuration swap (the queue then purges mail of retired domains).
    pub config_changed: tokio::sync::Notify,
    /// Recent erasures, applied again to attempts that were running ([`crate::erase`]).
    pub erasures: Arc<crate::erase::Erasures>,
    pub dmarc_sources: crate::dmarc::record::Sources,
    pub dmarc_summaries: crate::dmarc::summary::Summaries,
    pub audit: cascade_core::audit::Audit,
    pub anomalies: crate::anomalies::Anomalies,
    /// This process's name among its peers (see [`crate::handover`]).
    pub instance: String,
    /// The last configuration refused since the one in force was installed (for `GET /config`).
    config_refused: std::sync::Mutex<Option<serde_json::Value>>,
    /// Per key id: when this relay last authenticated it, and the client's network.
    key_usage: std::sync::Mutex<std::collections::HashMap<String, (u64, String)>>,
    /// Per tenant: messages waiting and the oldest one's acceptance time (the queue's 10 s scan).
    pub queue_summary: std::sync::Mutex<std::collections::BTreeMap<String, (u64, u64)>>,
}

impl Relay {
    pub fn new(rt: Arc<Runtime>, volume: Volume, certs: Arc<CertStore>, queue: QueueHandle, audit: cascade_core::audit::Audit) -> Arc<Self> {
        let Volume { spool, store, events, suppressions } = volume;
        let erasures = events.erasures.clone();
        let limits = &rt.config.limits;
        let auth_failures = AuthFailures::new(limits.max_auth_failures, limits.auth_failure_window.0.as_millis() as u64);
        // A key id may be guessed from many addresses: twice the per-address allowance.
        let key_auth_failures = AuthFailures::new(limits.max_auth_failures.saturating_mul(2), limits.auth_failure_window.0.as_millis() as u64);
        Arc::new(Self {
            tls: crate::tls::server_config(certs.clone()),
            runtime: RwLock::new(rt),
            spool: Arc::new(spool),
            store,
            events,
            suppressions,
            metrics: Metrics::default(),
            key_auth_failures,
            client_sessions: Default::default(),
            auth_failures,
            rates: KeyRates::default(),
            certs,
            queue,
            shutdown: watch::channel(false).0,
            ready: AtomicBool::new(false),
            watch_delivered: AtomicBool::new(false),
            config_changed: tokio::sync::Notify::new(),
            erasures,
            dmarc_sources: Default::default(),
            dmarc_summaries: Default::default(),
            audit,
            anomalies: Default::default(),
            instance: crate::handover::new_instance(),
            config_refused: Default::default(),
            key_usage: Default::default(),
            queue_summary: Default::default(),
        })
    }

    /// The configuration in force now; cheap (an `Arc` clone).
    pub fn runtime(&self) -> Arc<Runtime> {
        self.runtime.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn swap_runtime(&self, rt: Arc<Runtime>) {
        self.note_dropped(&rt);
        *self.config_refused.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.spool.set_keys(rt.spool_keys.clone());
        *self.runtime.write().unwrap_or_else(|e| e.into_inner()) = rt;
        self.config_changed.notify_one();
    }

    /// Remembers a refused configuration (its generation when known, and the first problem: a field
    /// and why, no values) until another is installed.
    pub fn note_refused(&self, hash: Option<String>, problems: &[crate::config::Problem]) {
        let first = problems.first().map(|p| format!("{}: {}", p.field, p.reason)).unwrap_or_default();
        let report = serde_json::json!({ "configHash": hash, "at": cascade_core::time::rfc3339_utc(cascade_core::time::now_unix()), "problems": problems.len(), "first": first });
        *self.config_refused.lock().unwrap_or_else(|e| e.into_inner()) = Some(report);
    }

    /// Records a successful authentication of `key` from `client` (for the access review).
    pub fn note_key_use(&self, key: &str, client: std::net::IpAddr) {
        let prefix = if client.is_ipv4() { 24 } else { 64 };
        let network = ipnet::IpNet::new(client, prefix).map(|n| n.trunc().to_string()).unwrap_or_default();
        let mut usage = self.key_usage.lock().unwrap_or_else(|e| e.into_inner());
        if usage.len() < 1_000_000 || usage.contains_key(key) {
            usage.insert(key.to_string(), (cascade_core::time::now_unix(), network));
        }
    }

    /// `GET /keys/usage` on the admin listener: `[{key, lastUsed (unix s), network}]`.
    pub fn key_usage_json(&self) -> String {
        let usage = self.key_usage.lock().unwrap_or_else(|e| e.into_inner());
        let list: Vec<_> = usage.iter().map(|(k, (t, n))| serde_json::json!({ "key": k, "lastUsed": t, "network": n })).collect();
        serde_json::Value::Array(list).to_string()
    }

    /// `GET /queue` on the admin listener: per tenant, the messages waiting and the oldest one's
    /// age (as of the queue's last scan, at most 10 s old).
    pub fn queue_json(&self) -> String {
        let now = cascade_core::time::now_unix();
        let summary = self.queue_summary.lock().unwrap_or_else(|e| e.into_inner());
        let list: Vec<_> = summary.iter().map(|(t, (n, oldest))| serde_json::json!({ "namespace": t, "messages": n, "oldest": oldest, "oldestAgeSeconds": now.saturating_sub(*oldest) })).collect();
        serde_json::Value::Array(list).to_string()
    }

    /// `GET /config` on the admin listener: the generation in force (the `configGeneration` the
    /// operator stamped in, else the hash of its `relay.yaml`) and the last refusal.
    pub fn config_json(&self) -> String {
        let refused = self.config_refused.lock().unwrap_or_else(|e| e.into_inner()).clone();
        serde_json::json!({ "configHash": self.runtime().config_hash, "refused": refused }).to_string()
    }

    /// Logs and counts the tenant entries a configuration left out (no values: a field and why).
    pub fn note_dropped(&self, rt: &Runtime) {
        self.metrics.config_dropped.set(rt.dropped.len() as i64);
        for p in &rt.dropped {
            tracing::warn!(field = %p.field, reason = %p.reason, "configuration entry dropped; the rest is served");
        }
    }

    /// Removes a queued message whose domain was deleted from its tenant (see
    /// `retiredDomains`). Returns whether it was purged.
    pub fn purge_if_retired(&self, env: &crate::spool::Envelope) -> bool {
        if !self.runtime().is_retired(&env.tenant, &env.sender) {
            return false;
        }
        match self.spool.remove(&env.id) {
            Ok(()) => {
                let mut purged = env.clone();
                for r in purged.recipients.iter_mut().filter(|r| r.status == crate::spool::RcptStatus::Pending) {
                    r.status = crate::spool::RcptStatus::Failed;
                    r.last_reply = Some("purged: the sending domain was deleted from the tenant".into());
                }
                self.record_finished(&purged);
                self.metrics.purged.inc();
                tracing::info!(queue_id = %env.id, tenant = %env.tenant, sender = %mask(&env.sender), "queued message purged: its domain was deleted from the tenant");
                self.audit.record("message.purged", serde_json::json!({ "queue_id": env.id, "tenant": env.tenant, "sender": mask(&env.sender), "reason": "domain deleted from the tenant" }));
                true
            }
            Err(e) => {
                tracing::error!(queue_id = %env.id, error = %e, "purging a message of a deleted domain failed; it stays queued");
                false
            }
        }
    }

    /// Keeps a finished tenant message's final state for the retention (bounces, which belong
    /// to no API key, are not kept). Blocking.
    pub fn record_finished(&self, env: &crate::spool::Envelope) {
        if env.key.is_empty() {
            return;
        }
        let expires = cascade_core::time::now_unix() + self.runtime().config.spool.status_retention.0.as_secs();
        if let Err(e) = self.store.finished(&self.spool, env, expires) {
            tracing::warn!(queue_id = %env.id, error = %e, "could not record the finished message's state; its status will not be found");
        }
    }

    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Resolves once shutdown has begun.
    pub async fn stopped(rx: &mut watch::Receiver<bool>) {
        let _ = rx.wait_for(|s| *s).await;
    }

    pub fn begin_shutdown(&self) {
        self.ready.store(false, Ordering::SeqCst);
        self.shutdown.send_replace(true);
    }

    pub fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    pub fn set_watch_delivered(&self) {
        self.watch_delivered.store(true, Ordering::SeqCst);
    }

    pub fn watch_delivered(&self) -> bool {
        self.watch_delivered.load(Ordering::SeqCst)
    }
}

/// Addresses in logs and audit records: `d***@example.test` ([`cascade_core::audit::mask`]).
pub use cascade_core::audit::mask;

#[cfg(test)]
mod tests {
    #[test]
    fn masks_addresses() {
        assert_eq!(super::mask("dev@example.test"), "d***@example.test");
        assert_eq!(super::mask(""), "<>");
        assert_eq!(super::mask("weird"), "***");
    }
}
