//! The HTTP listeners: what each serves ([`Probes`]); [`serve`] runs them on hyper. Every one
//! answers `/healthz` (the process runs) and `/readyz` (ready for work; the relay fails it during
//! shutdown). The relay has two: [`Tenant`] (HTTPS only, reachable from the tenant namespaces:
//! `POST /dmarc/reports` with an API key) and [`Admin`] (platform only: `GET /metrics` in
//! Prometheus text, `GET /dmarc/summary`, `GET /anomalies` and `GET /audit/anchor` for the
//! operator, and `POST /handover` from peer relays).

mod serve;

pub use serve::{serve, Limits};

use crate::relay::Relay;
use std::net::IpAddr;
use std::sync::Arc;

/// The largest request body accepted (a compressed DMARC report).
pub const MAX_BODY: usize = 10 * 1024 * 1024;

/// What a process exposes on its HTTP listener.
pub trait Probes: Send + Sync + 'static {
    /// Prometheus text exposition, where this listener serves it.
    fn metrics(&self) -> Option<String>;
    fn ready(&self) -> bool;
    /// Another GET path: (status, content type, body); none by default.
    fn get(&self, _path: &str) -> Option<(u16, &'static str, String)> {
        None
    }
    /// The largest request body this listener takes.
    fn max_body(&self) -> usize {
        MAX_BODY
    }
    /// Whether connections from `peer` start with a PROXY v2 header (a trusted load balancer).
    fn behind_proxy(&self, _peer: IpAddr) -> bool {
        false
    }
    /// Decides on a POST from its path and `Authorization` header **before its body is read**:
    /// who is posting (passed on to [`Probes::post`]), or the refusal (status, text). Nothing
    /// may be posted to by default.
    fn authorize(&self, _path: &str, _authorization: Option<&str>, _peer: IpAddr) -> Result<String, (u16, String)> {
        Err((404, "not found\n".into()))
    }
    /// An authorized POST with its whole body (at most [`Probes::max_body`]): (status, text).
    /// Runs on a blocking-pool thread.
    fn post(&self, _path: &str, _who: &str, _body: &[u8], _peer: IpAddr) -> (u16, String) {
        (404, "not found\n".into())
    }
}

/// The relay's platform listener: metrics and the DMARC summaries the operator collects.
pub struct Admin(pub Arc<Relay>);

impl Probes for Admin {
    fn metrics(&self) -> Option<String> {
        for (key, n) in self.0.spool.seal_counts() {
            self.0.metrics.spool_seals.with_label_values(&[&key]).set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        Some(self.0.metrics.render())
    }
    fn ready(&self) -> bool {
        self.0.is_ready()
    }
    fn get(&self, path: &str) -> Option<(u16, &'static str, String)> {
        match path {
            "/dmarc/summary" => Some((200, "application/json", self.0.dmarc_summaries.json())),
            "/anomalies" => Some((200, "application/json", self.0.suspensions_json())),
            "/audit/anchor" => Some(match self.0.audit.anchor() {
                // Named after the relay: its pod name in a cluster, else its configured hostname.
                Some(a) => {
                    let relay = std::env::var("HOSTNAME").unwrap_or_else(|_| self.0.runtime().config.hostname.clone());
                    let json = serde_json::json!({ "relay": relay, "seq": a.seq, "mac": a.mac, "time": a.time });
                    (200, "application/json", json.to_string())
                }
                None => (404, "text/plain", "no audit trail\n".into()),
            }),
            _ => None,
        }
    }
    /// A handed-over spool file: the largest message plus room for the envelope.
    fn max_body(&self) -> usize {
        (self.0.runtime().config.limits.max_message_size.0 as usize).saturating_add(1 << 20)
    }
    /// A handover carries a claim sealed under the pool's spool key (see [`crate::handover`]).
    fn authorize(&self, path: &str, authorization: Option<&str>, _peer: IpAddr) -> Result<String, (u16, String)> {
        match path.split_once('?') {
            Some(("/handover", q)) => crate::handover::authorize(q, authorization),
            _ => Err((404, "not found\n".into())),
        }
    }
    fn post(&self, path: &str, claim: &str, body: &[u8], _peer: IpAddr) -> (u16, String) {
        match path.split_once('?') {
            Some(("/handover", q)) => crate::handover::receive(&self.0, q, claim, body),
            _ => (404, "not found\n".into()),
        }
    }
}

/// The relay's tenant-facing listener: DMARC report upload with an API key.
pub struct Tenant(pub Arc<Relay>);

impl Probes for Tenant {
    fn metrics(&self) -> Option<String> {
        None
    }
    fn ready(&self) -> bool {
        self.0.is_ready()
    }
    fn behind_proxy(&self, peer: IpAddr) -> bool {
        self.0.runtime().behind_proxy(peer)
    }
    fn authorize(&self, path: &str, authorization: Option<&str>, peer: IpAddr) -> Result<String, (u16, String)> {
        match path {
            "/dmarc/reports" => crate::dmarc::upload::authorize(&self.0, authorization, peer),
            _ => Err((404, "not found\n".into())),
        }
    }
    fn post(&self, path: &str, who: &str, body: &[u8], _peer: IpAddr) -> (u16, String) {
        match path {
            "/dmarc/reports" => crate::dmarc::upload::ingest(&self.0, who, body),
            _ => (404, "not found\n".into()),
        }
    }
}
