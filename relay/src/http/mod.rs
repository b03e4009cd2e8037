//! The HTTP listeners: what each serves ([`Probes`]); [`serve`] runs them on hyper. Every one
//! answers `/healthz` (the process runs) and `/readyz` (ready for work; the relay fails it during
//! shutdown). The relay has two: [`Tenant`] (HTTPS only, reachable from the tenant namespaces:
//! `POST /dmarc/reports` and the send API of [`crate::api`] with an API key) and [`Admin`]
//! (platform only: `GET /metrics` in Prometheus text, `GET /dmarc/summary`, `GET /anomalies` and
//! `GET /audit/anchor` for the operator, `POST /handover` and `GET /messages/{id}` for peer
//! relays).

mod serve;

pub use serve::{serve, Limits};

use crate::relay::Relay;
use std::net::IpAddr;
use std::sync::Arc;

/// The largest request body accepted (a compressed DMARC report).
pub const MAX_BODY: usize = 10 * 1024 * 1024;

/// What a handler answers: status, content type, body, and for `429`/`503` when to retry.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    pub retry_after: Option<u32>,
    /// The answer an earlier request with the same `Idempotency-Key` was given.
    pub replayed: bool,
}

impl Answer {
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Self { status, content_type: "text/plain", body: body.into(), retry_after: None, replayed: false }
    }
    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        Self { status, content_type: "application/json", body: value.to_string(), retry_after: None, replayed: false }
    }
    /// An RFC 9457 problem: `title` for the kind of problem, `detail` for this occurrence
    /// (naming the field as a JSON pointer where one is at fault).
    pub fn problem(status: u16, title: &str, detail: impl Into<String>) -> Self {
        let value = serde_json::json!({ "type": "about:blank", "title": title, "status": status, "detail": detail.into() });
        Self { status, content_type: "application/problem+json", body: value.to_string(), retry_after: None, replayed: false }
    }
    pub fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }
}

impl From<(u16, String)> for Answer {
    fn from((status, body): (u16, String)) -> Self {
        Self::text(status, body)
    }
}

/// Who is asking: the client's address and, over mutual TLS, the certificate it presented
/// (already verified against the listener's authority).
pub struct Caller {
    pub ip: IpAddr,
    pub certificate: Option<rustls::pki_types::CertificateDer<'static>>,
}

/// What a process exposes on its HTTP listener.
pub trait Probes: Send + Sync + 'static {
    /// The listener's TLS configuration for the next connection; `None`: plaintext.
    fn tls(&self) -> Option<Arc<rustls::ServerConfig>> {
        None
    }
    /// Whether `caller` may ask for `path` at all (every path but `/healthz` and `/readyz`,
    /// before anything else is looked at): the refusal (status, text). Everyone by default.
    fn admit(&self, _path: &str, _caller: &Caller) -> Result<(), Answer> {
        Ok(())
    }
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
    /// Decides on a POST, PUT or DELETE from its method, path and `Authorization` header
    /// **before its body is read**: who is asking (passed on to [`Probes::post`]), or the
    /// refusal. Nothing may be posted to by default.
    fn authorize(&self, _method: &hyper::Method, _path: &str, _authorization: Option<&str>, _peer: IpAddr) -> Result<String, Answer> {
        Err(Answer::text(404, "not found\n"))
    }
    /// An authorized POST with its headers and whole body (at most [`Probes::max_body`]).
    /// Runs on a blocking-pool thread.
    fn post(&self, _method: &hyper::Method, _path: &str, _who: &str, _headers: &hyper::HeaderMap, _body: &[u8], _peer: IpAddr) -> Answer {
        Answer::text(404, "not found\n")
    }
    /// A GET that needs I/O or an API key (`authorization`, the header as sent): its answer, or
    /// `None` where the path is not one of these (then [`Probes::get`] is asked).
    fn lookup(&self, _path: &str, _authorization: Option<&str>, _peer: IpAddr) -> Option<BoxFuture<'static, Answer>> {
        None
    }
}

pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// The relay's platform listener: metrics and the DMARC summaries the operator collects.
pub struct Admin(pub Arc<Relay>);

impl Probes for Admin {
    fn tls(&self) -> Option<Arc<rustls::ServerConfig>> {
        self.0.runtime().admin_tls.as_ref().map(|a| a.server.clone())
    }
    /// Under mutual TLS: `/handover` only from a relay of the pool, `/metrics` from anyone unless
    /// configured otherwise, everything else from a certificate of the pool's authority.
    fn admit(&self, path: &str, caller: &Caller) -> Result<(), Answer> {
        let runtime = self.0.runtime();
        let Some(channel) = &runtime.admin_tls else { return Ok(()) };
        let certificate = caller.certificate.as_ref();
        let admitted = match path.split_once('?').map_or(path, |(p, _)| p) {
            "/handover" => channel.is_relay(certificate),
            "/metrics" => !channel.metrics_need_certificate || channel.is_pool(certificate),
            _ => channel.is_pool(certificate),
        };
        if admitted {
            return Ok(());
        }
        tracing::warn!(client = %caller.ip, path = path.split('?').next().unwrap_or(""), "admin request without the pool's client certificate refused");
        Err(Answer::text(403, "a client certificate of the pool's admin authority is required\n"))
    }
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
            "/webhooks" => Some((200, "application/json", self.0.events.states_json())),
            "/config" => Some((200, "application/json", self.0.config_json())),
            "/keys/usage" => Some((200, "application/json", self.0.key_usage_json())),
            "/queue" => Some((200, "application/json", self.0.queue_json())),
            p if p.starts_with("/suppressions/changes") => {
                // `?after=N`: this relay's unconfirmed suppression changes after N (the operator's read).
                let after = p.split_once("?after=").and_then(|(_, n)| n.parse::<u64>().ok()).unwrap_or(0);
                Some(self.0.suppressions.changes_json(after).map_or((404, "text/plain", "suppression lists are not shared\n".into()), |j| (200, "application/json", j)))
            }
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
    fn authorize(&self, method: &hyper::Method, path: &str, authorization: Option<&str>, _peer: IpAddr) -> Result<String, Answer> {
        if method != hyper::Method::POST {
            return Err(Answer::text(405, "only POST here\n"));
        }
        match path.split_once('?') {
            Some(("/handover", q)) => crate::handover::authorize(q, authorization).map_err(Answer::from),
            // Admitted above: a certificate of the pool's authority (the operator).
            None if path == "/erase" => Ok(String::new()),
            _ => Err(Answer::text(404, "not found\n")),
        }
    }
    fn post(&self, _method: &hyper::Method, path: &str, claim: &str, _headers: &hyper::HeaderMap, body: &[u8], _peer: IpAddr) -> Answer {
        match path.split_once('?') {
            Some(("/handover", q)) => crate::handover::receive(&self.0, q, claim, body).into(),
            None if path == "/erase" => match crate::erase::Erasure::parse(body).and_then(|e| crate::erase::run(&self.0, e)) {
                Ok(counts) => Answer::json(200, &serde_json::to_value(&counts).unwrap_or_default()),
                Err(why) => Answer::text(400, format!("{why}\n")),
            },
            _ => Answer::text(404, "not found\n"),
        }
    }
    /// A peer relay asking for a message's state (see [`crate::api::status`]).
    fn lookup(&self, path: &str, _authorization: Option<&str>, _peer: IpAddr) -> Option<BoxFuture<'static, Answer>> {
        let id = path.strip_prefix("/messages/")?;
        Some(Box::pin(crate::api::status::for_peer(self.0.clone(), id.to_string())))
    }
}

/// The relay's tenant-facing listener (HTTPS with the pool's certificate): DMARC report upload
/// and the send API ([`crate::api`]), with an API key.
pub struct Tenant(pub Arc<Relay>, Arc<rustls::ServerConfig>);

