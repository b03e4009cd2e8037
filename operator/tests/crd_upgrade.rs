//! The CRD upgrade step the README documents, on a real API server: Helm installs `crds/` only
//! on first install, so before `helm upgrade` the platform team runs `kubectl apply
//! --server-side --force-conflicts -f charts/cascade/crds/` (field manager `kubectl`; without
//! `--force-conflicts` it conflicts with the fields Helm's create owns). Here: CRDs of an older
//! release (installed as Helm does, by create; without the newer validation), objects made under
//! them, then the chart's CRDs applied server-side as kubectl does: no conflict, the objects are
//! still served, and the new validation refuses what the old schema let through.

mod support;

use cascade_crds::v1alpha1::RelayPool;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};

#[tokio::test]
async fn the_charts_crds_apply_server_side_over_an_older_release() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let Some(server) = support::apiserver::ApiServer::start().await else { return };
    support::crds::install_loose(&server.client).await;
    let pools: Api<RelayPool> = Api::namespaced(server.client.clone(), "cascade-system");
    let pool: RelayPool =
        serde_json::from_value(serde_json::json!({ "apiVersion": "cascade-mail.com/v1alpha1", "kind": "RelayPool", "metadata": { "name": "main" }, "spec": { "replicas": 2 } })).unwrap();
    pools.create(&PostParams::default(), &pool).await.unwrap();
    let lax: RelayPool =
        serde_json::from_value(serde_json::json!({ "apiVersion": "cascade-mail.com/v1alpha1", "kind": "RelayPool", "metadata": { "name": "lax" }, "spec": { "replicas": 1000 } })).unwrap();
    let dry = PostParams { dry_run: true, ..Default::default() };
    pools.create(&dry, &lax).await.expect("the older CRDs had no bound on replicas");

    // Plain `kubectl apply --server-side` conflicts with the fields Helm's create owns: the
    // README's step says `--force-conflicts`.
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../charts/cascade/crds/cascade-mail.com_crds.yaml");
    let docs: Vec<CustomResourceDefinition> = serde_saphyr::from_multiple(&std::fs::read_to_string(path).unwrap()).unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(server.client.clone());
    let name = |crd: &CustomResourceDefinition| crd.metadata.name.clone().unwrap();
    match crds.patch(&name(&docs[0]), &PatchParams::apply("kubectl"), &Patch::Apply(&docs[0])).await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 409, "{s:?}"),
        other => panic!("expected a conflict without --force-conflicts, got {other:?}"),
    }
    // `kubectl apply --server-side --force-conflicts -f charts/cascade/crds/`.
    for crd in &docs {
        crds.patch(&name(crd), &PatchParams::apply("kubectl").force(), &Patch::Apply(crd)).await.unwrap_or_else(|e| panic!("applying {} server-side: {e}", name(crd)));
    }
    // Applied again (the next upgrade, a GitOps re-sync): kubectl owns the fields now, no conflict.
    for crd in &docs {
        crds.patch(&name(crd), &PatchParams::apply("kubectl"), &Patch::Apply(crd)).await.unwrap();
    }
    support::operator::until("the new schema served", || async {
        match pools.create(&dry, &lax).await {
            Err(kube::Error::Api(s)) if s.code == 422 => Some(s.message),
            _ => None,
        }
    })
    .await;
    let kept = pools.get("main").await.expect("the pool made under the old CRDs is still served");
    assert_eq!(kept.spec.replicas, 2);
}
