//! The RelayPool controller against a real API server: the bundle the relays run, the generated
//! DkimKey, SendingDomain statuses (served, conflict), revocation reaching the bundle, a tampered
//! bundle restored, and nothing written in a steady state.

mod support;

use cascade_crds::v1alpha1::{ApiKey, RelayPool, SendingDomain};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::rbac::v1::Role;
use kube::api::{Api, Patch, PatchParams, PostParams};
use std::time::{Duration, Instant};
use support::operator::until;

fn obj<K: serde::de::DeserializeOwned>(v: serde_json::Value) -> K {
    serde_json::from_value(v).unwrap()
}

#[tokio::test]
async fn pools_render_bundles_statuses_and_revocations() {
    let Some(op) = support::operator::start().await else { return };
    let (client, secrets) = (op.client.clone(), op.secrets.clone());
    let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), "cascade-system");

    let api = "cascade-mail.com/v1alpha1";
    let pools: Api<RelayPool> = Api::namespaced(client.clone(), "cascade-system");
    pools
        .create(
            &PostParams::default(),
            &obj(serde_json::json!({"apiVersion": api, "kind": "RelayPool", "metadata": {"name": "main"}, "spec": {"tenants": {"matchNames": ["shop", "blog"]}, "assignedDomains": {"shop": ["shop.example"]}, "dnsVerification": "warn"}})),
        )
        .await
        .unwrap();
    let shop_domains: Api<SendingDomain> = Api::namespaced(client.clone(), "shop");
    let domain = |ns: &str, name: &str| {
        obj::<SendingDomain>(serde_json::json!({"apiVersion": api, "kind": "SendingDomain", "metadata": {"name": name, "namespace": ns},
        "spec": {"domain": "shop.example", "relayPool": {"name": "main", "namespace": "cascade-system"}, "spf": {"egress": ["192.0.2.10"]}}}))
    };
    shop_domains.create(&PostParams::default(), &domain("shop", "shop")).await.unwrap();
    let keys: Api<ApiKey> = Api::namespaced(client.clone(), "shop");
    keys.create(&PostParams::default(), &obj(serde_json::json!({"apiVersion": api, "kind": "ApiKey", "metadata": {"name": "web"}, "spec": {}}))).await.unwrap();

    // The bundle: served domain with its generated key, the API key's hash, accepted by the relay.
    until("a bundle serving shop.example and the key", || async {
        let yaml = support::relay::assembled(&secrets).await?;
        (yaml.contains("name: shop.example") && yaml.contains("id: ck_")).then_some(())
    })
    .await;
    let bundle = support::relay::bundle_files(&secrets).await.unwrap();
    // Tenants live in shard Secrets (one per tenant) that relay.yaml lists with digests.
    let relay_yaml = String::from_utf8_lossy(&bundle["relay.yaml"]).into_owned();
    assert!(relay_yaml.contains("secret: main-relay-config-shop") && !relay_yaml.contains("id: ck_"), "{relay_yaml}");
    // No DKIM key in the clear and no key ring in the bundle: DKIM keys are sealed with the
    // pool's sealing key, which (with the spool key) is mounted from `<pool>-keys`.
    for (file, bytes) in bundle.iter().filter(|(f, _)| f.starts_with("dkim-")) {
        assert!(file.ends_with(".sealed") && !String::from_utf8_lossy(bytes).contains("PRIVATE KEY"), "{file} holds a private key in the clear");
    }
    assert!(bundle.keys().any(|f| f.ends_with(".pem.sealed")) && !bundle.contains_key("spool.key"), "{:?}", bundle.keys());
    assert_eq!(String::from_utf8_lossy(&bundle["tenant-shop.yaml"]).matches("selector: cascade1").count(), 1);
    // The relay itself checks the bundle (`cascade-relay check-config`), keys where it finds them.
    support::relay::check_config(&secrets, "main-relay-config").await;
    let generated: Api<cascade_crds::v1alpha1::DkimKey> = Api::namespaced(client.clone(), "shop");
    assert!(generated.get("shop-dkim").await.is_ok(), "the SendingDomain's DkimKey was created");

    let st = until("shop status", || async { shop_domains.get("shop").await.ok()?.status.filter(|s| s.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True")) }).await;
    assert!(st.records.iter().any(|r| r.name == "cascade1._domainkey.shop.example." && r.value.starts_with("v=DKIM1; k=rsa; p=")));
    assert!(st.records.iter().any(|r| r.value == "v=spf1 ip4:192.0.2.10 -all"));

    // The StatefulSet runs the bundle, with the configuration hash that rolls pods on change.
    let config_hash = |sts: &StatefulSet| sts.spec.as_ref()?.template.metadata.as_ref()?.annotations.as_ref()?.get("cascade-mail.com/config-hash").cloned();
    // (Eventually: the configuration keeps changing while keys and credentials appear.)
    let (sts, pool_hash) = until("the StatefulSet on the pool's current configuration", || async {
        let sts = statefulsets.get("main-relay").await.ok()?;
        let hash = pools.get("main").await.ok()?.status?.config_hash?;
        (config_hash(&sts).as_ref() == Some(&hash)).then_some((sts, hash))
    })
    .await;
    let volumes = sts.spec.unwrap().template.spec.unwrap().volumes.unwrap();
    assert_eq!(volumes[0].secret.as_ref().and_then(|s| s.secret_name.as_deref()), Some("main-relay-config"));
    // The relay's account may read that one Secret (it watches it for revocations).
    let role = Api::<Role>::namespaced(client.clone(), "cascade-system").get("main-relay").await.unwrap();
    assert_eq!(role.rules.unwrap()[0].resource_names.as_ref().unwrap()[0], "main-relay-config");

    // Another namespace's claim of the same domain proves nothing: never served.
    let blog: Api<SendingDomain> = Api::namespaced(client.clone(), "blog");
    blog.create(&PostParams::default(), &domain("blog", "stolen")).await.unwrap();
    let unproven = until("unproven", || async { blog.get("stolen").await.ok()?.status?.conditions.into_iter().find(|c| c.type_ == "Ready" && c.reason == "OwnershipUnverified") }).await;
    assert!(unproven.message.contains("_cascade-challenge.shop.example."), "{}", unproven.message);
    let (kind, _) = support::operator::event(&client, "blog", "stolen", "OwnershipUnverified").await;
    assert_eq!(kind, "Warning");

    // A name too long for the DkimKey the operator would generate is refused where it is
    // written (the operator's own per-object refusal, for a looser schema, is in
    // tenant_isolation.rs).
    let long = format!("d{}", "x".repeat(249));
    let mut too_long = domain("blog", &long);
    too_long.spec.domain = "blog.example".into();
    match blog.create(&PostParams::default(), &too_long).await {
        Err(kube::Error::Api(s)) => assert!(s.code == 422 && s.message.contains("metadata.name: at most 58 characters"), "{s:?}"),
        other => panic!("expected a 422, got {other:?}"),
    }
    let (_, note) = support::operator::event(&client, "cascade-system", "main", "ConfigUpdated").await;
    assert!(note.contains("main-relay-config"), "{note}");
    support::operator::event(&client, "cascade-system", "main", "WorkloadApplied").await;

    // The operator's probes: metrics of the reconciles just seen, health and readiness.
    let probes = support::operator::serve_probes(op.ctx.metrics.clone()).await;
    assert!(support::operator::http_get(probes, "/readyz").await.starts_with("HTTP/1.1 503"), "not ready before the master key is loaded");
    op.ctx.metrics.set_ready();
    assert!(support::operator::http_get(probes, "/readyz").await.starts_with("HTTP/1.1 200"));
    assert!(support::operator::http_get(probes, "/healthz").await.starts_with("HTTP/1.1 200"));
    let text = support::operator::until("managed-object gauges", || async {
        let t = support::operator::http_get(probes, "/metrics").await;
        t.contains("cascade_operator_managed_objects{kind=\"RelayPool\"} 1").then_some(t)
    })
    .await;
    for series in
        ["cascade_operator_reconciles_total{kind=\"RelayPool\"}", "cascade_operator_reconcile_duration_seconds_count{kind=\"DkimKey\"}", "cascade_operator_managed_objects{kind=\"SendingDomain\"} 2"]
    {
        assert!(text.contains(series), "{series} missing from:\n{text}");
    }

    // Steady state: the bundle is not rewritten.
    let version = || async { secrets.api("cascade-system").get("main-relay-config").await.unwrap().metadata.resource_version };
    let before = version().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(version().await, before, "an unchanged world must not be written");

    // Revocation reaches the bundle quickly.
    let started = Instant::now();
    keys.patch("web", &PatchParams::default(), &Patch::Merge(&serde_json::json!({"spec": {"revoked": true}}))).await.unwrap();
    until("revocation in the bundle", || async { support::relay::assembled(&secrets).await?.contains("revoked: true").then_some(()) }).await;
    let latency = started.elapsed();
    eprintln!("revocation reached the bundle in {latency:?}");
    assert!(latency < Duration::from_secs(5), "revocation took {latency:?}");
    // ... and the pods roll to it.
    until("the StatefulSet updated to the new configuration", || async {
        let sts = statefulsets.get("main-relay").await.ok()?;
        (config_hash(&sts) != Some(pool_hash.clone())).then_some(())
    })
    .await;

    // A deleted ApiKey disappears from the bundle.
    let key_id = keys.get("web").await.unwrap().status.and_then(|s| s.key_id).expect("key id");
    keys.delete("web", &Default::default()).await.unwrap();
    until("the deleted key gone from the bundle", || async { (!support::relay::assembled(&secrets).await?.contains(&key_id)).then_some(()) }).await;

    // A tampered bundle is restored.
    let tamper = serde_json::json!({"data": {"relay.yaml": "aGFja2VkCg=="}});
    secrets.api("cascade-system").patch("main-relay-config", &PatchParams::default(), &Patch::Merge(&tamper)).await.unwrap();
    until("the bundle restored", || async {
        let data = secrets.get("cascade-system", "main-relay-config").await.ok()??;
        String::from_utf8_lossy(data.get("relay.yaml")?).contains("file: tenant-shop.yaml").then_some(())
    })
    .await;

    // Deleting a SendingDomain: the pool's finalizer holds it until the deletion is recorded in
    // the status and the bundle (the relays purge its queued mail); then it goes. The other
    // namespace's lurking claim of the same domain proved nothing and takes nothing over.
    let shop = shop_domains.get("shop").await.unwrap();
    assert!(shop.metadata.finalizers.unwrap_or_default().contains(&"cascade-mail.com/purge-queued-mail".to_string()));
    shop_domains.delete("shop", &Default::default()).await.unwrap();
    let yaml = until("the deletion in the bundle", || async {
        let yaml = support::relay::assembled(&secrets).await?;
        yaml.contains("retiredDomains:\n- name: shop.example\n  tenant: shop").then_some(yaml)
    })
    .await;
    assert!(!yaml.contains("- name: blog\n  domains:\n  - name: shop.example"), "an unproven claim took over:\n{yaml}");
    until("the SendingDomain gone", || async { shop_domains.get_opt("shop").await.unwrap().is_none().then_some(()) }).await;
    let retired = pools.get("main").await.unwrap().status.unwrap().retired_domains;
    assert_eq!((retired[0].domain.as_str(), retired[0].namespace.as_str()), ("shop.example", "shop"));
    support::operator::event(&client, "cascade-system", "main", "DomainRetired").await;
    // A domain whose pool is gone is released by the SendingDomain controller.
    let orphan = serde_json::json!({"apiVersion": api, "kind": "SendingDomain", "metadata": {"name": "orphan", "namespace": "shop", "finalizers": ["cascade-mail.com/purge-queued-mail"]},
        "spec": {"domain": "orphan.example", "relayPool": {"name": "gone", "namespace": "cascade-system"}}});
    shop_domains.create(&PostParams::default(), &obj(orphan)).await.unwrap();
    shop_domains.delete("orphan", &Default::default()).await.unwrap();
    until("the orphan released", || async { shop_domains.get_opt("orphan").await.unwrap().is_none().then_some(()) }).await;

    // A smarthost with credentials from a Secret: the pool waits for the Secret (InvalidSpec),
    // then the bundle carries the username and the password file, never the password inline.
    let smarthost = serde_json::json!({"spec": {"delivery": {"mode": "smarthost", "smarthost": {"address": "smtp.provider.test:587", "tls": "required", "credentialsSecret": "upstream"}}}});
    pools.patch("main", &PatchParams::default(), &Patch::Merge(&smarthost)).await.unwrap();
    until("InvalidSpec while the Secret is missing", || async {
        let st = pools.get("main").await.ok()?.status?;
        st.conditions.iter().find(|c| c.type_ == "Ready" && c.reason == "InvalidSpec" && c.message.contains("upstream")).map(|_| ())
    })
    .await;
    let creds = [("username", "relayuser"), ("password", "s3cret-pass")].map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())).into();
    secrets.apply("cascade-system", "upstream", &creds, Default::default(), None).await.unwrap();
    // (The pool re-reads the Secret on its next reconcile; a pool change triggers one now.)
    pools.patch("main", &PatchParams::default(), &Patch::Merge(&serde_json::json!({"metadata": {"annotations": {"touch": "1"}}}))).await.unwrap();
    let data = until("the smarthost credentials in the bundle", || async {
        let data = secrets.get("cascade-system", "main-relay-config").await.ok()??;
        data.contains_key("smarthost.password").then_some(data)
    })
    .await;
    assert_eq!(data["smarthost.password"], b"s3cret-pass");
    let yaml = String::from_utf8_lossy(&data["relay.yaml"]).into_owned();
    assert!(yaml.contains("username: relayuser") && yaml.contains("passwordFile: smarthost.password") && !yaml.contains("s3cret-pass"), "{yaml}");
}
