//! The ApiKey controller against a real API server: credentials created once for the owner,
//! status with key id, fingerprint and state; revocation and expiry reflected without touching
//! the credentials; nothing written in a steady state.

mod support;

use cascade_core::secret::{format_secret_hash, hash_secret, SECRET_PREFIX};
use cascade_crds::v1alpha1::{ApiKey, ApiKeySpec, ApiKeyState};
use kube::api::{Api, Patch, PatchParams, PostParams};
use std::time::Duration;
use support::operator::until;

fn spec(extra: serde_json::Value) -> ApiKeySpec {
    serde_json::from_value(extra).unwrap()
}

#[tokio::test]
async fn api_keys_get_credentials_once_and_truthful_status() {
    let Some(op) = support::operator::start().await else { return };
    let (client, secrets) = (op.client.clone(), op.secrets.clone());

    let keys: Api<ApiKey> = Api::namespaced(client.clone(), "shop");
    keys.create(&PostParams::default(), &ApiKey::new("web", spec(serde_json::json!({})))).await.unwrap();
    keys.create(&PostParams::default(), &ApiKey::new("old", spec(serde_json::json!({ "expiresAt": "2020-01-01T00:00:00Z" })))).await.unwrap();

    let status = until("ApiKey status", || async { keys.get("web").await.ok()?.status.filter(|s| s.key_id.is_some()) }).await;
    let creds = secrets.get("shop", "web-credentials").await.unwrap().expect("credentials Secret");
    let (user, pass) = (String::from_utf8(creds["username"].clone()).unwrap(), String::from_utf8(creds["password"].clone()).unwrap());
    assert!(pass.starts_with(SECRET_PREFIX) && pass.len() >= SECRET_PREFIX.len() + 43);
    assert_eq!(status.key_id.as_deref(), Some(user.as_str()));
    let hash = format_secret_hash(&hash_secret(&pass));
    assert_eq!(status.fingerprint.as_deref(), Some(&hash["sha256:".len()..][..16]));
    assert_eq!(status.state, Some(ApiKeyState::Active));
    assert!(!serde_json::to_string(&status).unwrap().contains(&pass), "the secret must never reach the status");
    let old = until("expired key status", || async { keys.get("old").await.ok()?.status.filter(|s| s.state.is_some()) }).await;
    assert_eq!(old.state, Some(ApiKeyState::Expired));

    let version = keys.get("web").await.unwrap().metadata.resource_version;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(keys.get("web").await.unwrap().metadata.resource_version, version, "an unchanged world must not be written");

    let revoke = serde_json::json!({ "spec": { "revoked": true } });
    keys.patch("web", &PatchParams::default(), &Patch::Merge(&revoke)).await.unwrap();
    let revoked = until("revoked state", || async { keys.get("web").await.ok()?.status.filter(|s| s.state == Some(ApiKeyState::Revoked)) }).await;
    assert!(revoked.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "False" && c.reason == "Revoked"));
    let (_, issued) = support::operator::event(&client, "shop", "web", "CredentialsIssued").await;
    assert!(issued.contains(&user) && !issued.contains(&pass), "{issued}");
    let (kind, note) = support::operator::event(&client, "shop", "web", "Revoked").await;
    assert_eq!(kind, "Warning", "{note}");
    let again = secrets.get("shop", "web-credentials").await.unwrap().unwrap();
    assert_eq!(again["password"], creds["password"], "credentials are written once");
}

