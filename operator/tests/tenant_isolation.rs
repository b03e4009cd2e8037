//! Two tenants on one pool, against a real API server whose CRDs carry no validation (a cluster
//! Helm upgraded without touching CRDs): only the operator's per-object checks stand between
//! tenant `blog` and the pool. blog applies every bad object a hostile tenant would write; each
//! is refused alone with a condition naming the field, while tenant `shop`'s key stays served,
//! the bundle stays one the relay accepts, and shop's revocation still reaches it in under 5 s.
//! blog's ApiKeys beyond the pool's per-tenant quota are refused likewise (`QuotaExceeded`).

mod support;

use cascade_crds::v1alpha1::{ApiKey, SendingDomain};
use kube::api::{Api, Patch, PatchParams, PostParams};
use std::time::{Duration, Instant};
use support::operator::until;
use support::world::obj;

fn api_key(name: &str, spec: serde_json::Value) -> ApiKey {
    obj(serde_json::json!({ "apiVersion": "cascade-mail.com/v1alpha1", "kind": "ApiKey", "metadata": { "name": name }, "spec": spec }))
}

fn domain(name: &str, domain: &str) -> SendingDomain {
    let spec = serde_json::json!({ "domain": domain, "relayPool": { "name": "main", "namespace": "cascade-system" } });
    obj(serde_json::json!({ "apiVersion": "cascade-mail.com/v1alpha1", "kind": "SendingDomain", "metadata": { "name": name }, "spec": spec }))
}

