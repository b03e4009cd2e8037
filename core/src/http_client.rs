//! One HTTP/1.1 request to a pod on the cluster network, on hyper: the operator's reads of its
//! relays' admin listeners and the relays' handovers to each other. Bounded in time (the whole
//! exchange) and in the size of the answer's body.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::time::Duration;

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("connecting: {0}")]
    Connect(std::io::Error),
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("the answer's body is larger than {0} bytes or could not be read")]
    Body(usize),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("bad request: {0}")]
    Build(#[from] hyper::http::Error),
}

/// An answer: status and body.
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
}

/// Sends `method path` with `headers` and `body` to `addr` and reads the answer, whose body may
/// be at most `max_body` bytes, all within `timeout`.
pub async fn request(addr: SocketAddr, method: Method, path: &str, headers: &[(&str, &str)], body: Bytes, max_body: usize, timeout: Duration) -> Result<Answer, RequestError> {
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(addr).await.map_err(RequestError::Connect)?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut req = Request::builder().method(method).uri(path).header(hyper::header::HOST, addr.to_string());
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let response = sender.send_request(req.body(Full::new(body))?).await?;
        let status = response.status().as_u16();
        let body = Limited::new(response.into_body(), max_body).collect().await.map_err(|_| RequestError::Body(max_body))?.to_bytes();
        driver.abort();
        Ok(Answer { status, body })
    };
    tokio::time::timeout(timeout, exchange).await.map_err(|_| RequestError::Timeout(timeout))?
}
