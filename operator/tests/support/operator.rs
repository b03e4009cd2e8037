//! The operator's controllers running against the test API server, and a bounded wait.

use super::apiserver::ApiServer;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Running {
    pub client: kube::Client,
    pub secrets: cascade_operator::secrets::SecretStore,
    pub ctx: Arc<cascade_operator::Context>,
    controller: tokio::task::JoinHandle<()>,
    // Last: the server outlives the controller that talks to it.
    _server: ApiServer,
}

impl Running {
    /// The test API server's kubeconfig (for a [`super::proxy::Proxy`] in front of it).
    pub fn kubeconfig(&self) -> std::path::PathBuf {
        self._server.kubeconfig()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.controller.abort();
    }
}

/// Starts the API server, installs the CRDs and the stand-ins for built-in kinds, ensures the
/// master key and runs the controllers. `None` when the server is not available here (the test
/// then passes after a loud SKIP).
pub async fn start() -> Option<Running> {
    start_with(|_| {}).await
}

/// [`start`], with the context adjusted by `adjust` before the controllers run.
pub async fn start_with(adjust: impl FnOnce(&mut cascade_operator::Context)) -> Option<Running> {
    start_on(false, adjust).await
}

/// [`start_with`], on CRDs without validation when `loose` (see `crds::install_loose`).
pub async fn start_on(loose: bool, adjust: impl FnOnce(&mut cascade_operator::Context)) -> Option<Running> {
    Some(empty(loose).await?.run(adjust).await)
}

/// A test API server with the CRDs and the stand-ins for built-in kinds, the controllers not
/// yet running (a restore drill writes into it first).
pub struct Empty {
    pub client: kube::Client,
    server: ApiServer,
}

pub async fn empty(loose: bool) -> Option<Empty> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let server = ApiServer::start().await?;
    let client = server.client.clone();
    if loose {
        super::crds::install_loose(&client).await;
    } else {
        super::crds::install(&client).await;
    }
    super::crds::install_stand_ins(&client).await;
    Some(Empty { client, server })
}

impl Empty {
    pub fn kubeconfig(&self) -> std::path::PathBuf {
        self.server.kubeconfig()
    }

    /// Ensures the master key and runs the controllers, the context adjusted by `adjust`.
    pub async fn run(self, adjust: impl FnOnce(&mut cascade_operator::Context)) -> Running {
        let Empty { client, server } = self;
        // The operator's own client records its calls (support::calls); the test's does not.
        let operator_client = super::calls::recording_client(&server.kubeconfig()).await;
        let master = cascade_operator::master_key::ensure(&cascade_operator::secrets::SecretStore::new(operator_client.clone()), "cascade-system").await.unwrap();
        let mut ctx = super::crds::context(&operator_client, master);
        // What the test itself reads and writes goes through the unrecorded client.
        let secrets = cascade_operator::secrets::SecretStore::new(client.clone());
        adjust(&mut ctx);
        let ctx = Arc::new(ctx);
        let controller = tokio::spawn(cascade_operator::controller::run(ctx.clone()));
        Running { client, secrets, ctx, controller, _server: server }
    }
}

/// Polls `f` until it yields a value; fails the test after 45 seconds.
pub async fn until<T, F: std::future::Future<Output = Option<T>>>(what: &str, mut f: impl FnMut() -> F) -> T {
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The Events in `ns` as (type, reason, regarding object name, note).
pub async fn events(client: &kube::Client, ns: &str) -> Vec<(String, String, String, String)> {
    let api: kube::Api<k8s_openapi::api::events::v1::Event> = kube::Api::namespaced(client.clone(), ns);
    let list = api.list(&Default::default()).await.unwrap().items;
    list.into_iter().map(|e| (e.type_.unwrap_or_default(), e.reason.unwrap_or_default(), e.regarding.and_then(|r| r.name).unwrap_or_default(), e.note.unwrap_or_default())).collect()
}

/// Waits for an Event with this reason about this object; returns its type and note.
pub async fn event(client: &kube::Client, ns: &str, regarding: &str, reason: &str) -> (String, String) {
    until(&format!("Event {reason} for {ns}/{regarding}"), || async { events(client, ns).await.into_iter().find(|e| e.1 == reason && e.2 == regarding).map(|e| (e.0, e.3)) }).await
}

/// Serves the operator's probes on a loopback port, as `cascade-operator run` does; returns the
/// address.
pub async fn serve_probes(metrics: Arc<cascade_operator::metrics::Metrics>) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(cascade_operator::probes::serve(listener, metrics));
    addr
}

/// One GET; the whole response (status line, headers, body).
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut out)).await.unwrap().unwrap();
    out
}
