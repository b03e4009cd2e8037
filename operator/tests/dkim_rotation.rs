//! A DkimKey rotation against a real API server and a real DNS server (Knot on loopback), with
//! the operator's clock moved by days: the first key activates only once its record is in DNS;
//! 88 days later the next key appears in status; it takes over on day 90 only after its record
//! is verified, and the pool's bundle switches to it atomically; 7 days later the old key retires
//! and its private key is destroyed. A forced rotation follows the same path at once.

mod support;

use cascade_crds::v1alpha1::{DkimKey, KeyPhase, SendingDomain};
use kube::api::{Api, Patch, PatchParams};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::dns::{txt, Knot};
use support::operator::until;

const DAY: u64 = 86_400;

fn phases(k: &DkimKey) -> Vec<(String, KeyPhase)> {
    k.status.as_ref().map(|s| s.generations.iter().map(|g| (g.selector.clone(), g.phase)).collect()).unwrap_or_default()
}

#[tokio::test]
async fn keys_rotate_through_dns_verified_generations() {
    let base = vec![r#"@ TXT "v=spf1 include:_spf.relay.test -all""#.to_string(), r#"_dmarc TXT "v=DMARC1; p=reject""#.to_string()];
    let mut knot = Knot::start(&[("shop.example", base.clone())]);
    let addr = knot.addr();
    let clock = Arc::new(AtomicU64::new(1_800_000_000));
    let c = clock.clone();
    let Some(op) = support::operator::start_with(move |ctx| {
        ctx.dns = cascade_operator::dns::Dns::new(&[addr]).unwrap();
        ctx.dns_recheck = cascade_operator::dns::Recheck { passing: Duration::from_secs(60), min: Duration::from_millis(300), max: Duration::from_secs(1) };
        ctx.clock = cascade_operator::Clock::manual(c);
    })
    .await
    else {
        return;
    };
    support::world::pool(&op.client, serde_json::json!({})).await;
    support::world::domain(&op.client, serde_json::json!({"spf": {"include": "_spf.relay.test"}})).await;
    let keys: Api<DkimKey> = Api::namespaced(op.client.clone(), "shop");
    let key = || async { keys.get("shop-dkim").await.ok() };
    // Move the clock and nudge the controller (its own timers run on real time).
    let mut tick = 0;
    let mut advance = |days: u64| {
        clock.fetch_add(days * DAY, Ordering::SeqCst);
        tick += 1;
        let patch = serde_json::json!({"metadata": {"annotations": {"test/tick": tick.to_string()}}});
        let keys = keys.clone();
        async move { keys.patch("shop-dkim", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap() }
    };
    let bundle_selector = || async {
        let yaml = support::relay::assembled(&op.secrets).await?;
        yaml.lines().find_map(|l| l.trim().strip_prefix("- selector: ").map(String::from))
    };
    let mut published = base.clone();
    let mut publish = |knot: &mut Knot, k: &DkimKey, selector: &str| {
        let g = k.status.as_ref().unwrap().generations.iter().find(|g| g.selector == selector).unwrap().clone();
        published.push(format!("{} TXT {}", g.dns_name.trim_end_matches(".shop.example."), txt(&g.txt_value)));
        knot.serve(&[("shop.example", published.clone())]);
    };

    // The first key waits for its record, then activates.
    let k = until("the first key, Pending", || async { key().await.filter(|k| phases(k) == [("cascade1".into(), KeyPhase::Pending)]) }).await;
    publish(&mut knot, &k, "cascade1");
    let k = until("the first key Active", || async { key().await.filter(|k| phases(k) == [("cascade1".into(), KeyPhase::Active)]) }).await;
    let st = k.status.clone().unwrap();
    assert_eq!((st.current_selector.as_deref(), st.next_selector.as_deref()), (Some("cascade1"), None));
    assert_eq!(st.next_rotation.as_deref(), Some(cascade_core::time::rfc3339_utc(1_800_000_000 + 90 * DAY).as_str()));
    support::operator::event(&op.client, "shop", "shop-dkim", "KeyActivated").await;
    assert_eq!(until("the bundle signing with cascade1", || async { bundle_selector().await.filter(|s| s == "cascade1") }).await, "cascade1");

    // Day 88: the next key is generated and shown, not used.
    advance(88).await;
    let k = until("the next key, Pending", || async { key().await.filter(|k| phases(k).len() == 2) }).await;
    assert_eq!(phases(&k), [("cascade1".into(), KeyPhase::Active), ("cascade1-2".into(), KeyPhase::Pending)]);
    assert_eq!(k.status.as_ref().unwrap().next_selector.as_deref(), Some("cascade1-2"));
    let ready = |k: &DkimKey| k.status.as_ref().and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready").cloned()).unwrap();
    assert_eq!(ready(&k).status, "True", "not due yet: nothing is stalled");

    // Day 90: the Active key is due and its successor's record is not in DNS: the rotation is
    // stalled, Ready=False says so and what to publish; mail is still signed with the old key.
    advance(2).await;
    let k = until("the rotation stalled", || async { key().await.filter(|k| ready(k).reason == "RotationStalled") }).await;
    let c = ready(&k);
    assert_eq!(c.status, "False");
    assert!(c.message.contains("cascade1-2 (cascade1-2._domainkey.shop.example.) is not in DNS yet") && c.message.contains("still signed with cascade1"), "{}", c.message);
    assert_eq!(bundle_selector().await.as_deref(), Some("cascade1"));

    // Its record published: the switch, in the status and in the bundle.
    publish(&mut knot, &k, "cascade1-2");
    let k = until("the switch", || async { key().await.filter(|k| phases(k)[1].1 == KeyPhase::Active) }).await;
    assert_eq!((ready(&k).status.as_str(), ready(&k).reason.as_str()), ("True", "Active"));
    assert_eq!(phases(&k)[0].1, KeyPhase::Retiring);
    until("the bundle signing with cascade1-2", || async { bundle_selector().await.filter(|s| s == "cascade1-2") }).await;
    let secret = op.secrets.get("shop", "shop-dkim-dkim").await.unwrap().unwrap();
    assert!(secret.contains_key("cascade1.sealed") && secret.contains_key("cascade1-2.sealed"));
    // The old record stays listed for publishing while it retires.
    let records = Api::<SendingDomain>::namespaced(op.client.clone(), "shop").get("shop").await.unwrap().status.unwrap().records;
    assert!(records.iter().any(|r| r.name == "cascade1._domainkey.shop.example.") && records.iter().any(|r| r.name == "cascade1-2._domainkey.shop.example."));

    // Day 97: retired, private key destroyed.
    advance(7).await;
    let k = until("the old key retired", || async { key().await.filter(|k| phases(k)[0].1 == KeyPhase::Retired) }).await;
    assert!(k.status.unwrap().generations[0].txt_value.is_empty());
    let secret = until("the old private key destroyed", || async { op.secrets.get("shop", "shop-dkim-dkim").await.ok()?.filter(|s| !s.contains_key("cascade1.sealed")) }).await;
    assert!(secret.contains_key("cascade1-2.sealed"));
    support::operator::event(&op.client, "shop", "shop-dkim", "KeyRetired").await;
    let age = op.ctx.metrics.dkim_age.with_label_values(&["shop", "shop-dkim", "cascade1-2"]).get();
    assert_eq!(age as u64, 9 * DAY);

    // An emergency rotation: a new key now, Active as soon as its record is verified.
    let force = serde_json::json!({"metadata": {"annotations": {"cascade-mail.com/rotate": "leak-2027-01"}}});
    keys.patch("shop-dkim", &PatchParams::default(), &Patch::Merge(&force)).await.unwrap();
    let k = until("the forced key", || async { key().await.filter(|k| phases(k).len() == 3) }).await;
    assert_eq!(phases(&k)[2], ("cascade1-3".into(), KeyPhase::Pending));
    publish(&mut knot, &k, "cascade1-3");
    until("the forced key Active", || async { key().await.filter(|k| phases(k)[2].1 == KeyPhase::Active) }).await;
    until("the bundle signing with cascade1-3", || async { bundle_selector().await.filter(|s| s == "cascade1-3") }).await;
}
