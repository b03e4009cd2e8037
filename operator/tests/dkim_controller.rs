//! The DkimKey controller against a real API server: key material created sealed under the
//! master key, status published, nothing written when nothing changed, a deleted Secret
//! regenerated.

mod support;

use cascade_crds::v1alpha1::{DkimKey, DkimKeySpec};
use kube::api::{Api, DeleteParams, PostParams};
use std::time::Duration;
use support::operator::until;

#[tokio::test]
async fn dkim_keys_get_sealed_material_and_status() {
    let Some(op) = support::operator::start().await else { return };
    let (client, secrets, ctx) = (op.client.clone(), op.secrets.clone(), op.ctx.clone());
    // A second start reads the same master key instead of making a new one.
    let again = cascade_operator::master_key::ensure(&secrets, "cascade-system").await.unwrap();
    assert_eq!(format!("{:?}", ctx.master), format!("{again:?}"));

    let keys: Api<DkimKey> = Api::namespaced(client.clone(), "shop");
    let spec = DkimKeySpec { domain: "shop.example".into(), selector: "s1".into(), algorithm: cascade_crds::relay_config::DkimAlgorithm::RsaSha256, rotation: Default::default() };
    keys.create(&PostParams::default(), &DkimKey::new("k1", spec)).await.unwrap();

    let status = until("DkimKey status", || async { keys.get("k1").await.ok()?.status.filter(|s| s.txt_value.is_some()) }).await;
    assert_eq!(status.dns_name.as_deref(), Some("s1._domainkey.shop.example."));
    // No DNS answers here: the key waits, Pending, for its record.
    assert!(status.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "False" && c.reason == "Pending"));
    assert_eq!((status.current_selector.as_deref(), status.generations.len()), (Some("s1"), 1));
    let data = secrets.get("shop", "k1-dkim").await.unwrap().expect("key Secret");
    let sealed = &data["s1.sealed"];
    assert!(!String::from_utf8_lossy(sealed).contains("PRIVATE KEY"), "private key stored in the clear");
    assert!(cascade_operator::master_key::open(&ctx.master, "shop/k1", sealed).is_err(), "bound to its generation");
    let pem = cascade_operator::master_key::open(&ctx.master, "shop/k1/s1", sealed).unwrap();
    let public = cascade_core::dkim_key::public_key_of(cascade_crds::relay_config::DkimAlgorithm::RsaSha256, &pem).unwrap();
    assert_eq!(status.txt_value.as_deref(), Some(format!("v=DKIM1; k=rsa; p={public}").as_str()));
    // Events tell the admin what happened, without key material.
    let (kind, note) = support::operator::event(&client, "shop", "k1", "KeyGenerated").await;
    assert_eq!(kind, "Normal");
    assert!(note.contains("k1-dkim") && !note.contains("PRIVATE"), "{note}");

    // Steady state: no further writes.
    let version = keys.get("k1").await.unwrap().metadata.resource_version;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(keys.get("k1").await.unwrap().metadata.resource_version, version, "an unchanged world must not be written");

    // A deleted key Secret is regenerated (the controller watches the Secrets it owns).
    secrets.api("shop").delete("k1-dkim", &DeleteParams::default()).await.unwrap();
    let old = status.txt_value.clone();
    until("a regenerated key", || async {
        let st = keys.get("k1").await.ok()?.status?;
        (st.txt_value != old).then_some(())
    })
    .await;
    let (kind, _) = support::operator::event(&client, "shop", "k1", "KeyRegenerated").await;
    assert_eq!(kind, "Warning");
    assert!(secrets.get("shop", "k1-dkim").await.unwrap().is_some());
}
