//! The restore drill, against real API servers and a real relay: a populated cluster (a pool, two
//! tenants with a domain, a generated DKIM key, API keys and suppression shards) is backed up;
//! a tampered archive and a wrong key are refused into an empty cluster and change nothing;
//! the archive restores there, the operator renders the bundle again, and a relay running it
//! authenticates the pre-backup credentials and signs with the pre-backup DKIM key (python3-dkim
//! checks it against the DNS record the first cluster published). Crypto-shredding: after
//! `erase --tenant blog` and a new backup, the *old* archive restored with the new escrow yields
//! shop's objects and none of blog's.

mod support;

use base64::Engine;
use cascade_crds::v1alpha1::{ApiKey, DkimKey, SuppressionShard};
use cascade_operator::backup::{self, ArchiveError, BackupError, KeySource};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, PostParams};
use std::process::Command;
use std::time::{Duration, Instant};
use support::operator::until;
use support::world::obj;

const NS: &str = "cascade-system";

async fn create_shard(client: &kube::Client, tenant: &str) {
    let spec = serde_json::json!({ "pool": "main", "tenant": tenant, "index": 0, "entries": 1, "sealed": "AAAA" });
    let shard: SuppressionShard = obj(serde_json::json!({ "apiVersion": "cascade-mail.com/v1alpha1", "kind": "SuppressionShard", "metadata": { "name": format!("main-{tenant}-0") }, "spec": spec }));
    Api::<SuppressionShard>::namespaced(client.clone(), NS).create(&PostParams::default(), &shard).await.unwrap();
}

async fn names<K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope> + Clone + serde::de::DeserializeOwned + std::fmt::Debug>(
    client: &kube::Client,
    ns: &str,
) -> Vec<String> {
    Api::<K>::namespaced(client.clone(), ns).list(&ListParams::default()).await.unwrap().items.iter().map(|o| o.meta().name.clone().unwrap_or_default()).collect()
}

