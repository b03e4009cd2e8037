//! The operator against the real API server harness at scale: how long a revocation takes to
//! reach the relay bundle (target: p99 under 5 seconds), and that a reconcile of an unchanged
//! world writes nothing. The relay's half (bundle Secret → AUTH refused) is measured by the
//! `relay_watch` test (under 0.1 s). Run: `cargo bench --ignore-rust-version -p cascade-operator --bench revocation`
//! (`CASCADE_BENCH_DOMAINS`, `CASCADE_BENCH_KEYS`, `CASCADE_BENCH_REVOCATIONS` change the scale).

#[path = "../tests/support/mod.rs"]
mod support;

use cascade_crds::v1alpha1::{ApiKey, DkimKey, RelayPool, SendingDomain};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, Patch, PatchParams, PostParams};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn obj<K: serde::de::DeserializeOwned>(v: serde_json::Value) -> K {
    serde_json::from_value(v).unwrap()
}

/// resourceVersion of every object the operator could write.
async fn versions(op: &support::operator::Running) -> BTreeMap<String, String> {
    let c = &op.client;
    let mut out = BTreeMap::new();
    let lp = Default::default();
    let mut add = |kind: &str, items: Vec<(Option<String>, Option<String>, Option<String>)>| {
        for (ns, name, rv) in items {
            out.insert(format!("{kind} {}/{}", ns.unwrap_or_default(), name.unwrap_or_default()), rv.unwrap_or_default());
        }
    };
    let meta = |m: &kube::core::ObjectMeta| (m.namespace.clone(), m.name.clone(), m.resource_version.clone());
    add("SendingDomain", Api::<SendingDomain>::all(c.clone()).list(&lp).await.unwrap().items.iter().map(|o| meta(&o.metadata)).collect());
    add("DkimKey", Api::<DkimKey>::all(c.clone()).list(&lp).await.unwrap().items.iter().map(|o| meta(&o.metadata)).collect());
    add("ApiKey", Api::<ApiKey>::all(c.clone()).list(&lp).await.unwrap().items.iter().map(|o| meta(&o.metadata)).collect());
    add("Secret", Api::<Secret>::all(c.clone()).list(&lp).await.unwrap().items.iter().map(|o| meta(&o.metadata)).collect());
    add("ServiceAccount", Api::<ServiceAccount>::all(c.clone()).list(&lp).await.unwrap().items.iter().map(|o| meta(&o.metadata)).collect());
    add("Role", Api::<Role>::all(c.clone()).list(&lp).await.unwrap().items.iter().map(|o| meta(&o.metadata)).collect());
    add("RoleBinding", Api::<RoleBinding>::all(c.clone()).list(&lp).await.unwrap().items.iter().map(|o| meta(&o.metadata)).collect());
    add("StatefulSet", Api::<StatefulSet>::all(c.clone()).list(&lp).await.unwrap().items.iter().map(|o| meta(&o.metadata)).collect());
    add("Service", Api::<Service>::all(c.clone()).list(&lp).await.unwrap().items.iter().map(|o| meta(&o.metadata)).collect());
    add("PodDisruptionBudget", Api::<PodDisruptionBudget>::all(c.clone()).list(&lp).await.unwrap().items.iter().map(|o| meta(&o.metadata)).collect());
    add("NetworkPolicy", Api::<NetworkPolicy>::all(c.clone()).list(&lp).await.unwrap().items.iter().map(|o| meta(&o.metadata)).collect());
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::all(c.clone());
    add("Event", events.list(&lp).await.unwrap().items.iter().map(|o| meta(&o.metadata)).collect());
    out
}

async fn bundle_yaml(op: &support::operator::Running) -> String {
    let data = op.secrets.get("cascade-system", "main-relay-config").await.ok().flatten().unwrap_or_default();
    data.get("relay.yaml").map(|y| String::from_utf8_lossy(y).into_owned()).unwrap_or_default()
}

