//! WebhookEndpoints against the real API server: the operator generates the signing secret,
//! reports a missing tenant Secret as `InvalidSpec` naming the field, and puts the usable
//! endpoints into the tenant's shard (the secret sealed like a DKIM key), which the relay's own
//! check accepts; and, with a real relay whose endpoint keeps failing, the relay's report reaches
//! the WebhookEndpoint's status.

mod support;

use cascade_crds::v1alpha1::WebhookEndpoint;
use kube::api::{Api, Patch, PatchParams, PostParams};
use support::operator::until;

fn endpoint(name: &str, extra: serde_json::Value) -> WebhookEndpoint {
    let mut spec = serde_json::json!({ "url": "https://hooks.shop.example/cascade", "events": ["message.bounced", "message.delivered"] });
    spec.as_object_mut().unwrap().extend(extra.as_object().cloned().unwrap_or_default());
    support::world::obj(serde_json::json!({ "apiVersion": "cascade-mail.com/v1alpha1", "kind": "WebhookEndpoint", "metadata": { "name": name }, "spec": spec }))
}

#[tokio::test]
async fn endpoints_get_a_secret_a_status_and_a_place_in_the_tenants_shard() {
    let Some(op) = support::operator::start().await else { return };
    support::world::pool(&op.client, serde_json::json!({ "dnsVerification": "warn" })).await;
    support::world::domain(&op.client, serde_json::json!({})).await;
    let hooks: Api<WebhookEndpoint> = Api::namespaced(op.client.clone(), "shop");
    hooks.create(&PostParams::default(), &endpoint("orders", serde_json::json!({ "batch": true }))).await.unwrap();
    hooks.create(&PostParams::default(), &endpoint("broken", serde_json::json!({ "secretName": "not-there" }))).await.unwrap();

    let secret = until("the generated signing secret", || async { op.secrets.get("shop", "orders-webhook").await.ok().flatten() }).await;
    let text = String::from_utf8(secret["secret"].clone()).unwrap();
    assert!(cascade_core::secret::parse_webhook_secret(text.trim()).is_some(), "{text}");
    let ready = |name: &'static str| {
        let hooks = hooks.clone();
        async move { hooks.get(name).await.ok()?.status.filter(|s| !s.conditions.is_empty()) }
    };
    let st = until("orders Ready", || ready("orders")).await;
    assert_eq!(st.secret_name.as_deref(), Some("orders-webhook"));
    assert!(st.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True" && c.reason == "SecretReady"), "{:?}", st.conditions);
    let broken = until("broken's condition", || ready("broken")).await;
    let c = broken.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    assert!(c.status == "False" && c.reason == "InvalidSpec" && c.message.starts_with("secretName: Secret not-there not found"), "{c:?}");
    support::operator::event(&op.client, "shop", "orders", "SecretIssued").await;

    // The shard lists the usable endpoint only, its secret sealed; the relay accepts the bundle.
    let shard = until("the endpoint in the tenant's shard", || async {
        let s = op.secrets.get("cascade-system", "main-relay-config-shop").await.ok()??;
        String::from_utf8_lossy(s.get("tenant-shop.yaml")?).contains("name: orders").then_some(s)
    })
    .await;
    let yaml = String::from_utf8_lossy(&shard["tenant-shop.yaml"]).into_owned();
    assert!(yaml.contains("url: https://hooks.shop.example/cascade") && yaml.contains("secretFile: webhook-shop-orders.secret.sealed") && !yaml.contains("broken"), "{yaml}");
    assert!(yaml.contains("batch: true"), "batching is passed on: {yaml}");
    let sealed = &shard["webhook-shop-orders.secret.sealed"];
    assert!(!String::from_utf8_lossy(sealed).contains("whsec_"), "sealed, not in the clear");
    support::relay::check_config(&op.secrets, "main-relay-config").await;

    // A tenant Secret named later is picked up; a deleted endpoint leaves the shard.
    let data: cascade_operator::secrets::SecretData = [("secret".to_string(), text.clone().into_bytes())].into();
    op.secrets.apply("shop", "not-there", &data, Default::default(), None).await.unwrap();
    hooks.patch("broken", &PatchParams::default(), &Patch::Merge(&serde_json::json!({ "metadata": { "annotations": { "test/nudge": "1" } } }))).await.unwrap();
    until("broken served once its Secret exists", || async {
        let s = op.secrets.get("cascade-system", "main-relay-config-shop").await.ok()??;
        String::from_utf8_lossy(s.get("tenant-shop.yaml")?).contains("name: broken").then_some(())
    })
    .await;
    hooks.delete("orders", &Default::default()).await.unwrap();
    until("orders gone from the shard", || async {
        let s = op.secrets.get("cascade-system", "main-relay-config-shop").await.ok()??;
        (!String::from_utf8_lossy(s.get("tenant-shop.yaml")?).contains("name: orders")).then_some(())
    })
    .await;
}

