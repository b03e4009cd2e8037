//! DNS verification against a real API server and a real DNS server (Knot on loopback): the
//! SendingDomain controller publishes SPFVerified, DKIMVerified and DMARCVerified next to the
//! pool's Ready; with `dnsVerification: enforce` an unverified DKIM record keeps the domain
//! not Ready and makes the relays refuse its mail; publishing the record fixes both.

mod support;

use cascade_crds::v1alpha1::{DkimKey, SendingDomain};
use kube::api::Api;
use std::time::Duration;
use support::dns::{txt, Knot};
use support::operator::until;

fn condition(d: &SendingDomain, type_: &str) -> Option<(String, String)> {
    let c = d.status.as_ref()?.conditions.iter().find(|c| c.type_ == type_)?;
    Some((c.status.clone(), c.reason.clone()))
}

#[tokio::test]
async fn dkim_must_be_verified_in_dns_before_the_relays_send() {
    let base = vec![r#"@ TXT "v=spf1 include:_spf.relay.test -all""#.to_string(), r#"_dmarc TXT "v=DMARC1; p=reject""#.to_string()];
    let mut knot = Knot::start(&[("shop.example", base.clone())]);
    let addr = knot.addr();
    let Some(op) = support::operator::start_with(|ctx| {
        ctx.dns = cascade_operator::dns::Dns::new(&[addr]).unwrap();
        ctx.dns_recheck = cascade_operator::dns::Recheck { passing: Duration::from_secs(60), min: Duration::from_millis(500), max: Duration::from_secs(1) };
    })
    .await
    else {
        return;
    };
    support::world::pool(&op.client, serde_json::json!({})).await;
    let domains = support::world::domain(&op.client, serde_json::json!({"spf": {"include": "_spf.relay.test"}})).await;

    // SPF and DMARC are published, DKIM not yet: not Ready, and the relays refuse the domain.
    let d = until("the DNS conditions", || async {
        let d = domains.get("shop").await.ok()?;
        (condition(&d, "DKIMVerified")?.1 == "DKIMRecordMissing" && condition(&d, "Ready")?.1 == "DNSNotVerified").then_some(d)
    })
    .await;
    assert_eq!(condition(&d, "SPFVerified"), Some(("True".into(), "SPFVerified".into())));
    assert_eq!(condition(&d, "DMARCVerified"), Some(("True".into(), "DMARCVerified".into())));
    assert_eq!(condition(&d, "Ready").unwrap().0, "False");
    let bundle = || support::relay::assembled(&op.secrets);
    let refusal = "its DKIM record is not verified in DNS (DKIMRecordMissing)";
    until("the refusal in the bundle", || async { bundle().await?.contains(refusal).then_some(()) }).await;
    let (_, note) = support::operator::event(&op.client, "shop", "shop", "DKIMRecordMissing").await;
    assert!(note.starts_with("DKIMVerified=False"), "{note}");

    // Publish the record the DkimKey's status names: verified, Ready, and the relays send.
    let key = Api::<DkimKey>::namespaced(op.client.clone(), "shop").get("shop-dkim").await.unwrap().status.unwrap();
    assert_eq!(key.dns_name.as_deref(), Some("cascade1._domainkey.shop.example."));
    let mut zone = base.clone();
    zone.push(format!("cascade1._domainkey TXT {}", txt(key.txt_value.as_deref().unwrap())));
    knot.serve(&[("shop.example", zone)]);
    until("DKIM verified and Ready", || async {
        let d = domains.get("shop").await.ok()?;
        (condition(&d, "DKIMVerified")?.0 == "True" && condition(&d, "Ready")? == ("True".into(), "Served".into())).then_some(())
    })
    .await;
    until("the refusal gone from the bundle", || async { bundle().await.filter(|y: &String| !y.contains("refuse:")) }).await;
    let gauge = op.ctx.metrics.dns_checks.with_label_values(&["shop", "shop.example", "DKIMVerified"]).get();
    assert_eq!(gauge, 1);
}
