//! external-dns `DNSEndpoint` objects for the records a served domain must publish (optional,
//! `RelayPool.spec.externalDns`): [`endpoint`] renders one (pure); [`apply`] writes them, and
//! reports a missing CRD instead of failing.

use crate::labels::FIELD_MANAGER;
use crate::Context;
use cascade_crds::v1alpha1::{DnsRecord, SendingDomain};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Resource, ResourceExt};

pub fn resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("externaldns.k8s.io", "v1alpha1", "DNSEndpoint"), "dnsendpoints")
}

pub fn name_of(domain: &SendingDomain) -> String {
    format!("{}-records", domain.name_any())
}

/// The DNSEndpoint of a domain's records (TXT; names without the trailing dot), owned by the
/// SendingDomain.
pub fn endpoint(domain: &SendingDomain, records: &[DnsRecord]) -> serde_json::Value {
    let endpoints: Vec<serde_json::Value> =
        records.iter().map(|r| serde_json::json!({ "dnsName": r.name.trim_end_matches('.'), "recordType": r.type_, "targets": [r.value], "recordTTL": 300 })).collect();
    serde_json::json!({
        "apiVersion": "externaldns.k8s.io/v1alpha1",
        "kind": "DNSEndpoint",
        "metadata": {
            "name": name_of(domain),
            "namespace": domain.namespace(),
            "labels": crate::labels::managed(&[]),
            "ownerReferences": domain.controller_owner_ref(&()).map(|o| vec![o]),
        },
        "spec": { "endpoints": endpoints },
    })
}

/// Applies the endpoints; `Ok(false)` when the DNSEndpoint CRD is not installed.
pub async fn apply(ctx: &Context, objects: &[(SendingDomain, serde_json::Value)]) -> Result<bool, kube::Error> {
    let r = ctx.external_dns.clone().unwrap_or_else(resource);
    // A resource the server does not serve answers 404 to a list (a missing object would not).
    match Api::<DynamicObject>::all_with(ctx.client.clone(), &r).list(&kube::api::ListParams::default().limit(1)).await {
        Err(kube::Error::Api(e)) if e.code == 404 => return Ok(false),
        Err(e) => return Err(e),
        Ok(_) => {}
    }
    for (domain, value) in objects {
        let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &domain.namespace().unwrap_or_default(), &r);
        let obj: DynamicObject = serde_json::from_value(value.clone()).map_err(kube::Error::SerdeError)?;
        let current = api.get_opt(&name_of(domain)).await?;
        if current.as_ref().map(|c| &c.data["spec"]) != Some(&value["spec"]) {
            api.patch(&name_of(domain), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&obj)).await?;
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_become_txt_endpoints() {
        let mut d: SendingDomain = serde_json::from_value(serde_json::json!({"apiVersion": "cascade-mail.com/v1alpha1", "kind": "SendingDomain",
            "metadata": {"name": "shop", "namespace": "shop", "uid": "u1"}, "spec": {"domain": "shop.example", "relayPool": {"name": "main", "namespace": "cascade-system"}}}))
        .unwrap();
        d.metadata.uid = Some("u1".into());
        let recs = [DnsRecord { name: "_dmarc.shop.example.".into(), type_: "TXT".into(), value: "v=DMARC1; p=reject".into() }];
        let e = endpoint(&d, &recs);
        assert_eq!(e["metadata"]["name"], "shop-records");
        assert_eq!(e["spec"]["endpoints"][0], serde_json::json!({"dnsName": "_dmarc.shop.example", "recordType": "TXT", "targets": ["v=DMARC1; p=reject"], "recordTTL": 300}));
        assert_eq!(e["metadata"]["ownerReferences"][0]["kind"], "SendingDomain");
    }
}
