//! The operator's reads of its relays' admin listeners (`listeners.adminPort`): a bounded GET
//! of a JSON document, `None` when a relay does not answer in time (it is then left out). Also
//! the relays' audit anchors, kept in the RelayPool's status: outside the relays' volumes, so
//! `audit verify --anchor` can tell a trail cut short there; and the mail they hold per tenant.

use cascade_core::http_client::{request, Call, Tls};
use kube::ResourceExt;
use serde::de::DeserializeOwned;
use std::net::SocketAddr;
use std::time::Duration;

const MAX_BODY: usize = 4 * 1024 * 1024;

/// `GET path` as JSON (over the pool's mutual TLS when `tls` is given); `None` unless the relay
/// answers `200` with a document within 3 s.
pub async fn get_json<T: DeserializeOwned>(addr: SocketAddr, tls: Option<&Tls>, path: &str) -> Option<T> {
    let call = Call { addr, tls, method: hyper::Method::GET, path, headers: &[], body: Default::default() };
    json_of(call, Duration::from_secs(3)).await
}

/// The answer's JSON on `200` within `timeout`; else `None`, logged.
async fn json_of<T: DeserializeOwned>(call: Call<'_>, timeout: Duration) -> Option<T> {
    let (addr, path) = (call.addr, call.path);
    match request(call, MAX_BODY, timeout).await {
        Ok(a) if a.status == 200 => serde_json::from_slice(&a.body).ok(),
        Ok(a) => {
            tracing::debug!(relay = %addr, path, status = a.status, "relay admin request refused");
            None
        }
        Err(e) => {
            tracing::debug!(relay = %addr, path, error = %e, "relay admin request failed");
            None
        }
    }
}

/// `POST path` with a JSON body; the answer's JSON on `200` within `timeout`, else `None`.
pub async fn post_json<T: DeserializeOwned>(addr: SocketAddr, tls: Option<&Tls>, path: &str, body: &serde_json::Value, timeout: Duration) -> Option<T> {
    let headers = [("content-type", "application/json")];
    json_of(Call { addr, tls, method: hyper::Method::POST, path, headers: &headers, body: serde_json::to_vec(body).ok()?.into() }, timeout).await
}

/// The admin listeners of the pool's relays (one address per pod, from the headless Service).
pub async fn addrs(ctx: &crate::Context, pool: &cascade_crds::v1alpha1::RelayPool) -> Vec<SocketAddr> {
    match &ctx.relay_http {
        Some(a) => a.clone(),
        None => {
            let host = crate::labels::headless_host(&pool.name_any(), &pool.namespace().unwrap_or_default());
            ctx.dns.addresses(&host).await.into_iter().map(|ip| SocketAddr::new(ip, pool.spec.listeners.admin_port)).collect()
        }
    }
}

/// One relay's latest audit checkpoint, named after the relay (its pod).
pub async fn audit_anchor(addr: SocketAddr, tls: Option<&Tls>) -> Option<cascade_crds::v1alpha1::AuditAnchor> {
    get_json(addr, tls, "/audit/anchor").await
}

/// How many relays' anchors a pool's status keeps (the newest).
const MAX_ANCHORS: usize = 64;

/// The anchors the status keeps: each relay's newest, those of relays that did not answer kept
/// (their trails are still on their volumes), newest first up to [`MAX_ANCHORS`]. Pure.
pub fn merge_anchors(previous: &[cascade_crds::v1alpha1::AuditAnchor], fresh: Vec<cascade_crds::v1alpha1::AuditAnchor>) -> Vec<cascade_crds::v1alpha1::AuditAnchor> {
    let mut by_relay: std::collections::BTreeMap<String, cascade_crds::v1alpha1::AuditAnchor> = previous.iter().map(|a| (a.relay.clone(), a.clone())).collect();
    for a in fresh {
        by_relay.insert(a.relay.clone(), a);
    }
    let mut all: Vec<_> = by_relay.into_values().collect();
    all.sort_by(|a, b| b.time.cmp(&a.time).then(a.relay.cmp(&b.relay)));
    all.truncate(MAX_ANCHORS);
    all.sort_by(|a, b| a.relay.cmp(&b.relay));
    all
}

