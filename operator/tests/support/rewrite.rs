//! Tests only: lets typed kube clients (the operator's, and the relay's through [`proxy`]) talk
//! to the test API server, which serves built-in kinds only as stand-in custom resources (see
//! `crds.rs`). Groups without a dot cannot be CRD groups, so `""`, `apps`, `batch`, `policy` and
//! `autoscaling` are served as `<group>.test.local` (core as `core.test.local`): request paths
//! are rewritten there, the `apiVersion` of request bodies with them, and every
//! `"apiVersion":"<group>.test.local/..."` in responses (lists and watch lines included) back to
//! the real one. Groups with a dot (`rbac.authorization.k8s.io`, `networking.k8s.io`,
//! `coordination.k8s.io`, `events.k8s.io`) are served in their real group and pass unchanged.
//! Production code stays typed and knows nothing of this.

use bytes::{Bytes, BytesMut};
use http::{Request, Response, Uri};
use http_body::{Body, Frame};
use std::pin::Pin;
use std::task::{Context, Poll};

/// The real groups the test server serves under `<group>.test.local` (`""`: core).
pub const STAND_IN_GROUPS: [&str; 5] = ["", "apps", "batch", "policy", "autoscaling"];

fn stand_in(group: &str) -> String {
    format!("{}.test.local", if group.is_empty() { "core" } else { group })
}

/// The stand-in path of a real one, when it names a stand-in group.
pub fn path(path: &str) -> Option<String> {
    if let Some(rest) = path.strip_prefix("/api/") {
        return Some(format!("/apis/core.test.local/{rest}"));
    }
    let rest = path.strip_prefix("/apis/")?;
    let (group, rest) = rest.split_once('/')?;
    STAND_IN_GROUPS.contains(&group).then(|| format!("/apis/{}/{rest}", stand_in(group)))
}

/// A request body's `apiVersion` in its stand-in group (objects only, not `DeleteOptions`).
fn request_body(bytes: &[u8]) -> Vec<u8> {
    let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(bytes) else { return bytes.to_vec() };
    let kind = v.get("kind").and_then(|k| k.as_str()).unwrap_or_default().to_string();
    if let Some(api_version) = v.get("apiVersion").and_then(|a| a.as_str()).map(String::from) {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", &api_version));
        if STAND_IN_GROUPS.contains(&group) && kind != "DeleteOptions" {
            v["apiVersion"] = format!("{}/{version}", stand_in(group)).into();
            return serde_json::to_vec(&v).unwrap();
        }
    }
    bytes.to_vec()
}

/// Every stand-in `apiVersion` in `bytes` back to the real one.
pub fn response_bytes(bytes: &[u8]) -> Bytes {
    let mut text = String::from_utf8_lossy(bytes).into_owned();
    for group in STAND_IN_GROUPS {
        let real = if group.is_empty() { String::new() } else { format!("{group}/") };
        text = text.replace(&format!("\"apiVersion\":\"{}/", stand_in(group)), &format!("\"apiVersion\":\"{real}"));
    }
    Bytes::from(text)
}

/// The request with its path and body in the stand-in group. Bodies kube sends are in memory.
pub fn request(req: Request<kube::client::Body>) -> Request<kube::client::Body> {
    use futures::FutureExt;
    use http_body_util::BodyExt;
    let (mut parts, body) = req.into_parts();
    let Some(p) = path(parts.uri.path()) else { return Request::from_parts(parts, body) };
    let pq = match parts.uri.query() {
        Some(q) => format!("{p}?{q}"),
        None => p,
    };
    let mut uri = parts.uri.clone().into_parts();
    uri.path_and_query = Some(pq.parse().unwrap());
    parts.uri = Uri::from_parts(uri).unwrap();
    let bytes = body.collect().now_or_never().expect("kube request bodies are in memory").expect("request body").to_bytes();
    Request::from_parts(parts, kube::client::Body::from(request_body(&bytes)))
}

pub fn response<B>(resp: Response<B>) -> Response<Rewritten<B>> {
    resp.map(|inner| Rewritten { inner, buf: BytesMut::new(), done: false })
}

/// A response body rewritten line by line (a watch sends one event per line; other responses
/// are one document, rewritten at their end).
pub struct Rewritten<B> {
    inner: B,
    buf: BytesMut,
    done: bool,
}

impl<B> Body for Rewritten<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        loop {
            let this = &mut *self;
            if let Some(end) = this.buf.iter().rposition(|&b| b == b'\n') {
                let lines = this.buf.split_to(end + 1);
                return Poll::Ready(Some(Ok(Frame::data(response_bytes(&lines)))));
            }
            if this.done {
                if this.buf.is_empty() {
                    return Poll::Ready(None);
                }
                let rest = this.buf.split();
                return Poll::Ready(Some(Ok(Frame::data(response_bytes(&rest)))));
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => this.done = true,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => this.buf.extend_from_slice(&data),
                    Err(frame) => return Poll::Ready(Some(Ok(frame))),
                },
            }
        }
    }
}

/// A client for the test server whose typed APIs reach the stand-ins; `record` also records
/// every call (see `calls.rs`).
pub async fn client(kubeconfig: &std::path::Path, record: bool) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.unwrap();
    let builder = kube::client::ClientBuilder::try_from(config).unwrap();
    let builder = builder.with_layer(&tower::util::MapRequestLayer::new(request)).with_layer(&tower::util::MapResponseLayer::new(response));
    if record {
        builder.with_layer(&tower::util::MapRequestLayer::new(super::calls::record_request)).build()
    } else {
        builder.build()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn paths_and_api_versions_map_both_ways() {
        assert_eq!(super::path("/api/v1/namespaces/shop/secrets").as_deref(), Some("/apis/core.test.local/v1/namespaces/shop/secrets"));
        assert_eq!(super::path("/apis/apps/v1/statefulsets").as_deref(), Some("/apis/apps.test.local/v1/statefulsets"));
        assert_eq!(super::path("/apis/rbac.authorization.k8s.io/v1/roles"), None);
        let back = super::response_bytes(br#"{"apiVersion":"core.test.local/v1","items":[{"apiVersion":"autoscaling.test.local/v2"}]}"#);
        assert_eq!(&back[..], br#"{"apiVersion":"v1","items":[{"apiVersion":"autoscaling/v2"}]}"#);
    }
}