async fn bench() {
    let (domains, keys, revocations) = (env("CASCADE_BENCH_DOMAINS", 100), env("CASCADE_BENCH_KEYS", 2_000), env("CASCADE_BENCH_REVOCATIONS", 30));
    let Some(op) = support::operator::start().await else { return };
    let api = "cascade-mail.com/v1alpha1";
    let namespaces: Vec<String> = (0..10).map(|i| format!("tenant-{i}")).collect();
    let pools: Api<RelayPool> = Api::namespaced(op.client.clone(), "cascade-system");
    pools
        .create(
            &PostParams::default(),
            &obj(serde_json::json!({"apiVersion": api, "kind": "RelayPool", "metadata": {"name": "main"}, "spec": {"tenants": {"matchNames": namespaces}, "dnsVerification": "warn"}})),
        )
        .await
        .unwrap();
    let started = Instant::now();
    for i in 0..domains {
        let ns = &namespaces[i % namespaces.len()];
        let d = serde_json::json!({"apiVersion": api, "kind": "SendingDomain", "metadata": {"name": format!("d{i}"), "namespace": ns},
            "spec": {"domain": format!("d{i}.example"), "relayPool": {"name": "main", "namespace": "cascade-system"}, "spf": {"include": "_spf.relay.example"}}});
        Api::<SendingDomain>::namespaced(op.client.clone(), ns).create(&PostParams::default(), &obj(d)).await.unwrap();
    }
    for i in 0..keys {
        let ns = &namespaces[i % namespaces.len()];
        let k = serde_json::json!({"apiVersion": api, "kind": "ApiKey", "metadata": {"name": format!("k{i}"), "namespace": ns}, "spec": {}});
        Api::<ApiKey>::namespaced(op.client.clone(), ns).create(&PostParams::default(), &obj(k)).await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let yaml = bundle_yaml(&op).await;
        if yaml.matches("- id: ck_").count() == keys && yaml.matches("    dkim:\n    - selector").count() == domains {
            break;
        }
        assert!(Instant::now() < deadline, "the bundle did not converge within 15 minutes");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!("world: {domains} SendingDomains (generated RSA-2048 keys), {keys} ApiKeys in {} namespaces", namespaces.len());
    println!("converged (keys generated, credentials issued, bundle written) in {:.1} s", started.elapsed().as_secs_f64());

    // Steady state: let every pending requeue pass, then force a reconcile of the unchanged world
    // (an annotation on the pool) and check that nothing else was written.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let before = versions(&op).await;
    let reconciles = || op.ctx.metrics.reconciles.with_label_values(&["RelayPool"]).get();
    let count = reconciles();
    pools.patch("main", &PatchParams::default(), &Patch::Merge(&serde_json::json!({"metadata": {"annotations": {"bench/touch": "1"}}}))).await.unwrap();
    let wait = Instant::now() + Duration::from_secs(60);
    while reconciles() == count && Instant::now() < wait {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = versions(&op).await;
    let changed: Vec<_> = after.iter().filter(|(k, v)| before.get(*k) != Some(*v)).map(|(k, _)| k.clone()).collect();
    println!(
        "steady state: {} reconcile(s) of an unchanged world over {} objects wrote {} object(s) {:?} -> {}",
        reconciles() - count,
        after.len(),
        changed.len(),
        changed,
        if changed.is_empty() { "met" } else { "NOT met" }
    );

    let mut latencies = Vec::new();
    for i in 0..revocations {
        let ns = &namespaces[i % namespaces.len()];
        let t = Instant::now();
        Api::<ApiKey>::namespaced(op.client.clone(), ns).patch(&format!("k{i}"), &PatchParams::default(), &Patch::Merge(&serde_json::json!({"spec": {"revoked": true}}))).await.unwrap();
        while bundle_yaml(&op).await.matches("revoked: true").count() < i + 1 {
            assert!(t.elapsed() < Duration::from_secs(60), "revocation {i} not in the bundle after a minute");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        latencies.push(t.elapsed().as_secs_f64());
    }
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies[((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1];
    println!("revocation -> bundle over {revocations} revocations: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms", pct(0.5) * 1e3, pct(0.99) * 1e3, pct(1.0) * 1e3);
    println!("target: p99 under 5,000 ms -> {}", if pct(0.99) < 5.0 { "met" } else { "NOT met" });
}

fn main() {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(bench());
}
