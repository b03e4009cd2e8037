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

/// Creates ApiKey `ns/name` allowed to send for `domain`.
pub async fn api_key(client: &kube::Client, ns: &str, name: &str, domain: &str) {
    let key: cascade_crds::v1alpha1::ApiKey =
        obj(serde_json::json!({ "apiVersion": "cascade-mail.com/v1alpha1", "kind": "ApiKey", "metadata": { "name": name }, "spec": { "allowedDomains": [domain] } }));
    Api::namespaced(client.clone(), ns).create(&PostParams::default(), &key).await.unwrap();
}

/// The username and password the operator issued for ApiKey `ns/name`, once it has.
pub async fn credentials(secrets: &cascade_operator::secrets::SecretStore, ns: &str, name: &str) -> (String, String) {
    let creds = super::operator::until("credentials", || async { secrets.get(ns, &format!("{name}-credentials")).await.ok().flatten() }).await;
    (String::from_utf8(creds["username"].clone()).unwrap(), String::from_utf8(creds["password"].clone()).unwrap())
}
