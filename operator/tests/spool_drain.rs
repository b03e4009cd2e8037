//! Spool volumes a scale-down leaves behind, against the real API server (stand-in kinds for
//! PersistentVolumeClaims and Jobs): a claim beyond the StatefulSet's replicas whose pod is gone
//! gets a drain Job mounting it (with an Event); after a scale-up the claim is in use again and
//! the Job is removed; a new claim template recreates the StatefulSet keeping its pods. (The drain itself is `cascade-relay drain`, proven with loopback relays
//! in tests/integration/test_handover.py.)

mod support;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::{Api, Patch, PatchParams, PostParams};
use support::operator::until;

#[tokio::test]
async fn an_orphaned_spool_claim_gets_a_drain_job_until_it_is_in_use_again() {
    let Some(op) = support::operator::start().await else { return };
    let pools = support::world::pool(&op.client, serde_json::json!({ "replicas": 1 })).await;
    let sets: Api<StatefulSet> = Api::namespaced(op.client.clone(), "cascade-system");
    until("the StatefulSet", || async { sets.get("main-relay").await.ok() }).await;

    // What the StatefulSet controller leaves after 3 -> 1: claims 0, 1 and 2 (no pods run here).
    let claims_api: Api<PersistentVolumeClaim> = Api::namespaced(op.client.clone(), "cascade-system");
    for n in 0..3 {
        let claim = serde_json::json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": { "name": format!("spool-main-relay-{n}"), "labels": { "cascade-mail.com/relay-pool": "main", "app.kubernetes.io/name": "cascade-relay" } },
            "spec": { "accessModes": ["ReadWriteOnce"] }
        });
        claims_api.create(&PostParams::default(), &serde_json::from_value(claim).unwrap()).await.unwrap();
    }
    let nudge = |v: &str| serde_json::json!({ "metadata": { "annotations": { "test/nudge": v } } });
    pools.patch("main", &PatchParams::default(), &Patch::Merge(&nudge("1"))).await.unwrap();
    let jobs_api: Api<Job> = Api::namespaced(op.client.clone(), "cascade-system");
    let names = || async { jobs_api.list(&Default::default()).await.ok().map(|l| l.items.iter().map(|j| j.metadata.name.clone().unwrap()).collect::<Vec<_>>()) };
    let found = until("drain Jobs for claims 1 and 2", || async { names().await.filter(|n| n.len() == 2) }).await;
    assert_eq!(found, ["main-drain-1", "main-drain-2"]);
    let job = jobs_api.get("main-drain-2").await.unwrap();
    let pod = job.spec.unwrap().template.spec.unwrap();
    let claim = pod.volumes.unwrap().into_iter().find_map(|v| v.persistent_volume_claim).unwrap().claim_name;
    assert_eq!(claim, "spool-main-relay-2");
    assert_eq!(pod.containers[0].args.as_ref().unwrap()[0], "drain");
    let (_, note) = support::operator::event(&op.client, "cascade-system", "main", "SpoolDrain").await;
    assert!(note.contains("spool-main-relay-2") || note.contains("spool-main-relay-1"), "{note}");

    // Scaled to 3: every claim has a pod again; the drain Jobs go.
    pools.patch("main", &PatchParams::default(), &Patch::Merge(&serde_json::json!({ "spec": { "replicas": 3 } }))).await.unwrap();
    until("the drain Jobs removed", || async { names().await.filter(|n| n.is_empty()) }).await;
}

/// A change Kubernetes never applies in place (here the spool claim template: a bigger spool)
/// recreates the StatefulSet without touching its pods: deleted with orphan propagation and
/// applied again, with an Event.
#[tokio::test]
async fn a_new_spool_size_recreates_the_statefulset_keeping_its_pods() {
    let Some(op) = support::operator::start().await else { return };
    let pools = support::world::pool(&op.client, serde_json::json!({ "replicas": 1 })).await;
    let sets: Api<StatefulSet> = Api::namespaced(op.client.clone(), "cascade-system");
    let size = |s: &StatefulSet| s.spec.as_ref()?.volume_claim_templates.as_ref()?[0].spec.as_ref()?.resources.as_ref()?.requests.as_ref()?.get("storage").map(|q| q.0.clone());
    let first = until("the StatefulSet", || async { sets.get("main-relay").await.ok() }).await;
    assert_eq!(size(&first).as_deref(), Some("10Gi"));
    // The test server has no garbage collector: play its part, which takes the `orphan`
    // finalizer off an object deleted with orphan propagation (leaving its dependents).
    let gc_sets = sets.clone();
    let gc = tokio::spawn(async move {
        loop {
            if let Ok(s) = gc_sets.get("main-relay").await {
                if s.metadata.deletion_timestamp.is_some() && s.metadata.finalizers.iter().flatten().any(|f| f == "orphan") {
                    let _ = gc_sets.patch("main-relay", &PatchParams::default(), &Patch::Merge(&serde_json::json!({ "metadata": { "finalizers": null } }))).await;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    });
    pools.patch("main", &PatchParams::default(), &Patch::Merge(&serde_json::json!({ "spec": { "spool": { "size": "20Gi" } } }))).await.unwrap();
    let second = until("the StatefulSet with the new claim template", || async { sets.get("main-relay").await.ok().filter(|s| size(s).as_deref() == Some("20Gi")) }).await;
    assert_ne!(first.metadata.uid, second.metadata.uid, "a new object");
    let (_, note) = support::operator::event(&op.client, "cascade-system", "main", "WorkloadRecreated").await;
    assert!(note.starts_with("StatefulSet main-relay recreated"), "{note}");
    gc.abort();
}