/// What one relay reports of its queue for one tenant (`GET /queue`).
#[derive(Clone, Debug, serde::Deserialize, PartialEq)]
pub struct QueueReport {
    pub namespace: String,
    pub messages: u64,
    /// When its oldest waiting message was accepted (unix seconds).
    pub oldest: u64,
}

/// How many tenants' queues a pool's status lists (the largest).
const MAX_QUEUES: usize = 200;

/// The pool's queue per tenant: summed over the relays, the oldest of the oldest, largest first
/// up to [`MAX_QUEUES`], then by name. Pure.
pub fn fold_queues(reports: &[QueueReport]) -> Vec<cascade_crds::v1alpha1::TenantQueue> {
    let mut by: std::collections::BTreeMap<&str, (u64, u64)> = Default::default();
    for r in reports {
        let e = by.entry(&r.namespace).or_insert((0, r.oldest));
        *e = (e.0 + r.messages, e.1.min(r.oldest));
    }
    let mut all: Vec<_> = by.into_iter().collect();
    all.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then(a.0.cmp(b.0)));
    all.truncate(MAX_QUEUES);
    all.sort_by(|a, b| a.0.cmp(b.0));
    let at = |t: u64| cascade_core::time::rfc3339_utc(t);
    all.into_iter().map(|(ns, (n, oldest))| cascade_crds::v1alpha1::TenantQueue { namespace: ns.to_string(), messages: n, oldest_accepted_at: at(oldest) }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cascade_crds::v1alpha1::AuditAnchor;

    #[test]
    fn queues_sum_over_relays_and_keep_the_oldest() {
        let r = |ns: &str, messages, oldest| QueueReport { namespace: ns.into(), messages, oldest };
        let folded = fold_queues(&[r("shop", 3, 1_800_000_100), r("blog", 1, 1_800_000_000), r("shop", 2, 1_800_000_050)]);
        let got: Vec<_> = folded.iter().map(|q| (q.namespace.as_str(), q.messages, q.oldest_accepted_at.as_str())).collect();
        assert_eq!(got, [("blog", 1, "2027-01-15T08:00:00Z"), ("shop", 5, "2027-01-15T08:00:50Z")]);
        let many: Vec<_> = (0..500).map(|i| r(&format!("t{i:03}"), i, 1)).collect();
        let kept = fold_queues(&many);
        assert_eq!(kept.len(), MAX_QUEUES);
        assert!(kept.iter().all(|q| q.messages >= 300), "the largest are kept");
    }

    fn anchor(relay: &str, seq: u64, time: &str) -> AuditAnchor {
        AuditAnchor { relay: relay.into(), seq, mac: "ab".repeat(32), time: time.into() }
    }

    #[test]
    fn each_relay_keeps_its_newest_anchor_and_silent_relays_stay() {
        let previous = vec![anchor("main-relay-0", 10, "2027-01-01T00:00:00Z"), anchor("main-relay-1", 4, "2027-01-01T00:00:00Z")];
        let merged = merge_anchors(&previous, vec![anchor("main-relay-0", 12, "2027-01-01T00:01:00Z")]);
        assert_eq!(merged.iter().map(|a| (a.relay.as_str(), a.seq)).collect::<Vec<_>>(), [("main-relay-0", 12), ("main-relay-1", 4)]);
        let many: Vec<_> = (0..100).map(|i| anchor(&format!("r{i:03}"), i, &format!("2027-01-01T00:{:02}:00Z", i % 60))).collect();
        assert_eq!(merge_anchors(&[], many).len(), MAX_ANCHORS);
    }
}
