//! Automatic suspension end to end, against the real API server and a real relay: the relay
//! finds a key sending far above its own baseline (the ApiKey says `anomalies.suspend`) and
//! refuses it; the operator reads `GET /anomalies`, records `status.suspension`, sets
//! `Ready=False` (`Suspended`) with an Event and refuses the key in the pool's bundle; an edit of
//! the ApiKey lifts it everywhere.

mod support;

use cascade_core::secret::{format_secret_hash, hash_secret};
use cascade_crds::v1alpha1::{ApiKey, ApiKeyState};
use kube::api::{Api, Patch, PatchParams, PostParams};
use std::process::Command;
use support::operator::until;

/// One message through swaks; the reply text on failure.
fn send(port: u16, user: &str, password: &str) -> Result<(), String> {
    let out = Command::new("swaks")
        .args(["--server", &format!("127.0.0.1:{port}"), "--tls", "--auth", "PLAIN", "--auth-user", user, "--auth-password", password])
        .args(["--from", "orders@shop.example", "--to", "someone@dest.test", "--timeout", "10"])
        .output()
        .expect("swaks (test.sh installs it)");
    out.status.success().then_some(()).ok_or_else(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn bundle_entry(yaml: &str, key_id: &str) -> String {
    yaml.split(&format!("id: {key_id}")).nth(1).and_then(|rest| rest.split("- id:").next()).unwrap_or_default().to_string()
}

#[tokio::test]
async fn a_relays_suspension_reaches_the_status_and_bundle_and_an_edit_lifts_it() {
    let b = support::relay::Bundle::render("suspend", |y| y);
    let admin = b.admin;
    let Some(op) = support::operator::start_with(|ctx| ctx.relay_http = Some(vec![([127, 0, 0, 1], admin).into()])).await else { return };
    // Tenants by name and by label (the operator lists Namespaces), autoscaled (an HPA).
    let tenants = serde_json::json!({ "matchNames": ["shop"], "matchLabels": { "cascade-mail.com/tenant": "yes" } });
    let pools = support::world::pool(&op.client, serde_json::json!({ "dnsVerification": "warn", "tenants": tenants, "autoscaling": { "minReplicas": 1, "maxReplicas": 3 } })).await;
    support::world::domain(&op.client, serde_json::json!({})).await;
    let keys: Api<ApiKey> = Api::namespaced(op.client.clone(), "shop");
    let spec = serde_json::json!({ "allowedDomains": ["shop.example"], "anomalies": { "suspend": true, "minMessagesPerMinute": 2 } });
    keys.create(&PostParams::default(), &support::world::obj(serde_json::json!({ "apiVersion": "cascade-mail.com/v1alpha1", "kind": "ApiKey", "metadata": { "name": "web" }, "spec": spec })))
        .await
        .unwrap();
    let creds = until("credentials", || async { op.secrets.get("shop", "web-credentials").await.ok().flatten() }).await;
    let (user, password) = (String::from_utf8(creds["username"].clone()).unwrap(), String::from_utf8(creds["password"].clone()).unwrap());

    // The relay runs the operator's key as the bundle has it (id, hash, anomalies, generation).
    let bundle = until("the key in the bundle", || async {
        let yaml = support::relay::assembled(&op.secrets).await?;
        yaml.contains(&user).then_some(yaml)
    })
    .await;
    let entry = bundle_entry(&bundle, &user);
    assert!(entry.contains("suspend: true") && entry.contains("minMessagesPerMinute: 2") && entry.contains("generation: 1") && entry.contains("revoked: false"), "{entry}");
    let ours = bundle_entry(&b.yaml, &b.user);
    let theirs = ours
        .replace(&format_secret_hash(&hash_secret(&b.password)), &format_secret_hash(&hash_secret(&password)))
        .replace("suspend: false", "suspend: true")
        .replace("minMessagesPerMinute: 100", "minMessagesPerMinute: 2")
        .replace("generation: 0", "generation: 1");
    let yaml = b.yaml.replace(&format!("id: {}{ours}", b.user), &format!("id: {user}{theirs}"));
    std::fs::write(b.dir.join("relay/relay.yaml"), yaml).unwrap();
    b.adopt_admin_authority(&op.secrets).await;
    let _relay = b.serve(&[], &[]);
    until("the relay's submission port", || async { tokio::net::TcpStream::connect(("127.0.0.1", b.submission)).await.ok() }).await;

    for i in 0..3 {
        assert_eq!(send(b.submission, &user, &password), Ok(()), "message {i} is accepted");
    }
    let refused = send(b.submission, &user, &password).unwrap_err();
    assert!(refused.contains("535 5.7.8 API key suspended after unusual sending"), "{refused}");

    // The pool's next reconcile (nudged here rather than waiting a minute) collects it.
    let nudge = serde_json::json!({ "metadata": { "annotations": { "test/nudge": "1" } } });
    pools.patch("main", &PatchParams::default(), &Patch::Merge(&nudge)).await.unwrap();
    let st = until("status.suspension", || async { keys.get("web").await.ok()?.status.filter(|s| s.state == Some(ApiKeyState::Suspended)) }).await;
    // The access review: when and from which network the key was last used, from the relay.
    let used = until("status.lastUsedAt", || async { keys.get("web").await.ok()?.status.filter(|s| s.last_used_at.is_some()) }).await;
    assert_eq!(used.last_source_network.as_deref(), Some("127.0.0.0/24"));
    let at = cascade_core::time::parse_rfc3339(used.last_used_at.as_deref().unwrap()).unwrap();
    assert!(cascade_core::time::now_unix().abs_diff(at) < 120, "{at}");
    let s = st.suspension.clone().unwrap();
    assert_eq!((s.generation, s.kind.as_str()), (1, "rate"));
    assert!(st.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "False" && c.reason == "Suspended" && c.message.contains("until this ApiKey is edited")));
    let (kind, note) = support::operator::event(&op.client, "shop", "web", "KeySuspended").await;
    assert_eq!(kind, "Warning", "{note}");
    until("the key refused in the bundle", || async {
        let yaml = support::relay::assembled(&op.secrets).await?;
        bundle_entry(&yaml, &user).contains("revoked: true").then_some(())
    })
    .await;

    // An admin edits the ApiKey: the suspension is gone and the key works again in the bundle.
    let ack = serde_json::json!({ "spec": { "anomalies": { "suspend": true, "minMessagesPerMinute": 2, "acknowledged": "reviewed: a planned campaign" } } });
    keys.patch("web", &PatchParams::default(), &Patch::Merge(&ack)).await.unwrap();
    let st = until("the suspension lifted", || async { keys.get("web").await.ok()?.status.filter(|s| s.suspension.is_none() && s.state == Some(ApiKeyState::Active)) }).await;
    assert_eq!(st.observed_generation, 2);
    until("the key back in the bundle at generation 2", || async {
        let yaml = support::relay::assembled(&op.secrets).await?;
        let entry = bundle_entry(&yaml, &user);
        (entry.contains("revoked: false") && entry.contains("generation: 2")).then_some(())
    })
    .await;
}