/// swaks through the relay with these credentials.
fn send(port: u16, user: &str, password: &str) -> Result<(), String> {
    let out = Command::new("swaks")
        .args(["--server", &format!("127.0.0.1:{port}"), "--tls", "--auth", "PLAIN", "--auth-user", user, "--auth-password", password])
        .args(["--from", "orders@shop.example", "--to", "someone@dest.test", "--header", "Subject: drill", "--timeout", "10"])
        .output()
        .expect("swaks (test.sh installs it)");
    out.status.success().then_some(()).ok_or_else(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// python3-dkim verifies `message` with the one DNS record given.
fn dkim_verifies(message: &std::path::Path, dns_name: &str, txt: &str) -> bool {
    let script = "import dkim,sys\nname,rec=sys.argv[2].rstrip('.'),sys.argv[3].encode()\nf=lambda n,timeout=5: rec if n.decode().rstrip('.')==name else b''\nsys.exit(0 if dkim.verify(open(sys.argv[1],'rb').read(),dnsfunc=f) else 1)";
    Command::new("/usr/bin/python3").args(["-c", script]).arg(message).args([dns_name, txt]).status().expect("python3-dkim (test.sh installs it)").success()
}

#[tokio::test]
async fn a_backup_restores_into_an_empty_cluster_and_an_erased_tenant_stays_gone() {
    // The populated cluster.
    let Some(a) = support::operator::start().await else { return };
    let spec = serde_json::json!({ "dnsVerification": "warn", "tenants": { "matchNames": ["shop", "blog"] }, "assignedDomains": { "shop": ["shop.example"], "blog": ["blog.example"] } });
    support::world::pool(&a.client, spec).await;
    support::world::domain(&a.client, serde_json::json!({})).await;
    support::world::api_key(&a.client, "shop", "web", "shop.example").await;
    support::world::api_key(&a.client, "blog", "news", "blog.example").await;
    create_shard(&a.client, "shop").await;
    create_shard(&a.client, "blog").await;
    let (user, password) = support::world::credentials(&a.secrets, "shop", "web").await;
    let dkim: Api<DkimKey> = Api::namespaced(a.client.clone(), "shop");
    let record = until("the DKIM record", || async { dkim.get("shop-dkim").await.ok()?.status.and_then(|s| Some((s.dns_name?, s.txt_value?))) }).await;
    support::world::credentials(&a.secrets, "blog", "news").await;
    until("the key in the bundle", || async { support::relay::assembled(&a.secrets).await.filter(|y| y.contains(&user)) }).await;

    let key = KeySource::key_file(&base64::engine::general_purpose::STANDARD.encode([42u8; 32])).unwrap();
    let first = backup::backup(&a.client, NS, &key, cascade_core::time::now_unix()).await.unwrap();
    let shop = &first.manifest.tenants["shop"];
    assert_eq!((shop["ApiKey"], shop["DkimKey"], shop["SendingDomain"], shop["SuppressionShard"]), (1, 1, 1, 1), "{}", first.manifest.summary());
    assert!(first.manifest.platform["Secret"] >= 2 && first.manifest.platform["RelayPool"] == 1, "{}", first.manifest.summary());
    assert!(!String::from_utf8_lossy(&first.archive).contains(&password) && !String::from_utf8_lossy(&first.archive).contains("shop.example"));
    // Erasure: blog's data key is destroyed; the next backup's escrow has a new one.
    assert!(backup::erase_tenant(&a.client, NS, "blog").await.unwrap());
    let second = backup::backup(&a.client, NS, &key, cascade_core::time::now_unix()).await.unwrap();
    drop(a);

    // The drill: an empty cluster. A tampered archive and a wrong key change nothing.
    let b = support::operator::empty(false).await.expect("a second API server");
    let mut tampered = first.archive.clone();
    let at = tampered.len() / 2;
    tampered[at] ^= 1;
    let refused = backup::restore::restore(&b.client, NS, &tampered, &key, Some(&first.escrow)).await.unwrap_err();
    assert!(matches!(refused, BackupError::Archive(ArchiveError::Authentication)), "{refused}");
    let wrong = KeySource::key_file(&base64::engine::general_purpose::STANDARD.encode([7u8; 32])).unwrap();
    let refused = backup::restore::restore(&b.client, NS, &first.archive, &wrong, Some(&first.escrow)).await.unwrap_err();
    assert_eq!(refused.to_string(), "the archive does not open with this key: wrong key or passphrase, or the file was altered");
    assert!(names::<Secret>(&b.client, NS).await.is_empty() && names::<ApiKey>(&b.client, "shop").await.is_empty(), "a refused restore wrote something");

    let started = Instant::now();
    let report = backup::restore::restore(&b.client, NS, &first.archive, &key, Some(&first.escrow)).await.unwrap();
    assert!(report.shredded.is_empty(), "{:?}", report.shredded);
    let again = backup::restore::restore(&b.client, NS, &first.archive, &key, Some(&first.escrow)).await.unwrap_err();
    assert!(again.to_string().starts_with("restore needs an empty cluster; these exist: RelayPool cascade-system/main"), "{again}");
    let trail = support::trail::Trail::new("restore-drill");
    let b = b.run(|ctx| trail.attach(ctx)).await;
    until("the restored key in the new bundle", || async { support::relay::assembled(&b.secrets).await.filter(|y| y.contains(&user)) }).await;
    let rto = started.elapsed();
    // The restore is in the operator's audit trail, with who ran it; the mailbox is emptied.
    let restored = until("the restore in the operator's trail", || async { trail.find("restore") }).await;
    assert_eq!((restored["data"]["objects"].as_u64(), restored["data"]["shredded"].as_array().map(Vec::len)), (Some(report.created.len() as u64), Some(0)), "{restored}");
    // Who: the API server's SelfSubjectReview, which this test server does not serve (unit-tested).
    assert_eq!(restored["data"]["by"], cascade_operator::admin_records::UNKNOWN, "{restored}");
    let mailbox = until("the mailbox emptied", || async { b.secrets.get(NS, cascade_operator::admin_records::SECRET_NAME).await.ok().flatten().filter(|d| d.is_empty()) }).await;
    assert!(mailbox.is_empty());
    let relay = support::relay::Bundle::from_operator("drill", &b.secrets, |_| {}).await;
    let _running = relay.serve(&[], &[]);
    until("the relay's submission port", || async { tokio::net::TcpStream::connect(("127.0.0.1", relay.submission)).await.ok() }).await;
    assert_eq!(send(relay.submission, &user, &password), Ok(()), "the pre-backup credentials authenticate");
    let outbox = relay.dir.join("outbox");
    let message = until("the captured message", || async { std::fs::read_dir(&outbox).ok()?.filter_map(Result::ok).map(|e| e.path()).find(|p| p.extension().is_some_and(|e| e == "eml")) }).await;
    assert!(dkim_verifies(&message, &record.0, &record.1), "the restored relay's signature does not verify against the pre-backup record {}", record.0);
    eprintln!("restore drill: restore to serving bundle in {rto:?} (RTO of the configuration)");
    assert!(rto < Duration::from_secs(60));
    drop(b);

    // The old archive with the latest escrow: blog was erased, only shop comes back.
    let c = support::operator::empty(false).await.expect("a third API server");
    let report = backup::restore::restore(&c.client, NS, &first.archive, &key, Some(&second.escrow)).await.unwrap();
    assert_eq!(report.shredded, vec!["blog".to_string()]);
    assert_eq!(names::<ApiKey>(&c.client, "shop").await, vec!["web".to_string()]);
    assert!(names::<ApiKey>(&c.client, "blog").await.is_empty() && names::<Secret>(&c.client, "blog").await.is_empty());
    assert_eq!(names::<SuppressionShard>(&c.client, NS).await, vec!["main-shop-0".to_string()]);
}
