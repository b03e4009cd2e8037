//! Tests only: a plain-HTTP proxy on 127.0.0.1 in front of the test API server, through the
//! rewrite layer, for processes a test starts (the relay's configuration watch): their typed
//! clients reach the stand-ins the same way the operator's in-process client does.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub struct Proxy {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    /// Starts the proxy for the server of `kubeconfig`.
    pub async fn start(kubeconfig: &Path) -> Self {
        let client = super::rewrite::client(kubeconfig, false).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let client = client.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let client = client.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let bytes = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                            let req = http::Request::from_parts(parts, kube::client::Body::from(bytes.to_vec()));
                            match client.send(req).await {
                                Ok(mut resp) => {
                                    // The rewrite layer changes bodies' lengths (the stand-in
                                    // apiVersion back to the real one): let hyper frame them.
                                    resp.headers_mut().remove(http::header::CONTENT_LENGTH);
                                    Ok::<_, std::convert::Infallible>(resp.map(|b| b.map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>).boxed_unsync()))
                                }
                                Err(e) => {
                                    let body = Full::new(Bytes::from(e.to_string())).map_err(|never| match never {}).boxed_unsync();
                                    Ok(http::Response::builder().status(502).body(body).unwrap())
                                }
                            }
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
        Self { addr, task }
    }

    /// A kubeconfig for a process: the proxy, no credentials (the proxy holds them).
    pub fn kubeconfig(&self, dir: &Path) -> PathBuf {
        let path = dir.join("proxy.kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: p\n  cluster:\n    server: http://{}\nusers:\n- name: u\n  user: {{}}\ncontexts:\n- name: p\n  context: {{cluster: p, user: u}}\ncurrent-context: p\n",
            self.addr
        );
        std::fs::write(&path, text).unwrap();
        path
    }
}