impl Tenant {
    pub fn new(relay: Arc<Relay>) -> Self {
        let tls = crate::tls::https_server_config(relay.certs.clone());
        Self(relay, tls)
    }
}

impl Probes for Tenant {
    fn tls(&self) -> Option<Arc<rustls::ServerConfig>> {
        Some(self.1.clone())
    }
    fn metrics(&self) -> Option<String> {
        None
    }
    fn ready(&self) -> bool {
        self.0.is_ready()
    }
    fn behind_proxy(&self, peer: IpAddr) -> bool {
        self.0.runtime().behind_proxy(peer)
    }
    /// A report, or the largest message in base64 with room for its JSON envelope.
    fn max_body(&self) -> usize {
        let message = self.0.runtime().config.limits.max_message_size.0 as usize;
        MAX_BODY.max(message.saturating_mul(4) / 3 + (1 << 20))
    }
    fn authorize(&self, method: &hyper::Method, path: &str, authorization: Option<&str>, peer: IpAddr) -> Result<String, Answer> {
        if crate::api::suppressions::routes(path) || path == "/v1/feedback" {
            return crate::api::suppressions::authorize(&self.0, authorization, peer).and_then(|k| crate::api::metered(&self.0, k));
        }
        if method != hyper::Method::POST {
            return Err(Answer::text(405, "only GET and POST here\n"));
        }
        match path {
            "/dmarc/reports" => crate::dmarc::upload::authorize(&self.0, authorization, peer).map_err(Answer::from),
            "/v1/messages" | "/v1/messages/raw" => crate::api::authorize(&self.0, authorization, peer),
            _ => Err(Answer::text(404, "not found\n")),
        }
    }
    fn post(&self, method: &hyper::Method, path: &str, who: &str, headers: &hyper::HeaderMap, body: &[u8], peer: IpAddr) -> Answer {
        if crate::api::suppressions::routes(path) {
            return crate::api::suppressions::change(&self.0, method, path, who, body, peer);
        }
        if path == "/v1/feedback" {
            if method != hyper::Method::POST {
                return Answer::problem(405, "Method Not Allowed", "POST a feedback report");
            }
            let answer = crate::api::feedback::post(&self.0, who, body);
            self.0.audit.record("api.request", serde_json::json!({ "path": path, "key": who, "client": peer.to_string(), "status": answer.status }));
            return answer;
        }
        match path {
            "/dmarc/reports" => crate::dmarc::upload::ingest(&self.0, who, body).into(),
            "/v1/messages" | "/v1/messages/raw" => {
                let idempotency_key = headers.get("idempotency-key").map(|v| v.to_str().unwrap_or("\u{0}"));
                crate::api::post(&self.0, path, who, body, idempotency_key, peer)
            }
            _ => Answer::text(404, "not found\n"),
        }
    }
    fn get(&self, path: &str) -> Option<(u16, &'static str, String)> {
        (path == "/v1/openapi.json").then(|| (200, "application/json", crate::api::OPENAPI.to_string()))
    }
    /// `GET /v1/messages/{id}` with a key holding `messages:send`; `GET /v1/suppressions…`.
    fn lookup(&self, path: &str, authorization: Option<&str>, peer: IpAddr) -> Option<BoxFuture<'static, Answer>> {
        if crate::api::suppressions::routes(path) {
            let answer = match crate::api::suppressions::authorize(&self.0, authorization, peer).and_then(|k| crate::api::metered(&self.0, k)) {
                Ok(key) => crate::api::suppressions::read(&self.0, path, &key),
                Err(refusal) => refusal,
            };
            return Some(Box::pin(async move { answer }));
        }
        let id = path.split('?').next().unwrap_or_default().strip_prefix("/v1/messages/")?.to_string();
        Some(match crate::api::authorize(&self.0, authorization, peer).and_then(|k| crate::api::metered(&self.0, k)) {
            Ok(key) => Box::pin(crate::api::status::get(self.0.clone(), id, key)),
            Err(refusal) => Box::pin(async move { refusal }),
        })
    }
}
