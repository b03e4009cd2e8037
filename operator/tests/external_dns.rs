//! external-dns output against the real API server: without the DNSEndpoint CRD the pool says so
//! in a condition and carries on; once it is installed, each served domain's records appear as a
//! DNSEndpoint owned by its SendingDomain.

mod support;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use support::operator::until;

#[tokio::test]
async fn records_are_published_as_dns_endpoints_when_external_dns_is_there() {
    let Some(op) = support::operator::start().await else { return };
    let pools = support::world::pool(&op.client, serde_json::json!({"dnsVerification": "warn", "externalDns": true})).await;
    support::world::domain(&op.client, serde_json::json!({"spf": {"include": "_spf.relay.test"}})).await;
    let condition = |reason: &'static str| {
        let pools = pools.clone();
        async move { pools.get("main").await.ok()?.status?.conditions.into_iter().find(|c| c.type_ == "ExternalDNS" && c.reason == reason) }
    };
    let c = until("ExternalDNS: CRDNotInstalled", || condition("CRDNotInstalled")).await;
    assert_eq!(c.status, "False");

    // Install external-dns's CRD (a *.k8s.io group: approved by annotation, as the real one is).
    let crd: CustomResourceDefinition = support::world::obj(serde_json::json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": { "name": "dnsendpoints.externaldns.k8s.io", "annotations": { "api-approved.kubernetes.io": "https://github.com/kubernetes-sigs/external-dns/pull/2007" } },
        "spec": { "group": "externaldns.k8s.io", "scope": "Namespaced", "names": { "kind": "DNSEndpoint", "plural": "dnsendpoints", "singular": "dnsendpoint" },
            "versions": [{ "name": "v1alpha1", "served": true, "storage": true, "schema": { "openAPIV3Schema": { "type": "object", "x-kubernetes-preserve-unknown-fields": true } } }] }
    }));
    Api::<CustomResourceDefinition>::all(op.client.clone()).create(&PostParams::default(), &crd).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    // (A change of the pool makes it look again at once.)
    pools.patch("main", &PatchParams::default(), &Patch::Merge(&serde_json::json!({"metadata": {"annotations": {"touch": "1"}}}))).await.unwrap();
    until("ExternalDNS: Published", || condition("Published")).await;
    let endpoints: Api<DynamicObject> = Api::namespaced_with(op.client.clone(), "shop", &cascade_operator::external_dns::resource());
    let e = until("the DNSEndpoint with the DKIM record", || async {
        let e = endpoints.get("shop-records").await.ok()?;
        let all = e.data["spec"]["endpoints"].as_array()?.clone();
        all.iter().any(|x| x["dnsName"] == "cascade1._domainkey.shop.example").then_some(e)
    })
    .await;
    let list = e.data["spec"]["endpoints"].as_array().unwrap();
    assert!(list.iter().any(|x| x["dnsName"] == "_dmarc.shop.example" && x["targets"][0] == "v=DMARC1; p=reject"));
    assert!(list.iter().any(|x| x["dnsName"] == "shop.example" && x["targets"][0] == "v=spf1 include:_spf.relay.test -all"));
    assert_eq!(e.metadata.owner_references.unwrap()[0].kind, "SendingDomain");
}
