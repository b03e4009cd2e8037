//! The HTTP listeners. Every one answers `/healthz` (the process runs) and `/readyz` (ready for
//! work; the relay fails it during shutdown). The relay has two: [`Tenant`] (reachable from the
//! tenant namespaces: `POST /dmarc/reports` with an API key) and [`Admin`] (platform only:
//! `GET /metrics` in Prometheus text, `GET /dmarc/summary`, `GET /anomalies` and `GET /audit/anchor`
//! for the operator,
//! and `POST /handover` from peer relays). A deliberately
//! tiny HTTP/1.1 responder: one request per connection, bounded header size, body, time and
//! concurrency. The operator serves its probes with the same code.

use crate::relay::Relay;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

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
    fn behind_proxy(&self, _peer: std::net::IpAddr) -> bool {
        false
    }
    /// A POST: (status, body). Nothing is posted to by default.
    fn post(&self, _path: &str, _authorization: Option<&str>, _body: &[u8], _peer: std::net::IpAddr) -> (u16, String) {
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
    fn post(&self, path: &str, _authorization: Option<&str>, body: &[u8], _peer: std::net::IpAddr) -> (u16, String) {
        match path.split_once('?') {
            Some(("/handover", q)) => crate::handover::receive(&self.0, q, body),
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
    fn behind_proxy(&self, peer: std::net::IpAddr) -> bool {
        self.0.runtime().behind_proxy(peer)
    }
    fn post(&self, path: &str, authorization: Option<&str>, body: &[u8], peer: std::net::IpAddr) -> (u16, String) {
        if path != "/dmarc/reports" {
            return (404, "not found\n".into());
        }
        crate::dmarc::upload::handle(&self.0, authorization, body, peer)
    }
}

/// Answers requests until the task is dropped (the relay keeps answering during shutdown, with
/// `/readyz` at 503, until the process exits).
pub async fn serve(listener: TcpListener, probes: Arc<dyn Probes>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let per_client = Arc::new(crate::policy::limits::ClientSessions::default());
    loop {
        let Ok((mut stream, peer)) = listener.accept().await else { continue };
        let Ok(permit) = slots.clone().try_acquire_owned() else { continue };
        // A direct client takes its slot here, in accept order; a proxied one once its header
        // names it.
        let proxied = probes.behind_proxy(peer.ip());
        let direct_slot = (!proxied).then(|| per_client.enter(peer.ip(), MAX_CONNECTIONS_PER_CLIENT));
        let probes = probes.clone();
        let per_client = per_client.clone();
        tokio::spawn(async move {
            let mut ip = peer.ip();
            if proxied {
                match crate::proxy::read_header(&mut stream, Duration::from_secs(10)).await {
                    Ok(client) => ip = client.unwrap_or(ip),
                    Err(e) => {
                        tracing::warn!(proxy = %peer.ip(), error = %e, "HTTP connection from a trusted proxy without a valid PROXY v2 header; closed");
                        return;
                    }
                }
            }
            let Some(slot) = direct_slot.unwrap_or_else(|| per_client.enter(ip, MAX_CONNECTIONS_PER_CLIENT)) else {
                // One address cannot take the slots everyone else needs.
                let _ = tokio::time::timeout(Duration::from_secs(5), respond(&mut stream, 429, "text/plain", "too many connections from your address\n")).await;
                drop(permit);
                return;
            };
            let _ = tokio::time::timeout(Duration::from_secs(30), handle(stream, probes, ip)).await;
            drop((permit, slot));
        });
    }
}

/// Concurrent connections per listener, and from one client address.
const MAX_CONNECTIONS: usize = 64;
const MAX_CONNECTIONS_PER_CLIENT: usize = 8;

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| l.split_once(':').filter(|(k, _)| k.trim().eq_ignore_ascii_case(name)).map(|(_, v)| v.trim()))
}

async fn handle(mut stream: TcpStream, probes: Arc<dyn Probes>, peer: std::net::IpAddr) -> std::io::Result<()> {
    let mut buf = vec![0u8; 8192];
    let mut len = 0;
    while !buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
        if len == buf.len() {
            return respond(&mut stream, 431, "text/plain", "request header too large\n").await;
        }
        let n = stream.read(&mut buf[len..]).await?;
        if n == 0 {
            return Ok(());
        }
        len += n;
    }
    let end = buf[..len].windows(4).position(|w| w == b"\r\n\r\n").map_or(len, |p| p + 4);
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut parts = head.lines().next().unwrap_or_default().split(' ');
    let (method, path) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    if method == "POST" {
        let Some(length) = header(&head, "content-length").and_then(|v| v.parse::<usize>().ok()) else {
            return respond(&mut stream, 411, "text/plain", "Content-Length required\n").await;
        };
        if length > probes.max_body() {
            return respond(&mut stream, 413, "text/plain", &format!("body larger than {} MiB\n", probes.max_body() / 1024 / 1024)).await;
        }
        let mut body = buf[end..len].to_vec();
        body.truncate(length);
        while body.len() < length {
            let mut chunk = vec![0u8; (length - body.len()).min(64 * 1024)];
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            body.extend_from_slice(&chunk[..n]);
        }
        // POST handlers decompress and parse reports, decrypt and fsync spool files: blocking
        // work that must not hold up the async workers serving every SMTP session.
        let (path, authorization) = (path.to_string(), header(&head, "authorization").map(str::to_string));
        let post = tokio::task::spawn_blocking(move || probes.post(&path, authorization.as_deref(), &body, peer));
        let (code, text) = post.await.unwrap_or_else(|_| (500, "internal error\n".into()));
        return respond(&mut stream, code, "text/plain", &text).await;
    }
    if method != "GET" {
        return respond(&mut stream, 405, "text/plain", "only GET and POST are supported\n").await;
    }
    match path {
        "/metrics" => match probes.metrics() {
            Some(text) => respond(&mut stream, 200, "text/plain; version=0.0.4", &text).await,
            None => respond(&mut stream, 404, "text/plain", "not found\n").await,
        },
        "/healthz" => respond(&mut stream, 200, "text/plain", "ok\n").await,
        "/readyz" if probes.ready() => respond(&mut stream, 200, "text/plain", "ready\n").await,
        "/readyz" => respond(&mut stream, 503, "text/plain", "not ready\n").await,
        other => match probes.get(other) {
            Some((code, ctype, body)) => respond(&mut stream, code, ctype, &body).await,
            None => respond(&mut stream, 404, "text/plain", "not found\n").await,
        },
    }
}

async fn respond(stream: &mut TcpStream, code: u16, ctype: &str, body: &str) -> std::io::Result<()> {
    let reason = match code {
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        411 => "Length Required",
        413 => "Content Too Large",
        429 => "Too Many Requests",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    };
    let head = format!("HTTP/1.1 {code} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}
