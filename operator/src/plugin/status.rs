//! `kubectl cascade status`: pools, domains with their DNS verdicts, DKIM keys, API keys and the
//! queue per tenant, from the objects' statuses (what the operator last wrote). [`summarize`]
//! is pure; a revoked or expired key is not counted as unhealthy.

use super::output::{self, condition, short, Format, Table};
use super::{Outcome, PluginError};
use cascade_crds::conditions::types;
use cascade_crds::v1alpha1::{ApiKey, ApiKeyState, DkimKey, RelayPool, SendingDomain};
use kube::api::{Api, ListParams};
use kube::ResourceExt;
use serde_json::{json, Value};

/// What `status` read.
pub struct Seen {
    /// `None`: the user may not list RelayPools (a tenant's RBAC); the rest is still shown.
    pub pools: Option<Vec<RelayPool>>,
    pub domains: Vec<SendingDomain>,
    pub dkim_keys: Vec<DkimKey>,
    pub api_keys: Vec<ApiKey>,
}

async fn list<K>(client: &kube::Client, scope: Option<&str>, what: &str) -> Result<Vec<K>, PluginError>
where
    K: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let api: Api<K> = match scope {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let mut items = api.list(&ListParams::default()).await.map_err(PluginError::api(format!("listing {what}")))?.items;
    items.sort_by_key(|k| (k.namespace(), k.name_any()));
    Ok(items)
}

pub async fn run(client: &kube::Client, scope: Option<&str>, format: Format) -> Outcome {
    let pools = match list::<RelayPool>(client, None, "RelayPools").await {
        Ok(p) => Some(p),
        Err(PluginError::Api { source: kube::Error::Api(e), .. }) if e.code == 403 => None,
        Err(e) => return Err(e),
    };
    let seen = Seen { pools, domains: list(client, scope, "SendingDomains").await?, dkim_keys: list(client, scope, "DkimKeys").await?, api_keys: list(client, scope, "ApiKeys").await? };
    let (doc, healthy) = summarize(&seen, scope);
    output::print(format, &doc, || tables(&doc));
    Ok(healthy)
}

fn ready(conds: &[cascade_crds::conditions::Condition]) -> (bool, Value) {
    let (status, reason, message) = condition(conds, types::READY);
    (status == "True", json!({ "ready": status, "reason": reason, "message": message }))
}

fn merge(mut a: Value, b: Value) -> Value {
    if let (Some(a), Some(b)) = (a.as_object_mut(), b.as_object()) {
        a.extend(b.clone());
    }
    a
}

/// The document `status` prints and whether everything in it is healthy.
pub fn summarize(seen: &Seen, scope: Option<&str>) -> (Value, bool) {
    let mut healthy = true;
    let mut queues = Vec::new();
    let pools: Option<Vec<Value>> = seen.pools.as_ref().map(|pools| {
        pools
            .iter()
            .map(|p| {
                let st = p.status.clone().unwrap_or_default();
                let (ok, r) = ready(&st.conditions);
                healthy &= ok;
                for q in st.queues.iter().filter(|q| scope.is_none_or(|ns| q.namespace == ns)) {
                    queues.push(json!({ "pool": format!("{}/{}", p.namespace().unwrap_or_default(), p.name_any()), "namespace": q.namespace, "messages": q.messages, "oldestAcceptedAt": q.oldest_accepted_at }));
                }
                let replicas = json!({ "ready": st.ready_replicas, "desired": p.spec.replicas });
                merge(json!({ "namespace": p.namespace(), "name": p.name_any(), "replicas": replicas }), r)
            })
            .collect()
    });
    let domains: Vec<Value> = seen
        .domains
        .iter()
        .map(|d| {
            let conds = d.status.clone().unwrap_or_default().conditions;
            let (ok, r) = ready(&conds);
            healthy &= ok;
            let verdict = |t: &str| condition(&conds, t).0;
            let dns = json!({ "spf": verdict(types::SPF_VERIFIED), "dkim": verdict(types::DKIM_VERIFIED), "dmarc": verdict(types::DMARC_VERIFIED) });
            merge(json!({ "namespace": d.namespace(), "name": d.name_any(), "domain": d.spec.domain, "dns": dns }), r)
        })
        .collect();
    let dkim_keys: Vec<Value> = seen
        .dkim_keys
        .iter()
        .map(|k| {
            let st = k.status.clone().unwrap_or_default();
            let (ok, r) = ready(&st.conditions);
            healthy &= ok;
            merge(json!({ "namespace": k.namespace(), "name": k.name_any(), "domain": k.spec.domain, "selector": st.current_selector, "nextRotation": st.next_rotation }), r)
        })
        .collect();
    let api_keys: Vec<Value> = seen
        .api_keys
        .iter()
        .map(|k| {
            let st = k.status.clone().unwrap_or_default();
            let (ok, r) = ready(&st.conditions);
            let retired = matches!(st.state, Some(ApiKeyState::Revoked | ApiKeyState::Expired));
            healthy &= ok || retired;
            let state = st.state.map(|s| format!("{s:?}"));
            merge(json!({ "namespace": k.namespace(), "name": k.name_any(), "state": state, "lastUsedAt": st.last_used_at, "lastSourceNetwork": st.last_source_network }), r)
        })
        .collect();
    let doc = json!({ "pools": pools, "domains": domains, "dkimKeys": dkim_keys, "apiKeys": api_keys, "queues": queues, "healthy": healthy });
    (doc, healthy)
}

