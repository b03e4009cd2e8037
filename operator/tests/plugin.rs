//! `kubectl cascade`, the binary, against the real API server with the operator's controllers
//! running and Knot serving the domain's zone: each command's output (table and `-o json`),
//! its exit code, and what it changed. The plugin reaches the server as a user would, through a
//! kubeconfig (the loopback proxy's, which maps core Secrets to the test server's stand-in).

mod support;

use cascade_crds::v1alpha1::{ApiKey, DkimKey, RelayPool, SendingDomain};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{json, Value};
use std::path::Path;
use support::dns::Knot;
use support::operator::until;
use support::world::obj;

/// Runs the plugin; its exit code, stdout and stderr.
async fn plugin(kubeconfig: &Path, args: &[&str]) -> (i32, String, String) {
    // On a blocking thread: the proxy the plugin talks to runs on this test's runtime.
    let (args, kubeconfig): (Vec<String>, _) = (args.iter().map(|a| a.to_string()).collect(), kubeconfig.to_path_buf());
    let run =
        tokio::task::spawn_blocking(move || std::process::Command::new(env!("CARGO_BIN_EXE_kubectl-cascade")).args(&args).env("KUBECONFIG", kubeconfig).env_remove("KUBERNETES_SERVICE_HOST").output());
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), run).await.expect("the plugin answers within 60 s").unwrap().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

