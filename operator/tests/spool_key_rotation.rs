//! Spool key rotation against the real API server: annotating a RelayPool puts a new key first
//! in `<pool>-keys` (the older one kept, so queued files stay readable), once per annotation
//! value, with an Event; the Secret also carries the relays' audit key.

mod support;

use kube::api::{Patch, PatchParams};
use support::operator::until;

fn ring(data: &std::collections::BTreeMap<String, Vec<u8>>) -> Vec<String> {
    String::from_utf8_lossy(&data["spool.key"]).lines().map(|l| l.split_whitespace().next().unwrap_or_default().to_string()).collect()
}

#[tokio::test]
async fn an_annotation_rotates_the_spool_key_keeping_the_old_one() {
    let Some(op) = support::operator::start().await else { return };
    let pools = support::world::pool(&op.client, serde_json::json!({ "dnsVerification": "warn" })).await;
    support::world::domain(&op.client, serde_json::json!({})).await;
    let keys = until("the pool's keys, with rotation tracked", || async { op.secrets.get("cascade-system", "main-keys").await.ok()?.filter(|k| k.contains_key("spool.key.rotated-at")) }).await;
    assert_eq!(ring(&keys), ["s1"]);
    assert!(cascade_core::audit::parse_key(&String::from_utf8_lossy(&keys["audit.key"])).is_ok(), "the relays' audit key");
    let first_key = String::from_utf8_lossy(&keys["spool.key"]).trim().to_string();

    let ask = |v: &str| serde_json::json!({ "metadata": { "annotations": { "cascade-mail.com/rotate-spool-key": v } } });
    pools.patch("main", &PatchParams::default(), &Patch::Merge(&ask("incident-1"))).await.unwrap();
    let rotated = until("a new first spool key", || async { op.secrets.get("cascade-system", "main-keys").await.ok()?.filter(|k| ring(k).len() == 2) }).await;
    assert_eq!(ring(&rotated), ["s2", "s1"]);
    let text = String::from_utf8_lossy(&rotated["spool.key"]).to_string();
    assert_eq!(text.lines().nth(1).unwrap(), first_key, "the old key is kept as it was");
    let ring = cascade_core::seal::KeyRing::parse(&text).unwrap();
    assert_eq!(ring.active(), "s2");
    let (_, note) = support::operator::event(&op.client, "cascade-system", "main", "SpoolKeyRotated").await;
    assert!(note.contains("spool key s2 now seals new spool files"), "{note}");

    // The same value again rotates nothing more.
    pools.patch("main", &PatchParams::default(), &Patch::Merge(&serde_json::json!({ "metadata": { "annotations": { "test/nudge": "1" } } }))).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let after = op.secrets.get("cascade-system", "main-keys").await.unwrap().unwrap();
    assert_eq!(String::from_utf8_lossy(&after["spool.key"]), text);
}
