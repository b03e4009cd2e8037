//! A write to one tenant's objects that fails (here: every patch of tenant `blog`'s
//! SendingDomains, so its finalizer and status can never be written) never keeps the pool from
//! serving the other tenant: shop's new key and its revocation reach the bundle, the pool's
//! status is written, and the failure is counted as a reconcile error, published as a Warning
//! Event and a `Reconciled=False` condition on the pool (retried with backoff); once the writes
//! work again, `Reconciled` turns True.

mod support;

use cascade_crds::v1alpha1::{ApiKey, SendingDomain};
use kube::api::{Api, Patch, PatchParams, PostParams};
use support::operator::until;
use support::world::obj;

#[tokio::test]
async fn one_tenants_failing_writes_do_not_stop_the_pool() {
    let Some(op) = support::operator::start().await else { return };
    support::calls::inject_fault(http::Method::PATCH, "/namespaces/blog/sendingdomains");
    let spec = serde_json::json!({ "tenants": { "matchNames": ["shop", "blog"] }, "assignedDomains": { "shop": ["shop.example"], "blog": ["blog.example"] }, "dnsVerification": "warn" });
    let pools = support::world::pool(&op.client, spec).await;
    support::world::domain(&op.client, serde_json::json!({})).await;
    let d = serde_json::json!({ "domain": "blog.example", "relayPool": { "name": "main", "namespace": "cascade-system" } });
    let blog: SendingDomain = obj(serde_json::json!({ "apiVersion": "cascade-mail.com/v1alpha1", "kind": "SendingDomain", "metadata": { "name": "blog" }, "spec": d }));
    Api::<SendingDomain>::namespaced(op.client.clone(), "blog").create(&PostParams::default(), &blog).await.unwrap();

    let keys: Api<ApiKey> = Api::namespaced(op.client.clone(), "shop");
    keys.create(&PostParams::default(), &obj(serde_json::json!({ "apiVersion": "cascade-mail.com/v1alpha1", "kind": "ApiKey", "metadata": { "name": "web" }, "spec": {} }))).await.unwrap();
    let id = until("shop's key id", || async { keys.get("web").await.ok()?.status?.key_id }).await;
    let bundle = || support::relay::assembled(&op.secrets);
    until("shop's key in the bundle", || async { bundle().await.filter(|b| b.contains(&id)) }).await;
    until("the pool's status written", || async { pools.get("main").await.ok()?.status.filter(|s| s.config_hash.is_some()) }).await;
    let errors = || op.ctx.metrics.reconcile_errors.with_label_values(&["RelayPool", "kube"]).get();
    until("blog's failed writes counted", || async { (errors() > 0).then_some(()) }).await;
    // The failure is on the pool as a Warning Event naming the failed operation, not only a log line.
    let (kind, note) = support::operator::event(&op.client, "cascade-system", "main", "ReconcileFailed").await;
    assert!(kind == "Warning" && note.starts_with("reading or writing Kubernetes objects:") && note.contains("in a row; retrying in"), "{kind}: {note}");
    let status = Api::<SendingDomain>::namespaced(op.client.clone(), "blog").get("blog").await.unwrap();
    assert!(status.metadata.finalizers.is_none() && status.status.is_none(), "blog's writes really failed");

    // shop's revocation still reaches the bundle while blog's writes keep failing.
    keys.patch("web", &PatchParams::default(), &Patch::Merge(&serde_json::json!({ "spec": { "revoked": true } }))).await.unwrap();
    until("the revocation in the bundle", || async { bundle().await?.split(&format!("id: {id}")).nth(1)?.split("- id:").next()?.contains("revoked: true").then_some(()) }).await;

    // The failure is a condition too, beside the other writers' (which stay).
    let reconciled = || async {
        let st = pools.get("main").await.ok()?.status?;
        let c = st.conditions.iter().find(|c| c.type_ == "Reconciled")?.clone();
        st.conditions.iter().any(|c| c.type_ == "Ready").then_some(c)
    };
    let failed = until("Reconciled=False on the pool", || async { reconciled().await.filter(|c| c.status == "False") }).await;
    assert!(failed.reason == "ReconcileFailed" && failed.message.starts_with("reading or writing Kubernetes objects:"), "{failed:?}");
    // The writes work again: the next reconcile turns it True (the backoff is at most 5 minutes;
    // a change to the pool triggers a reconcile now).
    support::calls::clear_faults();
    pools.patch("main", &PatchParams::default(), &Patch::Merge(&serde_json::json!({ "metadata": { "annotations": { "touch": "1" } } }))).await.unwrap();
    let ok = until("Reconciled=True after the recovery", || async { reconciled().await.filter(|c| c.status == "True") }).await;
    assert_eq!(ok.reason, "Reconciled");
    until("blog's status written at last", || async { Api::<SendingDomain>::namespaced(op.client.clone(), "blog").get("blog").await.ok()?.status }).await;
}
