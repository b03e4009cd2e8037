//! Proof of domain ownership against a real API server and a real DNS server (Knot on
//! loopback): a squatter's claim on shop's domain, made first, is never served and never
//! blocks shop; shop's claim is served once its challenge record is published; when the
//! squatter's record shows up too, the earlier verification (shop's, though created later)
//! keeps the domain; and a record that goes away takes the proof with it.

mod support;

use cascade_crds::v1alpha1::SendingDomain;
use kube::api::{Api, PostParams};
use std::time::Duration;
use support::dns::{txt, Knot};
use support::operator::until;

fn ready(d: &SendingDomain) -> Option<(String, String, String)> {
    let c = d.status.as_ref()?.conditions.iter().find(|c| c.type_ == "Ready")?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone()))
}

fn claim(ns: &str) -> SendingDomain {
    let spec = serde_json::json!({ "domain": "shop.example", "relayPool": { "name": "main", "namespace": "cascade-system" } });
    support::world::obj(serde_json::json!({ "apiVersion": "cascade-mail.com/v1alpha1", "kind": "SendingDomain", "metadata": { "name": "shop", "namespace": ns }, "spec": spec }))
}

#[tokio::test]
async fn only_a_proven_claim_is_served_and_the_first_proven_keeps_the_domain() {
    let base = vec![r#"@ TXT "v=spf1 include:_spf.relay.test -all""#.to_string()];
    let mut knot = Knot::start(&[("shop.example", base.clone())]);
    let addr = knot.addr();
    let Some(op) = support::operator::start_with(|ctx| {
        ctx.dns = cascade_operator::dns::Dns::new(&[addr]).unwrap();
        ctx.dns_recheck = cascade_operator::dns::Recheck { passing: Duration::from_millis(500), min: Duration::from_millis(500), max: Duration::from_secs(1) };
    })
    .await
    else {
        return;
    };
    // No assignment: ownership is proven in DNS only. `warn`: nothing but ownership gates serving.
    support::world::pool(&op.client, serde_json::json!({ "tenants": { "matchNames": ["shop", "blog"] }, "assignedDomains": {}, "dnsVerification": "warn" })).await;
    let (shop, blog): (Api<SendingDomain>, Api<SendingDomain>) = (Api::namespaced(op.client.clone(), "shop"), Api::namespaced(op.client.clone(), "blog"));
    blog.create(&PostParams::default(), &claim("blog")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await; // a later creation second
    shop.create(&PostParams::default(), &claim("shop")).await.unwrap();
    let bundle = || support::relay::assembled(&op.secrets);

    // Neither claim is proven: neither is served, neither is in conflict, both are told the record.
    let challenge = |api: Api<SendingDomain>| async move { until("the challenge in the status", || async { api.get("shop").await.ok()?.status?.ownership }).await };
    let (shop_challenge, blog_challenge) = (challenge(shop.clone()).await, challenge(blog.clone()).await);
    assert_eq!(shop_challenge.name, "_cascade-challenge.shop.example.");
    assert_ne!(shop_challenge.value, blog_challenge.value, "each claim has its own token");
    for api in [&shop, &blog] {
        let (status, reason, message) = until("OwnershipUnverified", || async { ready(&api.get("shop").await.ok()?).filter(|r| r.1 == "OwnershipUnverified") }).await;
        assert!(status == "False" && message.contains(&shop_challenge.name), "{message}");
        assert_eq!(reason, "OwnershipUnverified");
    }
    assert!(!bundle().await.unwrap_or_default().contains("shop.example"), "an unproven claim is not served");

    // shop publishes its record: verified, served; the squatter stays unproven (no conflict).
    let mut zone = base.clone();
    zone.push(format!("_cascade-challenge TXT {}", txt(&shop_challenge.value)));
    knot.serve(&[("shop.example", zone.clone())]);
    let verified = until("shop verified and served", || async {
        let d = shop.get("shop").await.ok()?;
        let o = d.status.as_ref()?.ownership.clone()?;
        (ready(&d)?.1 == "Served").then_some(o.verified_at?)
    })
    .await;
    until("shop.example in the bundle, for tenant shop", || async { bundle().await.filter(|y| y.contains("name: shop.example")) }).await;
    let squatter = blog.get("shop").await.unwrap();
    assert_eq!(ready(&squatter).unwrap().1, "OwnershipUnverified");
    assert!(!squatter.status.unwrap().conditions.iter().any(|c| c.type_ == "DomainConflict" && c.status == "True"));

    // The squatter's record appears too (say the DNS admin was fooled): verified later, it loses.
    tokio::time::sleep(Duration::from_millis(1100)).await; // a later verification second
    zone.push(format!("_cascade-challenge TXT {}", txt(&blog_challenge.value)));
    knot.serve(&[("shop.example", zone)]);
    let conflict = until("the squatter in conflict", || async { ready(&blog.get("shop").await.ok()?).filter(|r| r.1 == "DomainConflict") }).await;
    assert!(conflict.2.contains("shop/shop"), "{}", conflict.2);
    let d = shop.get("shop").await.unwrap();
    assert_eq!((ready(&d).unwrap().1, d.status.unwrap().ownership.unwrap().verified_at.unwrap()), ("Served".into(), verified), "the first verification is kept");

    // shop's record goes away: its proof goes too, and the squatter's (now the only) proof wins.
    knot.serve(&[("shop.example", vec![base[0].clone(), format!("_cascade-challenge TXT {}", txt(&blog_challenge.value))])]);
    until("shop no longer proven", || async { ready(&shop.get("shop").await.ok()?).filter(|r| r.1 == "OwnershipUnverified") }).await;
    until("the other proven claim served", || async { ready(&blog.get("shop").await.ok()?).filter(|r| r.1 == "Served") }).await;
}
