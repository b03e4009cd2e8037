//! Administrative actions taken outside the operator reach its audit trail. `restore` and the
//! destruction of a tenant's backup key (`erase --tenant`, an ErasureRequest) run where the
//! operator's trail is not: they leave a record in the Secret [`SECRET_NAME`] of the operator's
//! namespace — the action, what it did, and the Kubernetes user that ran it as the API server
//! says (a SelfSubjectReview) — and the operator moves every record into its HMAC-chained trail
//! at start and every [`EVERY`], oldest first, then removes it. The Secret is only a mailbox:
//! the trail is the record. It is not labelled as Cascade's, so backups leave it out.

use crate::Context;
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams, PostParams};
use std::time::Duration;

pub const SECRET_NAME: &str = "cascade-admin-records";
pub const EVERY: Duration = Duration::from_secs(30);

/// Said when the API server does not tell who the client is.
pub const UNKNOWN: &str = "unknown (the API server answered no SelfSubjectReview; see its audit log)";

/// The user the client authenticates as, as the API server says (Kubernetes 1.28+).
async fn who(client: &kube::Client) -> String {
    let review = Api::<SelfSubjectReview>::all(client.clone()).create(&PostParams::default(), &SelfSubjectReview::default()).await;
    review.ok().and_then(|r| describe(&r)).unwrap_or_else(|| UNKNOWN.into())
}

/// `user (group, ...)` from a SelfSubjectReview's answer. Pure.
pub fn describe(review: &SelfSubjectReview) -> Option<String> {
    let user = review.status.as_ref()?.user_info.as_ref()?;
    Some(format!("{} ({})", user.username.as_deref()?, user.groups.clone().unwrap_or_default().join(", ")))
}

/// Leaves `event` with `data` (no secrets, addresses masked) for the operator's trail.
pub async fn leave(client: &kube::Client, operator_ns: &str, event: &str, mut data: serde_json::Value) -> Result<(), kube::Error> {
    if let Some(o) = data.as_object_mut() {
        o.insert("by".into(), who(client).await.into());
    }
    let record = serde_json::json!({ "event": event, "data": data }).to_string();
    let key = format!("{:016}-{event}", cascade_core::time::now_unix_ms());
    let api: Api<Secret> = Api::namespaced(client.clone(), operator_ns);
    let entry = serde_json::json!({ "data": { key.as_str(): base64(record.as_bytes()) } });
    match api.patch(SECRET_NAME, &PatchParams::default(), &Patch::Merge(&entry)).await {
        Err(kube::Error::Api(s)) if s.code == 404 => {
            let secret: Secret =
                serde_json::from_value(serde_json::json!({ "metadata": { "name": SECRET_NAME, "namespace": operator_ns }, "data": entry["data"] })).map_err(kube::Error::SerdeError)?;
            api.create(&PostParams::default(), &secret).await.map(|_| ())
        }
        other => other.map(|_| ()),
    }
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The records in the mailbox, oldest first: (key, event, data); unreadable entries are
/// recorded as such, so none is silently lost.
pub fn read(secret: &Secret) -> Vec<(String, String, serde_json::Value)> {
    let entries = secret.data.iter().flatten();
    entries
        .map(|(k, v)| match serde_json::from_slice::<serde_json::Value>(&v.0) {
            Ok(r) => (k.clone(), r["event"].as_str().unwrap_or("admin.unknown").to_string(), r["data"].clone()),
            Err(e) => (k.clone(), "admin.unreadable".to_string(), serde_json::json!({ "key": k, "error": e.to_string() })),
        })
        .collect()
}

/// Moves the mailbox's records into the trail; how many.
pub async fn drain(ctx: &Context) -> Result<usize, kube::Error> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let Some(secret) = api.get_opt(SECRET_NAME).await? else { return Ok(0) };
    let records = read(&secret);
    if records.is_empty() {
        return Ok(0);
    }
    for (_, event, data) in &records {
        ctx.events.record(event, data.clone());
    }
    // Only the keys recorded go; a record left meanwhile stays for the next round.
    let gone: serde_json::Map<String, serde_json::Value> = records.iter().map(|(k, _, _)| (k.clone(), serde_json::Value::Null)).collect();
    api.patch(SECRET_NAME, &PatchParams::default(), &Patch::Merge(&serde_json::json!({ "data": gone }))).await?;
    Ok(records.len())
}

pub async fn run(ctx: std::sync::Arc<Context>) {
    loop {
        match drain(&ctx).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(records = n, "administrative records moved into the audit trail"),
            Err(e) => tracing::warn!(error = %e, "administrative records not read; trying again"),
        }
        tokio::time::sleep(EVERY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_comes_from_the_review_and_records_come_out_oldest_first() {
        let review: SelfSubjectReview = serde_json::from_value(serde_json::json!({ "apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview", "metadata": {},
            "status": { "userInfo": { "username": "alice@example.com", "groups": ["platform", "system:authenticated"] } } }))
        .unwrap();
        assert_eq!(describe(&review).as_deref(), Some("alice@example.com (platform, system:authenticated)"));
        assert_eq!(describe(&SelfSubjectReview::default()), None);
        let entry = |event: &str| k8s_openapi::ByteString(serde_json::json!({ "event": event, "data": { "n": 1 } }).to_string().into_bytes());
        let secret = Secret {
            data: Some(
                [("0000000000000002-b".to_string(), entry("b")), ("0000000000000001-a".to_string(), entry("a")), ("0000000000000003-x".to_string(), k8s_openapi::ByteString(b"{not json".to_vec()))]
                    .into(),
            ),
            ..Default::default()
        };
        let events: Vec<String> = read(&secret).into_iter().map(|(_, e, _)| e).collect();
        assert_eq!(events, ["a", "b", "admin.unreadable"]);
    }
}
