//! Serving a [`Probes`] on hyper: HTTP/1.1 and HTTP/2 (by ALPN under TLS), behind the relay's
//! TLS policy when the listener has one ([`Probes::tls`], asked per connection so a reloaded
//! certificate applies to the next one). Bounded everywhere a client could hold resources:
//! connections per listener and per client address, the TLS handshake and request headers
//! (10 s), header size and count, a connection's lifetime (30 s), and the body, which is read
//! only after [`Probes::authorize`] accepted the request and never beyond
//! [`Probes::max_body`].

use super::{Answer, Caller, Probes};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// How much a listener lets clients take.
#[derive(Clone, Copy)]
pub struct Limits {
    /// Concurrent connections per listener, and from one client address.
    pub connections: usize,
    pub connections_per_client: usize,
    /// TLS handshake and request headers.
    pub header_timeout: Duration,
    /// A connection's whole life (HTTP/2 keeps one open across requests).
    pub connection_lifetime: Duration,
    /// Request bodies being read and handled at once on the listener (HTTP/2 multiplies the
    /// connections' streams): beyond it a POST gets `503` with `Retry-After` before its body.
    pub bodies: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { connections: 64, connections_per_client: 8, header_timeout: Duration::from_secs(10), connection_lifetime: Duration::from_secs(30), bodies: 8 }
    }
}

/// Largest request head (HTTP/1.1 read buffer; HTTP/2 header list), and headers per request.
const MAX_HEAD: usize = 16 * 1024;
const MAX_HEADERS: usize = 64;
/// HTTP/2 streams at once on one connection.
const MAX_STREAMS: u32 = 16;

/// Answers requests until the task is dropped (the relay keeps answering during shutdown, with
/// `/readyz` at 503, until the process exits). Under TLS the listener speaks HTTPS only: a
/// plaintext request fails the handshake and gets no HTTP answer.
pub async fn serve(listener: TcpListener, probes: Arc<dyn Probes>, limits: Limits) {
    let slots = Arc::new(Semaphore::new(limits.connections));
    let bodies = Arc::new(Semaphore::new(limits.bodies));
    let per_client = Arc::new(crate::policy::limits::ClientSessions::default());
    loop {
        let Ok((mut stream, peer)) = listener.accept().await else { continue };
        let Ok(permit) = slots.clone().try_acquire_owned() else { continue };
        // A direct client takes its slot here, in accept order; a proxied one once its header
        // names it.
        let proxied = probes.behind_proxy(peer.ip());
        let direct_slot = (!proxied).then(|| per_client.enter(peer.ip(), limits.connections_per_client));
        let acceptor = probes.tls().map(tokio_rustls::TlsAcceptor::from);
        let (probes, per_client, bodies) = (probes.clone(), per_client.clone(), bodies.clone());
        tokio::spawn(async move {
            let mut ip = peer.ip();
            if proxied {
                match crate::proxy::read_header(&mut stream, limits.header_timeout).await {
                    Ok(client) => ip = client.unwrap_or(ip),
                    Err(e) => {
                        tracing::warn!(proxy = %peer.ip(), error = %e, "HTTP connection from a trusted proxy without a valid PROXY v2 header; closed");
                        return;
                    }
                }
            }
            // One address cannot take the slots everyone else needs: closed at once.
            let Some(slot) = direct_slot.unwrap_or_else(|| per_client.enter(ip, limits.connections_per_client)) else { return };
            let served = async {
                match acceptor {
                    Some(acceptor) => match tokio::time::timeout(limits.header_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let certificate = tls.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|c| c.clone().into_owned());
                            connection(tls, probes, Caller { ip, certificate }, bodies, limits, true).await
                        }
                        _ => tracing::debug!(client = %ip, "HTTPS handshake failed or timed out"),
                    },
                    None => connection(stream, probes, Caller { ip, certificate: None }, bodies, limits, false).await,
                }
            };
            let _ = tokio::time::timeout(limits.connection_lifetime, served).await;
            drop((permit, slot));
        });
    }
}

