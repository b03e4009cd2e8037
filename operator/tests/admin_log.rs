//! The operator's administrative action log against the real API server: every generation of an
//! object it acts on is an `object.generation` record naming the field manager that changed it
//! (from managedFields); every bundle write is a `config.generation` record with the bundle's
//! configGeneration and the object generations that changed since the previous one, and the
//! tenants in lockdown. The trail verifies (`audit verify`), and holds no secret.

mod support;

use cascade_crds::v1alpha1::ApiKey;
use kube::api::{Api, Patch, PatchParams, PostParams};
use support::operator::until;

#[tokio::test]
async fn object_and_configuration_generations_are_audited_with_who_changed_them() {
    let trail = support::trail::Trail::new("admin-log");
    let Some(op) = support::operator::start_with(|ctx| trail.attach(ctx)).await else { return };
    support::world::pool(&op.client, serde_json::json!({ "dnsVerification": "warn" })).await;
    support::world::domain(&op.client, serde_json::json!({})).await;
    let keys: Api<ApiKey> = Api::namespaced(op.client.clone(), "shop");
    let web: ApiKey =
        support::world::obj(serde_json::json!({ "apiVersion": "cascade-mail.com/v1alpha1", "kind": "ApiKey", "metadata": { "name": "web" }, "spec": { "allowedDomains": ["shop.example"] } }));
    keys.create(&PostParams { field_manager: Some("argocd-controller".into()), ..Default::default() }, &web).await.unwrap();
    let creds = until("credentials", || async { op.secrets.get("shop", "web-credentials").await.ok().flatten() }).await;
    let password = String::from_utf8(creds["password"].clone()).unwrap();
    let generation = |recs: &[serde_json::Value], kind: &str, g: i64| recs.iter().find(|r| r["event"] == "object.generation" && r["data"]["kind"] == kind && r["data"]["generation"] == g).cloned();
    let first = until("the ApiKey's generation 1 recorded", || async { generation(&trail.records(), "ApiKey", 1) }).await;
    assert!(first["data"]["changedBy"].as_str().unwrap().contains("argocd-controller (Update, "), "{first}");
    until("a bundle built from it", || async {
        trail.records().into_iter().find(|r| r["event"] == "config.generation" && r["data"]["changed"].as_array().is_some_and(|c| c.iter().any(|c| c == "ApiKey shop/web@1")))
    })
    .await;

    // A revocation by another manager, then a lockdown: each is traceable to the bundle it made.
    let revoke = serde_json::json!({ "spec": { "revoked": true } });
    keys.patch("web", &PatchParams { field_manager: Some("kubectl-patch".into()), ..Default::default() }, &Patch::Merge(&revoke)).await.unwrap();
    let second = until("generation 2 recorded", || async { generation(&trail.records(), "ApiKey", 2) }).await;
    // Within the same second as the creation, both managers are named.
    assert!(second["data"]["changedBy"].as_str().unwrap().contains("kubectl-patch (Update, "), "{second}");
    let config = until("the bundle of generation 2", || async {
        trail.records().into_iter().find(|r| r["event"] == "config.generation" && r["data"]["changed"].as_array().is_some_and(|c| c.iter().any(|c| c == "ApiKey shop/web@2")))
    })
    .await;
    assert!(!config["data"]["changed"].as_array().unwrap().iter().any(|c| c.as_str().unwrap().starts_with("RelayPool")), "only what changed is listed: {config}");
    assert!(config["data"]["configGeneration"].as_str().is_some_and(|g| !g.is_empty()), "{config}");
    cascade_operator::lockdown::lockdown(&op.client, "shop", "drill", cascade_core::time::now_unix()).await.unwrap();
    let locked =
        until("the lockdown in a bundle record", || async { trail.records().into_iter().find(|r| r["event"] == "config.generation" && r["data"]["lockdown"] == serde_json::json!(["shop"])) }).await;
    assert!(locked["data"]["changed"].as_array().unwrap().iter().any(|c| c.as_str().unwrap().starts_with("RelayPool cascade-system/main@")), "{locked}");
    let pool = until("the pool's new generation recorded", || async {
        trail
            .records()
            .into_iter()
            .find(|r| r["event"] == "object.generation" && r["data"]["kind"] == "RelayPool" && r["data"]["changedBy"].as_str().is_some_and(|w| w.contains("cascade-lockdown (Update, ")))
    })
    .await;
    assert!(pool["data"]["generation"].as_i64().unwrap() >= 2, "{pool}");
    // Each generation of each object is recorded once, however often its reconcile ran.
    let mut seen = std::collections::HashMap::new();
    for r in trail.records().into_iter().filter(|r| r["event"] == "object.generation") {
        *seen.entry(format!("{} {}/{}@{}", r["data"]["kind"], r["data"]["namespace"], r["data"]["name"], r["data"]["generation"])).or_insert(0) += 1;
    }
    assert!(seen.values().all(|n| *n == 1), "recorded twice: {seen:?}");

    trail.audit.tick(true);
    let files = trail.files();
    cascade_core::audit::verify_files(&trail.key, &files, None).expect("the operator's trail verifies");
    let text: String = files.iter().map(|p| std::fs::read_to_string(p).unwrap()).collect();
    assert!(!text.contains(&password), "a secret in the audit trail");
}