/// The Ready condition's (status, reason, message).
fn ready(conditions: &[cascade_crds::conditions::Condition]) -> Option<(String, String, String)> {
    conditions.iter().find(|c| c.type_ == "Ready").map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

#[tokio::test]
async fn one_tenants_bad_objects_are_refused_alone_and_the_other_tenant_is_served() {
    let Some(op) = support::operator::start_on(true, |_| {}).await else { return };
    // Quota: blog's first 6 ApiKeys are served, a 7th is refused.
    let limits = serde_json::json!({ "tenantMaxApiKeys": 6 });
    let spec =
        serde_json::json!({ "tenants": { "matchNames": ["shop", "blog"] }, "assignedDomains": { "shop": ["shop.example"], "blog": ["blog.example"] }, "dnsVerification": "warn", "limits": limits });
    support::world::pool(&op.client, spec).await;
    let (shop_keys, blog_keys): (Api<ApiKey>, Api<ApiKey>) = (Api::namespaced(op.client.clone(), "shop"), Api::namespaced(op.client.clone(), "blog"));
    let blog_domains: Api<SendingDomain> = Api::namespaced(op.client.clone(), "blog");
    support::world::domain(&op.client, serde_json::json!({})).await;
    shop_keys.create(&PostParams::default(), &api_key("web", serde_json::json!({}))).await.unwrap();
    let shop_id = until("shop's key id", || async { shop_keys.get("web").await.ok()?.status?.key_id }).await;
    let bundle = || support::relay::assembled(&op.secrets);
    until("shop's key in the bundle", || async { bundle().await.filter(|y| y.contains(&shop_id)) }).await;

    // blog's hostile objects, and one good key and domain of its own.
    let p = PostParams::default();
    blog_domains.create(&p, &domain("blog", "blog.example")).await.unwrap();
    blog_domains.create(&p, &domain("squat", "shop.example")).await.unwrap();
    let long = "d".repeat(250);
    blog_domains.create(&p, &domain(&long, "long.blog.example")).await.unwrap();
    let many: Vec<String> = (0..65).map(|i| format!("10.0.{i}.0/24")).collect();
    let hostile = [
        ("bad-scope", serde_json::json!({ "scopes": ["smtp:submit", "email:send"] }), "spec.scopes[1]"),
        ("bad-cidr", serde_json::json!({ "allowedCidrs": ["10.0.0.0/33"] }), "spec.allowedCidrs[0]"),
        ("wide", serde_json::json!({ "allowedCidrs": many }), "spec.allowedCidrs: 65 items"),
        ("zero", serde_json::json!({ "messagesPerMinute": 0 }), "spec.messagesPerMinute"),
    ];
    for (name, spec, _) in &hostile {
        blog_keys.create(&p, &api_key(name, spec.clone())).await.unwrap();
    }
    // A credentials Secret blog wrote itself, claiming shop's key id with a weak secret, before
    // the ApiKey it is named for.
    let forged: cascade_operator::secrets::SecretData = [("username".to_string(), shop_id.clone().into_bytes()), ("password".to_string(), b"hunter2".to_vec())].into();
    let labels = [("cascade-mail.com/api-key".to_string(), "forged".to_string())].into();
    op.secrets.apply("blog", "forged-credentials", &forged, labels, None).await.unwrap();
    blog_keys.create(&p, &api_key("forged", serde_json::json!({}))).await.unwrap();
    blog_keys.create(&p, &api_key("offset", serde_json::json!({ "expiresAt": "2099-01-01T02:00:00+02:00" }))).await.unwrap();

    tokio::time::sleep(Duration::from_millis(1100)).await; // a later creation second
    blog_keys.create(&p, &api_key("late", serde_json::json!({}))).await.unwrap();

    // Each bad object is refused alone, naming the field.
    for (name, _, field) in &hostile {
        let (status, reason, message) = until(&format!("{name} refused"), || async { ready(&blog_keys.get(name).await.ok()?.status?.conditions) }).await;
        assert!(status == "False" && reason == "InvalidSpec" && message.contains(field), "{name}: {reason}: {message}");
    }
    let (_, reason, message) = until("forged refused", || async { ready(&blog_keys.get("forged").await.ok()?.status?.conditions).filter(|r| r.1 == "InvalidSpec") }).await;
    assert!(message.contains("Secret forged-credentials") && message.contains("not controlled by this ApiKey"), "{reason}: {message}");
    assert_eq!(blog_keys.get("forged").await.unwrap().status.unwrap().key_id, None, "nothing the tenant wrote becomes a key id");
    let squat = until("squat unproven", || async { ready(&blog_domains.get("squat").await.ok()?.status?.conditions).filter(|r| r.1 == "OwnershipUnverified") }).await;
    assert!(squat.2.contains("_cascade-challenge.shop.example."), "{}", squat.2);
    let named = until("long name refused", || async { ready(&blog_domains.get(&long).await.ok()?.status?.conditions).filter(|r| r.1 == "InvalidSpec") }).await;
    assert!(named.2.starts_with("metadata.name: 250 characters"), "{}", named.2);
    let (_, reason, message) = until("late over quota", || async { ready(&blog_keys.get("late").await.ok()?.status?.conditions).filter(|r| r.1 == "QuotaExceeded") }).await;
    assert!(message.starts_with("limits.tenantMaxApiKeys: namespace blog has 7 ApiKeys; at most 6"), "{reason}: {message}");
    let late_id = blog_keys.get("late").await.unwrap().status.unwrap().key_id.unwrap();
    let (_, note) = support::operator::event(&op.client, "blog", "bad-scope", "InvalidSpec").await;
    assert!(note.contains("spec.scopes[1]"), "{note}");

    // Everything else is served: blog's good key (its expiry normalised to UTC) and domain, and
    // shop's key, in a bundle the relay itself accepts.
    let offset_id = until("offset key id", || async { blog_keys.get("offset").await.ok()?.status?.key_id }).await;
    let yaml = until("blog's good objects in the bundle", || async { bundle().await.filter(|y| y.contains(&offset_id) && y.contains("name: blog.example")) }).await;
    let entry = yaml.split(&format!("id: {offset_id}")).nth(1).unwrap().split("- id:").next().unwrap();
    assert!(entry.contains("2099-01-01T00:00:00Z"), "{entry}");
    assert_eq!(yaml.matches(&format!("id: {shop_id}")).count(), 1, "the forged Secret's id is not in the bundle");
    for absent in ["long.blog.example", "hunter2", "email:send", "10.0.0.0/33", late_id.as_str()] {
        assert!(!yaml.contains(absent), "{absent} reached the bundle");
    }
    assert_eq!(yaml.matches("name: shop.example").count(), 1, "shop.example is served once, to shop");
    let blog = yaml.split("# tenant-blog.yaml\n").nth(1).unwrap().split("---\n").next().unwrap();
    assert!(blog.contains("name: blog.example") && !blog.contains("shop.example"), "{blog}");
    support::relay::check_config(&op.secrets, "main-relay-config").await;

    // shop's revocation still reaches the bundle, fast.
    let start = Instant::now();
    shop_keys.patch("web", &PatchParams::default(), &Patch::Merge(&serde_json::json!({ "spec": { "revoked": true } }))).await.unwrap();
    until("the revocation in the bundle", || async {
        let y = bundle().await?;
        y.split(&format!("id: {shop_id}")).nth(1)?.split("- id:").next()?.contains("revoked: true").then_some(())
    })
    .await;
    let took = start.elapsed();
    assert!(took < Duration::from_secs(5), "revocation took {took:?}");
}