/// Serves one connection; over TLS, every answer carries the [`secure`] headers.
async fn connection<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(stream: S, probes: Arc<dyn Probes>, caller: Caller, bodies: Arc<Semaphore>, limits: Limits, tls: bool) {
    let peer = caller.ip;
    let caller = Arc::new(caller);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_timeout).max_buf_size(MAX_HEAD.max(8192)).max_headers(MAX_HEADERS).keep_alive(false);
    builder.http2().timer(TokioTimer::new()).max_header_list_size(MAX_HEAD as u32).max_concurrent_streams(MAX_STREAMS);
    let service = hyper::service::service_fn(move |req| {
        let (probes, caller, bodies) = (probes.clone(), caller.clone(), bodies.clone());
        async move {
            let mut response = answer(&probes, req, &caller, &bodies).await;
            if tls {
                secure(response.headers_mut());
            }
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    if let Err(e) = builder.serve_connection(TokioIo::new(stream), service).await {
        tracing::debug!(client = %peer, error = %e, "HTTP connection ended with an error");
    }
}

/// What an HTTPS API answers with: stay on HTTPS, never sniff, frame, cache or refer.
fn secure(headers: &mut hyper::HeaderMap) {
    use hyper::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, REFERRER_POLICY, STRICT_TRANSPORT_SECURITY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS};
    for (name, value) in [
        (STRICT_TRANSPORT_SECURITY, "max-age=31536000"),
        (X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (X_FRAME_OPTIONS, "DENY"),
        (CONTENT_SECURITY_POLICY, "default-src 'none'; frame-ancestors 'none'"),
        (REFERRER_POLICY, "no-referrer"),
        (CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
}

fn text(status: u16, ctype: &'static str, body: String) -> Response<Full<Bytes>> {
    respond(Answer { status, content_type: ctype, body, retry_after: None, replayed: false })
}

fn respond(answer: Answer) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(answer.body)));
    *response.status_mut() = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(answer.content_type));
    if answer.status == 401 {
        headers.insert(hyper::header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"cascade\", Bearer realm=\"cascade\""));
    }
    if answer.replayed {
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    if let Some(seconds) = answer.retry_after {
        headers.insert(hyper::header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

async fn answer(probes: &Arc<dyn Probes>, req: Request<Incoming>, caller: &Caller, bodies: &Semaphore) -> Response<Full<Bytes>> {
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str()).to_string();
    let probe = matches!(path.as_str(), "/healthz" | "/readyz");
    if let (false, Err(refusal)) = (probe, probes.admit(&path, caller)) {
        return respond(refusal);
    }
    match *req.method() {
        Method::POST | Method::PUT | Method::DELETE => post(probes, req, &path, caller.ip, bodies).await,
        Method::GET => match path.as_str() {
            "/metrics" => match probes.metrics() {
                Some(body) => text(200, "text/plain; version=0.0.4", body),
                None => text(404, "text/plain", "not found\n".into()),
            },
            "/healthz" => text(200, "text/plain", "ok\n".into()),
            "/readyz" if probes.ready() => text(200, "text/plain", "ready\n".into()),
            "/readyz" => text(503, "text/plain", "not ready\n".into()),
            other => match probes.lookup(other, req.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok()), caller.ip) {
                Some(answer) => respond(answer.await),
                None => match probes.get(other) {
                    Some((code, ctype, body)) => text(code, ctype, body),
                    None => text(404, "text/plain", "not found\n".into()),
                },
            },
        },
        _ => text(405, "text/plain", "only GET, POST, PUT and DELETE are supported\n".into()),
    }
}

/// Authorizes first, then takes one of the listener's body slots, reads at most `max_body`
/// bytes, and runs the handler off the async workers (it may decompress, parse, decrypt or
/// fsync).
async fn post(probes: &Arc<dyn Probes>, req: Request<Incoming>, path: &str, peer: IpAddr, bodies: &Semaphore) -> Response<Full<Bytes>> {
    let authorization = req.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok());
    let method = req.method().clone();
    let who = match probes.authorize(&method, path, authorization, peer) {
        Ok(who) => who,
        Err(refusal) => return respond(refusal),
    };
    let headers = req.headers().clone();
    let max = probes.max_body();
    let too_large = || text(413, "text/plain", format!("body larger than {} MiB\n", max / 1024 / 1024));
    if req.headers().get(hyper::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok()).is_some_and(|n| n > max) {
        return too_large();
    }
    // What the listener's memory holds at once is bounded: slots × max_body.
    let Ok(_slot) = bodies.try_acquire() else {
        tracing::warn!(client = %peer, "request bodies at the listener's limit; POST refused with 503");
        return respond(Answer::text(503, "too many requests in progress; retry shortly\n").retry_after(1));
    };
    let body = match Limited::new(req.into_body(), max).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => return too_large(),
        Err(_) => return text(400, "text/plain", "the request body could not be read\n".into()),
    };
    let (probes, path) = (probes.clone(), path.to_string());
    let handled = tokio::task::spawn_blocking(move || probes.post(&method, &path, &who, &headers, &body, peer)).await;
    respond(handled.unwrap_or_else(|_| Answer::text(500, "internal error\n")))
}
