//! `kubectl cascade keys [--unused 90d]`: API keys with their state and last use (the relays
//! report it; the operator folds it into `status.lastUsedAt` at most once a minute). With
//! `--unused`, only the keys to review for revocation: not used for that long, or never used
//! and created that long ago. Revoked and expired keys are left out of that list. [`unused`]
//! is pure.

use super::output::{self, Format, Table};
use super::{Outcome, PluginError};
use cascade_crds::v1alpha1::{ApiKey, ApiKeyState};
use kube::api::{Api, ListParams};
use kube::ResourceExt;
use serde_json::json;
use std::time::Duration;

fn unix(rfc3339: &str) -> Option<u64> {
    rfc3339.parse::<jiff::Timestamp>().ok().and_then(|t| u64::try_from(t.as_second()).ok())
}

/// Whether `key` has not been used for `idle` at `now` (never used: counted from creation).
pub fn unused(key: &ApiKey, idle: Duration, now: u64) -> bool {
    let st = key.status.clone().unwrap_or_default();
    if matches!(st.state, Some(ApiKeyState::Revoked | ApiKeyState::Expired)) {
        return false;
    }
    let since = st.last_used_at.as_deref().and_then(unix).or_else(|| key.metadata.creation_timestamp.as_ref().and_then(|t| u64::try_from(t.0.as_second()).ok()));
    since.is_some_and(|t| now.saturating_sub(t) >= idle.as_secs())
}

pub async fn run(client: &kube::Client, scope: Option<&str>, idle: Option<Duration>, format: Format) -> Outcome {
    let api: Api<ApiKey> = match scope {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let mut keys = api.list(&ListParams::default()).await.map_err(PluginError::api("listing ApiKeys"))?.items;
    keys.sort_by_key(|k| (k.namespace(), k.name_any()));
    let now = cascade_core::time::now_unix();
    let keys: Vec<ApiKey> = keys.into_iter().filter(|k| idle.is_none_or(|d| unused(k, d, now))).collect();
    let rows: Vec<serde_json::Value> = keys
        .iter()
        .map(|k| {
            let st = k.status.clone().unwrap_or_default();
            let created = k.metadata.creation_timestamp.as_ref().map(|t| t.0.to_string());
            json!({ "namespace": k.namespace(), "name": k.name_any(), "keyId": st.key_id, "state": st.state.map(|s| format!("{s:?}")), "createdAt": created, "lastUsedAt": st.last_used_at, "lastSourceNetwork": st.last_source_network })
        })
        .collect();
    let doc = json!({ "unusedFor": idle.map(|d| cascade_crds::units::HumanDuration(d).to_string()), "apiKeys": rows });
    output::print(format, &doc, || {
        let mut t = Table::new(None, &["NAMESPACE", "NAME", "KEY ID", "STATE", "CREATED", "LAST USED", "LAST NETWORK"]);
        let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
        for r in &rows {
            t.row(vec![s(&r["namespace"]), s(&r["name"]), s(&r["keyId"]), s(&r["state"]), s(&r["createdAt"]), s(&r["lastUsedAt"]), s(&r["lastSourceNetwork"])]);
        }
        let mut out = String::new();
        t.render(&mut out);
        if let Some(d) = idle {
            out.push_str(&format!(
                "{} key(s) unused for {}: revoke with kubectl -n NAMESPACE patch apikey NAME --type merge -p '{{\"spec\":{{\"revoked\":true}}}}'\n",
                rows.len(),
                cascade_crds::units::HumanDuration(d)
            ));
        }
        out
    });
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(created: &str, last_used: Option<&str>, state: &str) -> ApiKey {
        serde_json::from_value(json!({ "metadata": { "name": "k", "namespace": "shop", "creationTimestamp": created }, "spec": {}, "status": { "state": state, "lastUsedAt": last_used } })).unwrap()
    }

    #[test]
    fn unused_counts_from_the_last_use_or_creation_and_skips_retired_keys() {
        let day = 86_400;
        let now = unix("2027-06-01T00:00:00Z").unwrap();
        let ninety = Duration::from_secs(90 * day);
        assert!(unused(&key("2027-01-01T00:00:00Z", Some("2027-02-01T00:00:00Z"), "Active"), ninety, now), "last used 120 days ago");
        assert!(!unused(&key("2027-01-01T00:00:00Z", Some("2027-05-01T00:00:00Z"), "Active"), ninety, now), "used a month ago");
        assert!(unused(&key("2027-01-01T00:00:00Z", None, "Active"), ninety, now), "never used, created long ago");
        assert!(!unused(&key("2027-05-20T00:00:00Z", None, "Active"), ninety, now), "never used, but new");
        assert!(!unused(&key("2027-01-01T00:00:00Z", None, "Revoked"), ninety, now), "already revoked");
    }
}
