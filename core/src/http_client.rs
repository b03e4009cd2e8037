//! One HTTP/1.1 request to a pod on the cluster network, on hyper: the operator's reads of its
//! relays' admin listeners and the relays' handovers to each other, over mutual TLS when the
//! pool has its admin authority ([`Tls`]). Bounded in time (the whole exchange) and in the size
//! of the answer's body.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// How to reach a TLS listener: the client configuration (roots, and the client certificate to
/// present) and the name the server's certificate must carry, whatever address it is at.
#[derive(Clone)]
pub struct Tls {
    pub config: Arc<rustls::ClientConfig>,
    pub server_name: rustls::pki_types::ServerName<'static>,
}

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("connecting: {0}")]
    Connect(std::io::Error),
    #[error("TLS handshake: {0}")]
    Handshake(std::io::Error),
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("the answer's body is larger than {0} bytes or could not be read")]
    Body(usize),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("bad request: {0}")]
    Build(#[from] hyper::http::Error),
}

/// An answer: status, body, and its `Retry-After` in seconds when it gave one.
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
    pub retry_after: Option<u64>,
}

/// One request: where, how, what.
pub struct Call<'a> {
    pub addr: SocketAddr,
    /// `None`: plaintext (a listener on loopback).
    pub tls: Option<&'a Tls>,
    pub method: Method,
    pub path: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
    pub body: Bytes,
}

/// Sends the call and reads the answer, whose body may be at most `max_body` bytes, all within
/// `timeout`.
pub async fn request(call: Call<'_>, max_body: usize, timeout: Duration) -> Result<Answer, RequestError> {
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(call.addr).await.map_err(RequestError::Connect)?;
        match call.tls {
            Some(tls) => {
                let connector = tokio_rustls::TlsConnector::from(tls.config.clone());
                let stream = connector.connect(tls.server_name.clone(), stream).await.map_err(RequestError::Handshake)?;
                exchange(stream, call, max_body).await
            }
            None => exchange(stream, call, max_body).await,
        }
    };
    tokio::time::timeout(timeout, exchange).await.map_err(|_| RequestError::Timeout(timeout))?
}

async fn exchange<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static>(stream: S, call: Call<'_>, max_body: usize) -> Result<Answer, RequestError> {
    let Call { addr, method, path, headers, body, .. } = call;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut req = Request::builder().method(method).uri(path);
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        req = req.header(hyper::header::HOST, addr.to_string());
    }
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let response = sender.send_request(req.body(Full::new(body))?).await?;
    let status = response.status().as_u16();
    let retry_after = response.headers().get(hyper::header::RETRY_AFTER).and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
    let body = Limited::new(response.into_body(), max_body).collect().await.map_err(|_| RequestError::Body(max_body))?.to_bytes();
    driver.abort();
    Ok(Answer { status, body, retry_after })
}

/// Why a [`Tls`] could not be built from PEM.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading PEM: {0}")]
    Pem(#[from] rustls::pki_types::pem::Error),
    #[error("the CA file holds no certificate")]
    NoCa,
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
    #[error("{0:?} is not a valid server name")]
    Name(String),
}

impl Tls {
    /// Mutual TLS (1.2+, aws-lc-rs) within one authority: the server is verified against
    /// `ca_pem` under `server_name`, and presents `cert_pem`/`key_pem` as its client certificate.
    pub fn mutual(ca_pem: &[u8], cert_pem: &[u8], key_pem: &[u8], server_name: &str) -> Result<Self, TlsError> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
        let mut roots = rustls::RootCertStore::empty();
        for ca in CertificateDer::pem_slice_iter(ca_pem) {
            roots.add(ca?)?;
        }
        if roots.is_empty() {
            return Err(TlsError::NoCa);
        }
        let chain = CertificateDer::pem_slice_iter(cert_pem).collect::<Result<Vec<_>, _>>()?;
        let key = PrivateKeyDer::from_pem_slice(key_pem)?;
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)?;
        let server_name = ServerName::try_from(server_name.to_string()).map_err(|_| TlsError::Name(server_name.into()))?;
        Ok(Self { config: Arc::new(config), server_name })
    }
}
