//! The operator's reads of its relays' admin listeners (`listeners.adminPort`): a bounded GET
//! of a JSON document, `None` when a relay does not answer in time (it is then left out). Also
//! the relays' audit anchors, kept in the RelayPool's status: outside the relays' volumes, so
//! `audit verify --anchor` can tell a trail cut short there.

use serde::de::DeserializeOwned;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MAX_BODY: u64 = 4 * 1024 * 1024;

pub async fn get_json<T: DeserializeOwned>(addr: SocketAddr, path: &str) -> Option<T> {
    let get = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: relay\r\nConnection: close\r\n\r\n").as_bytes()).await.ok()?;
        let mut out = Vec::new();
        s.take(MAX_BODY).read_to_end(&mut out).await.ok()?;
        let body = out.windows(4).position(|w| w == b"\r\n\r\n").map(|p| &out[p + 4..])?;
        out.starts_with(b"HTTP/1.1 200").then(|| serde_json::from_slice(body).ok()).flatten()
    };
    tokio::time::timeout(Duration::from_secs(3), get).await.ok().flatten()
}

/// One relay's latest audit checkpoint, named after the relay (its pod).
pub async fn audit_anchor(addr: SocketAddr) -> Option<cascade_crds::v1alpha1::AuditAnchor> {
    get_json(addr, "/audit/anchor").await
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