fn s(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The table form of [`summarize`]'s document.
pub fn tables(doc: &Value) -> String {
    let rows = |k: &str| doc[k].as_array().cloned().unwrap_or_default();
    let mut out = String::new();
    match doc["pools"].as_array() {
        None => out.push_str("RELAY POOLS\n  (not shown: you may not list RelayPools)\n"),
        Some(pools) => {
            let mut t = Table::new(Some("RELAY POOLS"), &["NAMESPACE", "NAME", "READY", "REPLICAS", "REASON", "MESSAGE"]);
            for p in pools {
                let replicas = format!("{}/{}", s(&p["replicas"]["ready"]), s(&p["replicas"]["desired"]));
                t.row(vec![s(&p["namespace"]), s(&p["name"]), s(&p["ready"]), replicas, s(&p["reason"]), short(&s(&p["message"]), 60)]);
            }
            t.render(&mut out);
        }
    }
    let mut t = Table::new(Some("\nSENDING DOMAINS"), &["NAMESPACE", "NAME", "DOMAIN", "READY", "SPF", "DKIM", "DMARC", "REASON"]);
    for d in rows("domains") {
        let dns = &d["dns"];
        t.row(vec![s(&d["namespace"]), s(&d["name"]), s(&d["domain"]), s(&d["ready"]), s(&dns["spf"]), s(&dns["dkim"]), s(&dns["dmarc"]), s(&d["reason"])]);
    }
    t.render(&mut out);
    let mut t = Table::new(Some("\nDKIM KEYS"), &["NAMESPACE", "NAME", "DOMAIN", "SELECTOR", "READY", "NEXT ROTATION", "REASON"]);
    for k in rows("dkimKeys") {
        t.row(vec![s(&k["namespace"]), s(&k["name"]), s(&k["domain"]), s(&k["selector"]), s(&k["ready"]), s(&k["nextRotation"]), s(&k["reason"])]);
    }
    t.render(&mut out);
    let mut t = Table::new(Some("\nAPI KEYS"), &["NAMESPACE", "NAME", "STATE", "READY", "LAST USED", "REASON"]);
    for k in rows("apiKeys") {
        t.row(vec![s(&k["namespace"]), s(&k["name"]), s(&k["state"]), s(&k["ready"]), s(&k["lastUsedAt"]), s(&k["reason"])]);
    }
    t.render(&mut out);
    let mut t = Table::new(Some("\nQUEUES"), &["POOL", "TENANT", "MESSAGES", "OLDEST ACCEPTED"]);
    for q in rows("queues") {
        t.row(vec![s(&q["pool"]), s(&q["namespace"]), s(&q["messages"]), s(&q["oldestAcceptedAt"])]);
    }
    t.render(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj<K: serde::de::DeserializeOwned>(v: Value) -> K {
        serde_json::from_value(v).unwrap()
    }

    fn cond(t: &str, status: &str, reason: &str) -> Value {
        json!({ "type": t, "status": status, "reason": reason, "message": "m", "lastTransitionTime": "2027-01-01T00:00:00Z", "observedGeneration": 1 })
    }

    #[test]
    fn one_screen_and_healthy_only_when_everything_is_ready() {
        let pool: RelayPool = obj(json!({ "metadata": { "name": "main", "namespace": "cascade-system" }, "spec": { "replicas": 3 }, "status": {
            "readyReplicas": 2, "conditions": [cond("Ready", "True", "Serving")],
            "queues": [{ "namespace": "shop", "messages": 4, "oldestAcceptedAt": "2027-01-01T00:00:00Z" }, { "namespace": "blog", "messages": 1, "oldestAcceptedAt": "2027-01-01T00:00:00Z" }] } }));
        let domain: SendingDomain =
            obj(json!({ "metadata": { "name": "shop", "namespace": "shop" }, "spec": { "domain": "shop.example", "relayPool": { "name": "main", "namespace": "cascade-system" } },
            "status": { "conditions": [cond("Ready", "True", "Served"), cond("SPFVerified", "False", "SPFMissing")] } }));
        let revoked: ApiKey =
            obj(json!({ "metadata": { "name": "old", "namespace": "shop" }, "spec": { "revoked": true }, "status": { "state": "Revoked", "conditions": [cond("Ready", "False", "Revoked")] } }));
        let seen = Seen { pools: Some(vec![pool]), domains: vec![domain], dkim_keys: vec![], api_keys: vec![revoked] };
        let (doc, healthy) = summarize(&seen, Some("shop"));
        assert!(healthy, "a revoked key is not a problem: {doc}");
        assert_eq!(doc["queues"].as_array().unwrap().len(), 1, "only the namespace asked for");
        assert_eq!(doc["domains"][0]["dns"]["spf"], "False");
        let text = tables(&doc);
        let pool_row = text.lines().nth(2).unwrap();
        assert!(pool_row.starts_with("cascade-system   main   True    2/3"), "{text}");
        assert!(text.contains("shop.example") && text.contains("QUEUES") && text.contains("cascade-system/main"), "{text}");
        let pending: ApiKey = obj(json!({ "metadata": { "name": "web", "namespace": "shop" }, "spec": {}, "status": { "conditions": [cond("Ready", "False", "Pending")] } }));
        let seen = Seen { pools: None, domains: vec![], dkim_keys: vec![], api_keys: vec![pending] };
        let (doc, healthy) = summarize(&seen, None);
        assert!(!healthy);
        assert!(tables(&doc).contains("not shown: you may not list RelayPools"));
    }
}
