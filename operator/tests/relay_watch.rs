//! The relay's configuration watch against a real API server: a real `cascade-relay serve`
//! process watches its bundle Secret; swaks authenticates with the rendered credentials; a
//! refused version leaves the last good one in force; a revocation written to the Secret stops
//! AUTH within 5 seconds (the operator's half, ApiKey → bundle, is in relay_pool_controller).
//! Sharded, as the operator writes it: a shard Secret changed before the bundle listing its new
//! digest is not installed (never half of two versions); once the bundle follows, it is.

mod support;

use cascade_operator::secrets::SecretStore;
use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

/// Runs swaks up to AUTH; true when the relay accepted the credentials.
fn authenticates(port: u16, user: &str, password: &str) -> bool {
    let out = Command::new("swaks")
        .args(["--server", &format!("127.0.0.1:{port}"), "--tls", "--auth", "PLAIN", "--auth-user", user, "--auth-password", password])
        .args(["--quit-after", "AUTH", "--timeout", "10"])
        .output()
        .expect("swaks (test.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() || text.contains("535"), "swaks failed for another reason:\n{text}");
    out.status.success()
}

#[tokio::test]
async fn a_revocation_written_to_the_secret_stops_auth_within_five_seconds() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let Some(server) = support::apiserver::ApiServer::start().await else { return };
    support::crds::install_stand_ins(&server.client).await;
    let secrets = SecretStore::new(server.client.clone());
    // The relay process watches through its typed client too, by way of a loopback proxy that
    // maps core v1 Secrets to the test server's stand-in.
    let proxy = support::proxy::Proxy::start(&server.kubeconfig()).await;

    // The bundle, as the operator renders it, on loopback ports with a spool of its own.
    let b = support::relay::Bundle::render("watch", |y| y);
    let (user, password, submission, yaml) = (b.user.as_str(), b.password.as_str(), b.submission, b.yaml.clone());
    let bundle = b.files();
    let (ns, name) = ("mail", "main-relay-config");
    secrets.apply(ns, name, &bundle, Default::default(), None).await.unwrap();

    let log = b.log();
    let kubeconfig = proxy.kubeconfig(&b.dir);
    let relay = b.serve(&["--watch-secret", &format!("{ns}/{name}")], &[("KUBECONFIG", &kubeconfig)]);
    let reloads = || std::fs::read_to_string(&log).unwrap_or_default().matches("configuration reloaded").count();
    support::operator::until("the watch to deliver the bundle", || async { (reloads() >= 1).then_some(()) }).await;
    assert!(authenticates(submission, user, password));

    // A version the relay's check refuses changes nothing.
    let mut broken = bundle.clone();
    broken.remove("tls.key");
    secrets.apply(ns, name, &broken, Default::default(), None).await.unwrap();
    support::operator::until("the refusal", || async { std::fs::read_to_string(&log).unwrap().contains("the bundle has no entry \\\"tls.key\\\"").then_some(()) }).await;
    assert!(authenticates(submission, user, password));

    // Revoke: AUTH stops within 5 seconds of the write.
    let mut revoked = bundle.clone();
    revoked.insert("relay.yaml".into(), yaml.replace("revoked: false", "revoked: true").into_bytes());
    let written = Instant::now();
    secrets.apply(ns, name, &revoked, Default::default(), None).await.unwrap();
    while authenticates(submission, user, password) {
        assert!(written.elapsed() < Duration::from_secs(5), "the revoked key still authenticates after {:?}", written.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("revocation reached the relay in {:?}", written.elapsed());
    assert!(written.elapsed() < Duration::from_secs(5));
    // The secret never appears in the relay's log.
    assert!(!std::fs::read_to_string(&log).unwrap().contains(password));
    drop(relay);
}

/// The rendered bundle as the operator writes it: `relay.yaml` listing the tenant's shard in
/// Secret `main-relay-config-shop` (with the DKIM key), `revoked` as given.
fn sharded(yaml: &str, files: &BTreeMap<String, Vec<u8>>, revoked: bool) -> (BTreeMap<String, Vec<u8>>, BTreeMap<String, Vec<u8>>) {
    let mut config: cascade_crds::RelayConfig = serde_saphyr::from_str(yaml).unwrap();
    let mut shard = cascade_crds::relay_config::Shard { tenants: std::mem::take(&mut config.tenants), api_keys: std::mem::take(&mut config.api_keys) };
    shard.api_keys[0].revoked = revoked;
    let text = serde_saphyr::to_string(&shard).unwrap();
    let mut shard_files: BTreeMap<String, Vec<u8>> = shard.key_files().iter().map(|f| (f.to_string(), files[*f].clone())).collect();
    let keys: Vec<&[u8]> = shard.key_files().iter().map(|f| files[*f].as_slice()).collect();
    let digest = cascade_core::shard::digest(text.as_bytes(), &keys);
    config.shards = vec![cascade_crds::relay_config::ShardRef { file: "tenant-shop.yaml".into(), secret: Some("main-relay-config-shop".into()), digest }];
    shard_files.insert("tenant-shop.yaml".into(), text.into_bytes());
    let mut pool: BTreeMap<String, Vec<u8>> = files.iter().filter(|(k, _)| !shard_files.contains_key(*k)).map(|(k, v)| (k.clone(), v.clone())).collect();
    pool.insert("relay.yaml".into(), serde_saphyr::to_string(&config).unwrap().into_bytes());
    (pool, shard_files)
}

#[tokio::test]
async fn a_sharded_configuration_is_installed_only_as_a_consistent_set() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let Some(server) = support::apiserver::ApiServer::start().await else { return };
    support::crds::install_stand_ins(&server.client).await;
    let secrets = SecretStore::new(server.client.clone());
    let proxy = support::proxy::Proxy::start(&server.kubeconfig()).await;
    let b = support::relay::Bundle::render("shards", |y| y);
    let (user, password, submission) = (b.user.as_str(), b.password.as_str(), b.submission);
    let (pool, shard) = sharded(&b.yaml, &b.files(), false);
    let ns = "mail";
    secrets.apply(ns, "main-relay-config-shop", &shard, Default::default(), None).await.unwrap();
    secrets.apply(ns, "main-relay-config", &pool, Default::default(), None).await.unwrap();
    let log = b.log();
    let relay = b.serve(&["--watch-secret", &format!("{ns}/main-relay-config")], &[("KUBECONFIG", &proxy.kubeconfig(&b.dir))]);
    let reloads = || std::fs::read_to_string(&log).unwrap_or_default().matches("configuration reloaded").count();
    support::operator::until("the watch to deliver the sharded set", || async { (reloads() >= 1 && authenticates(submission, user, password)).then_some(()) }).await;

    // The shard changes first (the key revoked); the bundle still lists the old digest: the
    // relay keeps the set it runs, the key still works.
    let (new_pool, new_shard) = sharded(&b.yaml, &b.files(), true);
    secrets.apply(ns, "main-relay-config-shop", &new_shard, Default::default(), None).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(authenticates(submission, user, password), "half of a new version was installed");
    assert_eq!(reloads(), 1);
    // The bundle follows: now the new set is consistent and installed.
    let written = Instant::now();
    secrets.apply(ns, "main-relay-config", &new_pool, Default::default(), None).await.unwrap();
    while authenticates(submission, user, password) {
        assert!(written.elapsed() < Duration::from_secs(5), "the revoked key still authenticates after {:?}", written.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!std::fs::read_to_string(&log).unwrap().contains("configuration from the watched Secret refused"), "a consistent wait is no refusal");
    drop(relay);
}
