//! The operator's HTTP listener, on hyper: `GET /metrics` (Prometheus text), `/healthz` (the
//! process runs) and `/readyz` (it reached the API server and holds its master key; 503
//! before). Headers must arrive within 10 s, a connection lasts at most 60 s, and at most 64 are
//! served at once: the listener is on the pod network.

use crate::metrics::Metrics;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

const MAX_CONNECTIONS: usize = 64;

fn answer(metrics: &Metrics, method: &Method, path: &str) -> Response<Full<Bytes>> {
    let (status, body) = match (method, path) {
        (&Method::GET, "/metrics") => (StatusCode::OK, metrics.render()),
        (&Method::GET, "/healthz") => (StatusCode::OK, "ok\n".to_string()),
        (&Method::GET, "/readyz") if metrics.is_ready() => (StatusCode::OK, "ready\n".to_string()),
        (&Method::GET, "/readyz") => (StatusCode::SERVICE_UNAVAILABLE, "not ready\n".to_string()),
        (&Method::GET, _) => (StatusCode::NOT_FOUND, "not found\n".to_string()),
        _ => (StatusCode::METHOD_NOT_ALLOWED, "only GET\n".to_string()),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"));
    response
}

/// Serves until the task is dropped.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let Ok((stream, _)) = listener.accept().await else { continue };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let response = answer(&metrics, req.method(), req.uri().path());
                async move { Ok::<_, Infallible>(response) }
            });
            let conn = hyper::server::conn::http1::Builder::new().timer(TokioTimer::new()).header_read_timeout(Duration::from_secs(10)).max_headers(32).serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(Duration::from_secs(60), conn).await;
            drop(slot);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_probes_and_metrics_and_nothing_else() {
        let m = Metrics::default();
        assert_eq!(answer(&m, &Method::GET, "/readyz").status(), StatusCode::SERVICE_UNAVAILABLE);
        m.set_ready();
        assert_eq!(answer(&m, &Method::GET, "/readyz").status(), StatusCode::OK);
        assert_eq!(answer(&m, &Method::GET, "/healthz").status(), StatusCode::OK);
        assert_eq!(answer(&m, &Method::GET, "/metrics").status(), StatusCode::OK);
        assert_eq!(answer(&m, &Method::GET, "/secrets").status(), StatusCode::NOT_FOUND);
        assert_eq!(answer(&m, &Method::POST, "/metrics").status(), StatusCode::METHOD_NOT_ALLOWED);
    }
}
