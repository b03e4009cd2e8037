//! The HTTP listener: `GET /metrics` (Prometheus text), `/healthz` (the process runs) and
//! `/readyz` (ready for work; the relay fails it during shutdown). A deliberately tiny HTTP/1.1
//! responder: one request per connection, bounded header size, time and concurrency, GET only.
//! The operator serves its probes with the same code.

use crate::relay::Relay;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// What a process exposes on its HTTP listener.
pub trait Probes: Send + Sync + 'static {
    /// Prometheus text exposition.
    fn metrics(&self) -> String;
    fn ready(&self) -> bool;
}

impl Probes for Relay {
    fn metrics(&self) -> String {
        self.metrics.render()
    }
    fn ready(&self) -> bool {
        self.is_ready()
    }
}

/// Answers requests until the task is dropped (the relay keeps answering during shutdown, with
/// `/readyz` at 503, until the process exits).
pub async fn serve(listener: TcpListener, probes: Arc<dyn Probes>) {
    let slots = Arc::new(Semaphore::new(64));
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let Ok(permit) = slots.clone().try_acquire_owned() else { continue };
        let probes = probes.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(10), handle(stream, &*probes)).await;
            drop(permit);
        });
    }
}

async fn handle(mut stream: TcpStream, probes: &dyn Probes) -> std::io::Result<()> {
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
    let head = String::from_utf8_lossy(&buf[..len]);
    let mut parts = head.lines().next().unwrap_or_default().split(' ');
    let (method, path) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    if method != "GET" {
        return respond(&mut stream, 405, "text/plain", "only GET is supported\n").await;
    }
    match path {
        "/metrics" => respond(&mut stream, 200, "text/plain; version=0.0.4", &probes.metrics()).await,
        "/healthz" => respond(&mut stream, 200, "text/plain", "ok\n").await,
        "/readyz" if probes.ready() => respond(&mut stream, 200, "text/plain", "ready\n").await,
        "/readyz" => respond(&mut stream, 503, "text/plain", "not ready\n").await,
        _ => respond(&mut stream, 404, "text/plain", "not found\n").await,
    }
}

async fn respond(stream: &mut TcpStream, code: u16, ctype: &str, body: &str) -> std::io::Result<()> {
    let reason = match code {
        200 => "OK",
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
