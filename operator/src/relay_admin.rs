//! The operator's reads of its relays' admin listeners (`listeners.adminPort`): a bounded GET
//! of a JSON document, `None` when a relay does not answer in time (it is then left out). Also
//! the relays' audit anchors, kept in the RelayPool's status: outside the relays' volumes, so
//! `audit verify --anchor` can tell a trail cut short there.

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
    let answer = request(call, MAX_BODY, Duration::from_secs(3)).await;
    match answer {
        Ok(a) if a.status == 200 => serde_json::from_slice(&a.body).ok(),
        Ok(a) => {
            tracing::debug!(relay = %addr, path, status = a.status, "relay admin read refused");
            None
        }
        Err(e) => {
            tracing::debug!(relay = %addr, path, error = %e, "relay admin read failed");
            None
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use cascade_crds::v1alpha1::AuditAnchor;

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
