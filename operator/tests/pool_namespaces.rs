//! The operator writes a pool's workloads only in the namespaces RelayPools may live in
//! (`--pool-namespaces`; the chart grants it a Role only there): a pool in a second such
//! namespace is served, a pool in a tenant namespace is refused with a condition and nothing is
//! written there. The calls recorded here are part of what `test_chart.py` compares with the
//! chart's namespaced Roles.

mod support;

use cascade_crds::v1alpha1::{ApiKey, RelayPool, SendingDomain};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::rbac::v1::Role;
use kube::api::{Api, ListParams, PostParams};
use support::operator::until;
use support::world::obj;

fn pool(name: &str) -> RelayPool {
    let spec = serde_json::json!({ "tenants": { "matchNames": ["shop"] }, "assignedDomains": { "shop": ["shop.example"] } });
    obj(serde_json::json!({ "apiVersion": "cascade-mail.com/v1alpha1", "kind": "RelayPool", "metadata": { "name": name }, "spec": spec }))
}

#[tokio::test]
async fn pools_are_served_only_in_the_pool_namespaces() {
    let Some(op) = support::operator::start_with(|ctx| ctx.pool_namespaces = vec!["cascade-system".into(), "mail".into()]).await else { return };
    let p = PostParams::default();
    Api::<RelayPool>::namespaced(op.client.clone(), "mail").create(&p, &pool("main")).await.unwrap();
    let spec = serde_json::json!({ "domain": "shop.example", "relayPool": { "name": "main", "namespace": "mail" } });
    let domain: SendingDomain = obj(serde_json::json!({ "apiVersion": "cascade-mail.com/v1alpha1", "kind": "SendingDomain", "metadata": { "name": "shop" }, "spec": spec }));
    Api::<SendingDomain>::namespaced(op.client.clone(), "shop").create(&p, &domain).await.unwrap();
    let keys: Api<ApiKey> = Api::namespaced(op.client.clone(), "shop");
    keys.create(&p, &obj(serde_json::json!({ "apiVersion": "cascade-mail.com/v1alpha1", "kind": "ApiKey", "metadata": { "name": "web" }, "spec": {} }))).await.unwrap();
    let id = until("shop's key id", || async { keys.get("web").await.ok()?.status?.key_id }).await;

    // Served from the second pool namespace: its bundle (shop's shard), Role and StatefulSet are there.
    until("the bundle in mail", || async { op.secrets.get("mail", "main-relay-config").await.ok().flatten() }).await;
    let shard = || async { op.secrets.get("mail", "main-relay-config-shop").await.ok().flatten() };
    until("shop's key in its shard in mail", || async { shard().await.filter(|b| b.iter().any(|(_, v)| String::from_utf8_lossy(v).contains(&id))) }).await;
    until("the relay StatefulSet in mail", || async { Api::<StatefulSet>::namespaced(op.client.clone(), "mail").get_opt("main-relay").await.ok().flatten() }).await;
    let role = until("the relay Role in mail", || async { Api::<Role>::namespaced(op.client.clone(), "mail").get_opt("main-relay").await.ok().flatten() }).await;
    for rule in role.rules.unwrap() {
        // Secrets by name; the pool's sealed suppression shards (no other kind) by label.
        let shards = rule.resources.as_deref() == Some(&["suppressionshards".to_string()][..]) && rule.verbs == ["get", "list", "watch"];
        assert!(shards || rule.resource_names.is_some_and(|n| !n.is_empty()), "the relay's Role names its Secrets");
    }

    // A pool in a tenant namespace: refused, and the operator writes nothing there.
    let rogue: Api<RelayPool> = Api::namespaced(op.client.clone(), "shop");
    rogue.create(&p, &pool("rogue")).await.unwrap();
    let (status, reason, message) = until("the rogue pool refused", || async {
        let st = rogue.get("rogue").await.ok()?.status?;
        st.conditions.into_iter().find(|c| c.type_ == "Ready").map(|c| (c.status, c.reason, c.message))
    })
    .await;
    assert_eq!((status.as_str(), reason.as_str()), ("False", "NamespaceNotManaged"), "{message}");
    assert!(message.contains("relayPoolNamespaces") && message.contains("not in shop"), "{message}");
    let in_shop = |s: &Secret| s.metadata.name.as_deref().is_some_and(|n| n.starts_with("rogue"));
    assert!(!op.secrets.api("shop").list(&ListParams::default()).await.unwrap().items.iter().any(in_shop), "no Secret of the rogue pool");
    assert!(Api::<StatefulSet>::namespaced(op.client.clone(), "shop").list(&ListParams::default()).await.unwrap().items.is_empty());
    assert!(Api::<Role>::namespaced(op.client.clone(), "shop").list(&ListParams::default()).await.unwrap().items.is_empty());
}
