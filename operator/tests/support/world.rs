//! The resources most operator tests start from: RelayPool `cascade-system/main` serving
//! namespace `shop`, and SendingDomain `shop/shop` for `shop.example` through it.

use cascade_crds::v1alpha1::{RelayPool, SendingDomain};
use kube::api::{Api, PostParams};

pub fn obj<K: serde::de::DeserializeOwned>(v: serde_json::Value) -> K {
    serde_json::from_value(v).unwrap()
}

/// Creates the pool with `tenants: {matchNames: [shop]}`, `shop.example` assigned to `shop`,
/// and the given extra spec fields.
pub async fn pool(client: &kube::Client, extra: serde_json::Value) -> Api<RelayPool> {
    let mut spec = serde_json::json!({ "tenants": { "matchNames": ["shop"] }, "assignedDomains": { "shop": ["shop.example"] } });
    spec.as_object_mut().unwrap().extend(extra.as_object().cloned().unwrap_or_default());
    let api: Api<RelayPool> = Api::namespaced(client.clone(), "cascade-system");
    let pool = serde_json::json!({ "apiVersion": "cascade-mail.com/v1alpha1", "kind": "RelayPool", "metadata": { "name": "main" }, "spec": spec });
    api.create(&PostParams::default(), &obj(pool)).await.unwrap();
    api
}

/// Creates the domain (a generated DKIM key) with the given extra spec fields.
pub async fn domain(client: &kube::Client, extra: serde_json::Value) -> Api<SendingDomain> {
    let mut spec = serde_json::json!({ "domain": "shop.example", "relayPool": { "name": "main", "namespace": "cascade-system" } });
    spec.as_object_mut().unwrap().extend(extra.as_object().cloned().unwrap_or_default());
    let api: Api<SendingDomain> = Api::namespaced(client.clone(), "shop");
    let domain = serde_json::json!({ "apiVersion": "cascade-mail.com/v1alpha1", "kind": "SendingDomain", "metadata": { "name": "shop" }, "spec": spec });
    api.create(&PostParams::default(), &obj(domain)).await.unwrap();
    api
}