/// A relay whose endpoint answers 503: its `GET /webhooks` report reaches the status.
#[tokio::test]
async fn a_relays_delivery_failures_reach_the_endpoints_status() {
    let receiver = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = receiver.local_addr().unwrap().port();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut s, _)) = receiver.accept().await {
            let mut buf = vec![0u8; 65536];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
        }
    });
    let secret_file = std::env::temp_dir().join(format!("cascade-webhook-secret-{}", std::process::id()));
    std::fs::write(&secret_file, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n").unwrap();
    let hook = format!("- name: shop\n  webhooks:\n  - name: orders\n    url: http://127.0.0.1:{port}/hook\n    secretFile: {}\n", secret_file.display());
    let b = support::relay::Bundle::render("webhook-report", |y| y.replacen("- name: shop\n", &hook, 1).replace("allowPlainLoopback: false", "allowPlainLoopback: true"));
    let admin = b.admin;
    let Some(op) = support::operator::start_with(|ctx| ctx.relay_http = Some(vec![([127, 0, 0, 1], admin).into()])).await else { return };
    let pools = support::world::pool(&op.client, serde_json::json!({ "dnsVerification": "warn" })).await;
    Api::<WebhookEndpoint>::namespaced(op.client.clone(), "shop").create(&PostParams::default(), &endpoint("orders", serde_json::json!({ "events": [] }))).await.unwrap();
    b.adopt_admin_authority(&op.secrets).await;
    let _relay = b.serve(&[], &[]);
    until("the relay's submission port", || async { tokio::net::TcpStream::connect(("127.0.0.1", b.submission)).await.ok() }).await;
    let sent = std::process::Command::new("swaks")
        .args(["--server", &format!("127.0.0.1:{}", b.submission), "--tls", "--auth", "PLAIN", "--auth-user", &b.user, "--auth-password", &b.password])
        .args(["--from", "orders@shop.example", "--to", "someone@dest.test", "--timeout", "10"])
        .output()
        .expect("swaks (test.sh installs it)");
    assert!(sent.status.success(), "{}", String::from_utf8_lossy(&sent.stdout));
    let hooks: Api<WebhookEndpoint> = Api::namespaced(op.client.clone(), "shop");
    let nudge = || async {
        let n = serde_json::json!({ "metadata": { "annotations": { "test/nudge": cascade_core::time::now_unix_ms().to_string() } } });
        pools.patch("main", &PatchParams::default(), &Patch::Merge(&n)).await.unwrap();
    };
    let st = until("the failure in the status", || async {
        nudge().await;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        hooks.get("orders").await.ok()?.status.filter(|s| s.last_failure.is_some())
    })
    .await;
    assert_eq!(st.last_error.as_deref(), Some("answered 503"));
    assert!(st.last_success.is_none() && st.disabled_at.is_none());
    let _ = std::fs::remove_file(&secret_file);
}
