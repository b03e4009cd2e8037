//! A RelayPool's status a GitOps pipeline can gate on, against the real API server with the
//! operator's controllers and a real relay: `Ready` stays `False` (`Progressing`) until the
//! StatefulSet's replicas are ready (its status written here, as the kubelet and the StatefulSet
//! controller would) **and** the relay reports the configuration generation the operator
//! rendered; then `Ready=True`. A relay refusing a configuration makes the pool `Degraded`.

mod support;

use cascade_crds::v1alpha1::RelayPool;
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::api::{Api, Patch, PatchParams};
use support::operator::until;

fn condition(pool: &RelayPool, type_: &str) -> Option<(String, String, String)> {
    pool.status.as_ref()?.conditions.iter().find(|c| c.type_ == type_).map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

#[tokio::test]
async fn ready_waits_for_ready_replicas_on_the_current_configuration_and_a_refusal_degrades() {
    let b = support::relay::Bundle::render("readiness", |y| y);
    let admin = b.admin;
    let Some(op) = support::operator::start_with(|ctx| ctx.relay_http = Some(vec![([127, 0, 0, 1], admin).into()])).await else { return };
    let pools = support::world::pool(&op.client, serde_json::json!({ "dnsVerification": "warn", "replicas": 1 })).await;
    support::world::domain(&op.client, serde_json::json!({})).await;
    until("the rendered configuration", || async { pools.get("main").await.ok()?.status?.config_hash }).await;
    let (status, reason, message) = until("Progressing", || async { condition(&pools.get("main").await.ok()?, "Progressing") }).await;
    assert_eq!((status.as_str(), reason.as_str()), ("True", "RollingOut"), "{message}");
    let ready = condition(&pools.get("main").await.unwrap(), "Ready").unwrap();
    assert_eq!((ready.0.as_str(), ready.1.as_str()), ("False", "RollingOut"), "no pod runs yet: {}", ready.2);

    // The pod is ready, but its relay runs another configuration: still not Ready.
    b.adopt_admin_authority(&op.secrets).await;
    let _relay = b.serve(&[], &[]);
    let sts: Api<StatefulSet> = Api::namespaced(op.client.clone(), "cascade-system");
    let up = serde_json::json!({ "status": { "replicas": 1, "readyReplicas": 1, "updatedReplicas": 1, "currentReplicas": 1, "availableReplicas": 1 } });
    until("the StatefulSet status written", || async { sts.patch_status("main-relay", &PatchParams::default(), &Patch::Merge(&up)).await.ok() }).await;
    let other = until("the relay counted", || async {
        let c = condition(&pools.get("main").await.ok()?, "Ready")?;
        c.2.contains("1 ready, 1 updated").then_some(c)
    })
    .await;
    assert_eq!(other.0, "False", "ready pods on another configuration are not Ready: {}", other.2);
    assert!(other.2.contains("0 on configuration "), "{}", other.2);

    // The relay loads the generation the operator rendered (the newest: the first reconciles
    // still change it, as the generated DKIM key arrives): Ready, rollout complete, not degraded.
    // (The example was rendered with its own generation stamped in: the relay runs that one.)
    let path = b.dir.join("relay/relay.yaml");
    let stamp = |hash: &str| {
        let text = std::fs::read_to_string(&path).unwrap();
        let own = text.lines().find(|l| l.starts_with("configGeneration: ")).expect("render stamps the generation").to_string();
        if own != format!("configGeneration: {hash}") {
            std::fs::write(&path, text.replacen(&own, &format!("configGeneration: {hash}"), 1)).unwrap();
        }
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(45);
    let (serving, hash) = loop {
        let pool = pools.get("main").await.unwrap();
        let hash = pool.status.as_ref().and_then(|s| s.config_hash.clone()).unwrap();
        let c = condition(&pool, "Ready").unwrap();
        if c.0 == "True" {
            break (c, hash);
        }
        stamp(&hash);
        assert!(std::time::Instant::now() < deadline, "not Ready: {} (the relay was given {hash})\nrelay log:\n{}", c.2, std::fs::read_to_string(b.log()).unwrap_or_default());
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    };
    assert_eq!(serving.1, "Serving", "{}", serving.2);
    assert!(serving.2.contains(&format!("1 on configuration {hash}")), "{}", serving.2);
    let pool = pools.get("main").await.unwrap();
    assert_eq!(condition(&pool, "Progressing").map(|c| (c.0, c.1)), Some(("False".into(), "RolloutComplete".into())));
    assert_eq!(condition(&pool, "Degraded").map(|c| (c.0, c.1)), Some(("False".into(), "ConfigAccepted".into())));

    // A configuration the relay refuses: Degraded names it and its first problem; the relay
    // keeps serving the last good one.
    let good = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, good.replacen(&format!("configGeneration: {hash}"), "configGeneration: broken1", 1).replace("keyFile: tls.key", "keyFile: missing.key")).unwrap();
    let degraded = until("Degraded", || async { condition(&pools.get("main").await.ok()?, "Degraded").filter(|c| c.0 == "True") }).await;
    assert_eq!(degraded.1, "ConfigRefused");
    assert!(degraded.2.contains("refused configuration broken1") && degraded.2.contains("tls.keyFile"), "{}", degraded.2);
    assert_eq!(condition(&pools.get("main").await.unwrap(), "Ready").map(|c| c.0), Some("True".into()), "the last good configuration is still the rendered one");
    let _ = pools;
}