/// Every admin-visible action (each Event) is also a record in the operator's audit trail,
/// which `audit verify` accepts; no secret is in it.
#[tokio::test]
async fn admin_visible_actions_are_in_the_audit_trail() {
    let dir = std::env::temp_dir().join(format!("cascade-operator-audit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let key = [9u8; 32];
    let audit = std::sync::Arc::new(cascade_core::audit::Audit::open(&dir, &key, 90, 1 << 20, Default::default()).unwrap());
    let Some(op) = support::operator::start_with(|ctx| ctx.events = ctx.events.clone().with_audit(audit)).await else { return };
    let keys: Api<ApiKey> = Api::namespaced(op.client.clone(), "shop");
    keys.create(&PostParams::default(), &ApiKey::new("web", spec(serde_json::json!({})))).await.unwrap();
    until("ApiKey status", || async { keys.get("web").await.ok()?.status.filter(|s| s.key_id.is_some()) }).await;
    keys.patch("web", &PatchParams::default(), &Patch::Merge(&serde_json::json!({ "spec": { "revoked": true } }))).await.unwrap();
    let files = || -> Vec<std::path::PathBuf> { std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect() };
    let text = until("the revocation in the audit trail", || async {
        let text: String = files().iter().map(|p| std::fs::read_to_string(p).unwrap()).collect();
        text.contains("\"reason\":\"Revoked\"").then_some(text)
    })
    .await;
    let records: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let issued = records.iter().find(|r| r["data"]["reason"] == "CredentialsIssued").expect("the issue is audited");
    assert_eq!(
        (issued["event"].as_str(), issued["data"]["kind"].as_str(), issued["data"]["namespace"].as_str(), issued["data"]["name"].as_str()),
        (Some("operator.action"), Some("ApiKey"), Some("shop"), Some("web"))
    );
    let creds = op.secrets.get("shop", "web-credentials").await.unwrap().unwrap();
    assert!(!text.contains(std::str::from_utf8(&creds["password"]).unwrap()), "no secret in the trail");
    let verdict = cascade_core::audit::verify_files(&key, &files(), None).unwrap();
    assert!(verdict.breaks.is_empty() && verdict.records >= 2, "{:?}", verdict.breaks);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Each ApiKey in a namespace a pool serves gets a connection Secret an app can mount: the
/// pool's host and ports, the API URL, the certificate that verifies the relays, and the key's
/// own credentials; a key no pool serves gets none.
#[tokio::test]
async fn api_keys_get_a_connection_secret_for_the_pool_serving_them() {
    let Some(op) = support::operator::start().await else { return };
    let (client, secrets) = (op.client.clone(), op.secrets.clone());
    let pool = serde_json::json!({"apiVersion": "cascade-mail.com/v1alpha1", "kind": "RelayPool", "metadata": {"name": "main"},
        "spec": {"hostname": "smtp.example.com", "tenants": {"matchNames": ["shop"]}, "listeners": {"httpPort": 8443}}});
    // The key first: the pool that comes to serve its namespace later brings the Secret.
    let shop: Api<ApiKey> = Api::namespaced(client.clone(), "shop");
    shop.create(&PostParams::default(), &ApiKey::new("web", spec(serde_json::json!({})))).await.unwrap();
    Api::<ApiKey>::namespaced(client.clone(), "elsewhere").create(&PostParams::default(), &ApiKey::new("lone", spec(serde_json::json!({})))).await.unwrap();
    until("web's status", || async { shop.get("web").await.ok()?.status.filter(|s| s.key_id.is_some()) }).await;
    assert!(secrets.get("shop", "web-connection").await.unwrap().is_none(), "no pool serves shop yet");
    let pools: Api<cascade_crds::v1alpha1::RelayPool> = Api::namespaced(client.clone(), "cascade-system");
    pools.create(&PostParams::default(), &serde_json::from_value(pool).unwrap()).await.unwrap();

    let conn = until("the connection Secret", || async { secrets.get("shop", "web-connection").await.ok()? }).await;
    let text = |k: &str| String::from_utf8(conn[k].clone()).unwrap();
    let creds = secrets.get("shop", "web-credentials").await.unwrap().unwrap();
    let tls = secrets.get("cascade-system", "main-tls").await.unwrap().expect("the pool's certificate");
    assert_eq!((text("host"), text("serviceHost"), text("smtpPort"), text("smtpsPort")), ("smtp.example.com".into(), "main-relay.cascade-system.svc".into(), "587".into(), "465".into()));
    assert_eq!(text("apiUrl"), "https://smtp.example.com:8443/v1");
    assert_eq!((&conn["username"], &conn["password"]), (&creds["username"], &creds["password"]), "the key's own credentials");
    assert_eq!(conn["ca.crt"], tls["tls.crt"], "the self-signed certificate is its own anchor");
    assert!(!conn.contains_key("tls.key"));
    let owner = secrets.api("shop").get("web-connection").await.unwrap().metadata.owner_references.unwrap();
    assert_eq!((owner[0].kind.as_str(), owner[0].name.as_str()), ("ApiKey", "web"), "deleted with its key");
    until("the lone key's status", || async { Api::<ApiKey>::namespaced(client.clone(), "elsewhere").get("lone").await.ok()?.status.filter(|s| s.key_id.is_some()) }).await;
    assert!(secrets.get("elsewhere", "lone-connection").await.unwrap().is_none(), "no pool serves it: no connection");
    let version = secrets.api("shop").get("web-connection").await.unwrap().metadata.resource_version;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(secrets.api("shop").get("web-connection").await.unwrap().metadata.resource_version, version, "not rewritten in a steady state");
}