async fn json_of(kubeconfig: &Path, args: &[&str]) -> (i32, Value) {
    let (code, out, err) = plugin(kubeconfig, args).await;
    (code, serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {out}{err}")))
}

#[tokio::test]
async fn every_command_answers_with_tables_json_and_exit_codes_scripts_can_use() {
    let mut knot = Knot::start(&[("shop.example", vec![])]);
    let dns = knot.addr().to_string();
    let Some(op) = support::operator::start_with(|ctx| ctx.dns = cascade_operator::dns::Dns::new(&[knot.addr()]).unwrap()).await else { return };
    let proxy = support::proxy::Proxy::start(&op.kubeconfig()).await;
    let dir = std::env::temp_dir().join(format!("cascade-plugin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kc = proxy.kubeconfig(&dir);
    let pools = support::world::pool(&op.client, json!({ "replicas": 2 })).await;
    let domains = support::world::domain(&op.client, json!({ "spf": { "include": "_spf.relay.test" } })).await;
    let keys: Api<ApiKey> = Api::namespaced(op.client.clone(), "shop");
    for name in ["web", "old"] {
        keys.create(&PostParams::default(), &obj(json!({ "apiVersion": "cascade-mail.com/v1alpha1", "kind": "ApiKey", "metadata": { "name": name }, "spec": {} }))).await.unwrap();
    }
    until("the keys issued", || async { keys.get("old").await.ok()?.status?.key_id.and(keys.get("web").await.ok()?.status?.key_id) }).await;
    until("the domain's records", || async { domains.get("shop").await.ok()?.status.filter(|s| s.records.len() >= 3) }).await;

    // --help on every command; a usage error is 2.
    for cmd in [&["--help"][..], &["status", "--help"], &["dns", "--help"], &["rotate", "dkim", "--help"], &["credentials", "--help"], &["keys", "--help"], &["check", "--help"]] {
        let (code, out, _) = plugin(&kc, cmd).await;
        assert!(code == 0 && out.contains("Usage: kubectl cascade"), "{cmd:?}: {code} {out}");
    }
    assert_eq!(plugin(&kc, &["status", "--no-such-flag"]).await.0, 2);

    // status: one screen; the pool has no relay running here, so not healthy: exit 1.
    let now = cascade_core::time::rfc3339_utc(cascade_core::time::now_unix());
    let queue = json!({ "status": { "queues": [{ "namespace": "shop", "messages": 7, "oldestAcceptedAt": now }] } });
    pools.patch_status("main", &PatchParams::default(), &Patch::Merge(&queue)).await.unwrap();
    let (code, doc) = json_of(&kc, &["status", "-A", "-o", "json"]).await;
    assert_eq!((code, doc["healthy"].as_bool()), (1, Some(false)), "{doc}");
    assert_eq!((doc["pools"][0]["name"].as_str(), doc["pools"][0]["ready"].as_str()), (Some("main"), Some("False")), "{doc}");
    assert_eq!(doc["domains"][0]["domain"], "shop.example");
    assert_eq!(doc["apiKeys"].as_array().unwrap().len(), 2);
    assert_eq!(doc["dkimKeys"][0]["name"], "shop-dkim");
    assert_eq!((doc["queues"][0]["namespace"].as_str(), doc["queues"][0]["messages"].as_u64()), (Some("shop"), Some(7)), "{doc}");
    let (code, table, _) = plugin(&kc, &["status", "-n", "shop"]).await;
    assert_eq!(code, 1);
    for part in ["RELAY POOLS", "SENDING DOMAINS", "DKIM KEYS", "API KEYS", "QUEUES", "shop.example", "cascade-system/main"] {
        assert!(table.contains(part), "{part}: {table}");
    }
    let (_, yaml, _) = plugin(&kc, &["status", "-n", "shop", "-o", "yaml"]).await;
    assert!(yaml.contains("domain: shop.example"), "{yaml}");

    // dns: the records, then the live check; what it prints as a zone file is what DNS needs.
    let (code, doc) = json_of(&kc, &["dns", "shop/shop.example", "--nameserver", &dns, "-o", "json"]).await;
    assert_eq!(code, 1, "nothing published yet: {doc}");
    assert!(doc["checks"].as_array().unwrap().iter().any(|c| c["passed"] == "False"), "{doc}");
    assert_eq!(doc["dnsEndpoint"]["kind"], "DNSEndpoint");
    let zone: Vec<String> = doc["zoneFile"].as_array().unwrap().iter().map(|l| l.as_str().unwrap().to_string()).collect();
    assert!(zone.iter().any(|l| l.starts_with("cascade1._domainkey.shop.example. 300 IN TXT \"v=DKIM1;")), "{zone:?}");
    knot.serve(&[("shop.example", zone)]);
    let (code, table, err) = plugin(&kc, &["dns", "shop.example", "-n", "shop", "--nameserver", &dns]).await;
    assert_eq!(code, 0, "{table}{err}");
    assert!(table.contains("_dmarc.shop.example. 300 IN TXT") && table.contains("kind: DNSEndpoint") && table.contains("LIVE CHECK"), "{table}");
    let (code, _, err) = plugin(&kc, &["dns", "shop/nope.example", "--nameserver", &dns]).await;
    assert!(code == 3 && err.contains("no SendingDomain for nope.example in namespace shop"), "{code} {err}");

    // rotate dkim --wait: the annotation, and the operator's new selector.
    let (code, out, err) = plugin(&kc, &["rotate", "dkim", "shop-dkim", "-n", "shop", "--wait", "--timeout", "30s"]).await;
    assert!(code == 0 && out.contains("rotated; the next key's selector is cascade1-2"), "{code} {out}{err}");
    let k = Api::<DkimKey>::namespaced(op.client.clone(), "shop").get("shop-dkim").await.unwrap();
    assert!(k.metadata.annotations.unwrap().contains_key("cascade-mail.com/rotate"));
    assert_eq!(plugin(&kc, &["rotate", "dkim", "missing", "-n", "shop"]).await.0, 3);

    // credentials: the env file (0600) holds what the operator issued.
    let secret = op.secrets.get("shop", "web-credentials").await.unwrap().unwrap();
    let (user, pass) = (String::from_utf8(secret["username"].clone()).unwrap(), String::from_utf8(secret["password"].clone()).unwrap());
    let env = dir.join("web.env");
    let (code, out, err) = plugin(&kc, &["credentials", "web", "-n", "shop", "--env-file", env.to_str().unwrap()]).await;
    assert!(code == 0 && out.contains("mode 0600"), "{code} {out}{err}");
    let text = std::fs::read_to_string(&env).unwrap();
    assert!(text.contains(&format!("CASCADE_USERNAME='{user}'\n")) && text.contains(&format!("CASCADE_PASSWORD='{pass}'\n")), "{text}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&env).unwrap().permissions().mode() & 0o777, 0o600);
    let (_, doc) = json_of(&kc, &["credentials", "web", "-n", "shop", "-o", "json"]).await;
    assert_eq!(doc["env"]["CASCADE_USERNAME"], user.as_str());
    assert_eq!(plugin(&kc, &["credentials", "missing", "-n", "shop"]).await.0, 3);

    // keys --unused 90d: the access review lists the key last used 124 days ago, not the one
    // used now.
    for (name, at) in [("old", "2026-08-01T00:00:00Z".to_string()), ("web", now.clone())] {
        keys.patch_status(name, &PatchParams::default(), &Patch::Merge(&json!({ "status": { "lastUsedAt": at, "lastSourceNetwork": "10.0.0.0/24" } }))).await.unwrap();
    }
    let review = || async {
        let (code, doc) = json_of(&kc, &["keys", "-A", "--unused", "90d", "-o", "json"]).await;
        let names: Vec<String> = doc["apiKeys"].as_array()?.iter().filter_map(|k| k["name"].as_str().map(String::from)).collect();
        (code == 0 && names == ["old"]).then_some(())
    };
    until("the review lists the unused key only", review).await;
    let (code, table, _) = plugin(&kc, &["keys", "-n", "shop", "--unused", "90d"]).await;
    assert!(code == 0 && table.contains("old") && table.contains("1 key(s) unused for 90d"), "{table}");
    let (_, table, _) = plugin(&kc, &["keys", "-n", "shop"]).await;
    assert!(table.contains("web") && table.contains("old") && table.contains("10.0.0.0/24"), "{table}");

    // check: offline, on files; a claimed domain that no pool assigns is not served: exit 1.
    let pool = obj::<RelayPool>(
        json!({ "apiVersion": "cascade-mail.com/v1alpha1", "kind": "RelayPool", "metadata": { "name": "main", "namespace": "cascade-system" }, "spec": { "tenants": { "matchNames": ["shop"] }, "assignedDomains": { "shop": ["shop.example"] } } }),
    );
    let domain = |name: &str, d: &str| {
        obj::<SendingDomain>(
            json!({ "apiVersion": "cascade-mail.com/v1alpha1", "kind": "SendingDomain", "metadata": { "name": name, "namespace": "shop" }, "spec": { "domain": d, "relayPool": { "name": "main", "namespace": "cascade-system" } } }),
        )
    };
    let yaml = |objs: Vec<String>| objs.join("---\n");
    let files = dir.join("ok.yaml");
    std::fs::write(&files, yaml(vec![serde_saphyr::to_string(&pool).unwrap(), serde_saphyr::to_string(&domain("shop", "shop.example")).unwrap()])).unwrap();
    let (code, out, err) = plugin(&kc, &["check", "-f", files.to_str().unwrap()]).await;
    assert!(code == 0 && out.contains("every object is served"), "{code} {out}{err}");
    std::fs::write(&files, yaml(vec![serde_saphyr::to_string(&pool).unwrap(), serde_saphyr::to_string(&domain("other", "other.example")).unwrap()])).unwrap();
    let (code, out, _) = plugin(&kc, &["check", "-f", files.to_str().unwrap()]).await;
    assert!(code == 1 && out.contains("not served: SendingDomain shop/other"), "{code} {out}");
    let _ = std::fs::remove_dir_all(&dir);
}
