//! Reads what a backup holds from the cluster and sorts it into the platform section and one
//! section per tenant. [`clean`] and [`section`] are pure; [`collect`] lists.

use super::{kube, BackupError, Item, Owner};
use crate::labels;
use cascade_crds::v1alpha1::{ApiKey, DkimKey, RelayPool, SendingDomain, SuppressionShard, WebhookEndpoint};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams};
use kube::Resource;
use serde::{de::DeserializeOwned, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// What the API server assigns and a restore must not replay.
const ASSIGNED: [&str; 7] = ["uid", "resourceVersion", "managedFields", "generation", "selfLink", "ownerReferences", "deletionTimestamp"];

/// `object` without server-assigned metadata, and the name of its controlling owner.
pub fn clean(kind: &str, mut object: serde_json::Value) -> Item {
    let owner = object["metadata"]["ownerReferences"].as_array().and_then(|refs| {
        let r = refs.iter().find(|r| r["controller"] == serde_json::Value::Bool(true))?;
        Some(Owner { kind: r["kind"].as_str()?.into(), name: r["name"].as_str()?.into() })
    });
    if let Some(meta) = object.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        for field in ASSIGNED {
            meta.remove(field);
        }
    }
    Item { kind: kind.into(), object, owner }
}

/// The tenant an item belongs to, or `None` for the platform section: a SuppressionShard is its
/// tenant's (it lives in the pool's namespace); anything else in the operator's or a pool's
/// namespace is the platform's.
pub fn section<'a>(item: &'a Item, platform: &BTreeSet<String>) -> Option<&'a str> {
    if item.kind == "SuppressionShard" {
        return item.object["spec"]["tenant"].as_str();
    }
    let ns = item.namespace();
    (!platform.contains(ns)).then_some(ns)
}

async fn list<K>(client: &kube::Client, kind: &str, params: &ListParams) -> Result<Vec<Item>, BackupError>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    // In pages of PAGE, all from the first page's snapshot (the API server's continue token).
    const PAGE: u32 = 500;
    let api = Api::<K>::all(client.clone());
    let (mut out, mut token) = (Vec::new(), None::<String>);
    loop {
        let mut page_params = params.clone().limit(PAGE);
        if let Some(t) = token.take() {
            page_params = page_params.continue_token(&t);
        }
        let page = api.list(&page_params).await.map_err(kube(format!("listing {kind}s")))?;
        for o in page.items {
            out.push(clean(kind, serde_json::to_value(o).map_err(super::ArchiveError::from)?));
        }
        match page.metadata.continue_.filter(|t| !t.is_empty()) {
            Some(t) => token = Some(t),
            None => return Ok(out),
        }
    }
}

/// Whether a Secret the operator wrote is derived (rendered again from the rest) or the tenant
/// key ring (never in a backup).
fn derived(item: &Item, pools: &BTreeSet<(String, String)>, operator_ns: &str) -> bool {
    let name = item.name();
    let ns = item.namespace().to_string();
    item.object["metadata"]["labels"].get(labels::SHARD_OF).is_some()
        || pools.iter().any(|(pns, pool)| *pns == ns && name == labels::bundle_secret(pool))
        || (ns == operator_ns && name == super::tenant_keys::SECRET_NAME)
}

/// Everything a backup holds: the platform's items and each tenant's.
pub async fn collect(client: &kube::Client, operator_ns: &str) -> Result<(Vec<Item>, BTreeMap<String, Vec<Item>>), BackupError> {
    let all = ListParams::default();
    let mut items = list::<RelayPool>(client, "RelayPool", &all).await?;
    let pools: BTreeSet<(String, String)> = items.iter().map(|i| (i.namespace().to_string(), i.name().to_string())).collect();
    let mut platform_ns: BTreeSet<String> = pools.iter().map(|(ns, _)| ns.clone()).collect();
    platform_ns.insert(operator_ns.to_string());
    items.extend(list::<SendingDomain>(client, "SendingDomain", &all).await?);
    items.extend(list::<DkimKey>(client, "DkimKey", &all).await?);
    items.extend(list::<ApiKey>(client, "ApiKey", &all).await?);
    items.extend(list::<WebhookEndpoint>(client, "WebhookEndpoint", &all).await?);
    items.extend(list::<SuppressionShard>(client, "SuppressionShard", &all).await?);
    let secrets = list::<Secret>(client, "Secret", &ListParams::default().labels(labels::MANAGED_SELECTOR)).await?;
    items.extend(secrets.into_iter().filter(|s| !derived(s, &pools, operator_ns)));
    let (mut platform, mut tenants) = (Vec::new(), BTreeMap::<String, Vec<Item>>::new());
    for item in items {
        match section(&item, &platform_ns).map(str::to_string) {
            Some(tenant) => tenants.entry(tenant).or_default().push(item),
            None => platform.push(item),
        }
    }
    Ok((platform, tenants))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_assigned_metadata_goes_and_the_controller_is_remembered() {
        let obj = serde_json::json!({ "metadata": { "name": "web-credentials", "namespace": "shop", "uid": "u1", "resourceVersion": "7", "labels": { "a": "b" },
            "ownerReferences": [{ "kind": "ApiKey", "name": "web", "uid": "u0", "controller": true }] }, "data": { "password": "eA==" } });
        let item = clean("Secret", obj);
        assert_eq!(item.owner, Some(Owner { kind: "ApiKey".into(), name: "web".into() }));
        assert_eq!(item.object, serde_json::json!({ "metadata": { "name": "web-credentials", "namespace": "shop", "labels": { "a": "b" } }, "data": { "password": "eA==" } }));
    }

    #[test]
    fn tenants_are_namespaces_outside_the_platform_and_a_shard_belongs_to_its_tenant() {
        let platform: BTreeSet<String> = ["cascade-system".to_string()].into();
        let at = |kind: &str, ns: &str, spec: serde_json::Value| clean(kind, serde_json::json!({ "metadata": { "name": "x", "namespace": ns }, "spec": spec }));
        assert_eq!(section(&at("ApiKey", "shop", serde_json::json!({})), &platform), Some("shop"));
        assert_eq!(section(&at("RelayPool", "cascade-system", serde_json::json!({})), &platform), None);
        assert_eq!(section(&at("SuppressionShard", "cascade-system", serde_json::json!({ "tenant": "shop" })), &platform), Some("shop"));
    }
}
