//! Render time and sharded bundle sizes for growing worlds in 100 namespaces (targets: 1,000
//! SendingDomains and 10,000 ApiKeys in under a second, growing linearly; every Secret of the
//! pod layout under Kubernetes's 1 MiB, DKIM keys sealed as the operator stores them), and a
//! relay loading the largest (`cascade-relay check-config` on the directory layout, when the
//! binary is built). Run: `cargo bench --ignore-rust-version -p cascade-operator --bench render`.
//! Key material is given (as the controllers have it in Secrets; one real RSA-2048 key sealed
//! per DkimKey), so this measures evaluation, sealing and serialization, not key generation.

use cascade_crds::v1alpha1::*;
use cascade_operator::render::evaluate::{evaluate, key_of, Inputs, Material};
use std::time::Instant;

fn world(domains: usize, keys: usize) -> (Inputs, Material) {
    let namespaces = 100;
    let ns = |i: usize| format!("tenant-{}", i % namespaces);
    let pool_spec: RelayPoolSpec = serde_json::from_value(serde_json::json!({
        "tenants": { "matchNames": (0..namespaces).map(ns).collect::<Vec<_>>() },
        "assignedDomains": (0..namespaces).map(|i| (ns(i), vec!["example"])).collect::<std::collections::BTreeMap<_, _>>()
    }))
    .unwrap();
    let mut pool = RelayPool::new("main", pool_spec);
    pool.metadata.namespace = Some("platform".into());
    let mut inputs = Inputs { pools: vec![pool], ..Default::default() };
    for i in 0..domains {
        let spec: SendingDomainSpec = serde_json::from_value(serde_json::json!({
            "domain": format!("d{i}.example"), "relayPool": {"name": "main", "namespace": "platform"}, "spf": {"include": "_spf.relay.example"}
        }))
        .unwrap();
        let mut d = SendingDomain::new(&format!("d{i}"), spec);
        d.metadata.namespace = Some(ns(i));
        inputs.domains.push(d);
    }
    for i in 0..keys {
        let mut a = ApiKey::new(&format!("k{i}"), serde_json::from_value(serde_json::json!({})).unwrap());
        a.metadata.namespace = Some(ns(i));
        inputs.api_keys.push(a);
    }
    let mut material = Material::default();
    let public = "A".repeat(392); // the length of an RSA-2048 SubjectPublicKeyInfo in base64
    for k in cascade_operator::render::evaluate::effective_dkim_keys(&inputs) {
        material.dkim_public.insert(key_of(&k), public.clone());
    }
    for a in &inputs.api_keys {
        let k = key_of(a);
        material.api_keys.insert(k.clone(), (format!("ck_{}", k.1), format!("sha256:{}", "0".repeat(64))));
    }
    (inputs, material)
}

const MIB: usize = 1 << 20;

/// A Secret's size as the API server counts it (the sum of its values).
fn size(data: &std::collections::BTreeMap<String, Vec<u8>>) -> usize {
    data.values().map(Vec::len).sum()
}

fn main() {
    let (pem, _) = cascade_core::dkim_key::generate(cascade_crds::relay_config::DkimAlgorithm::RsaSha256).unwrap();
    let sealing = cascade_core::seal::KeyRing::parse(&cascade_core::seal::KeyRing::generate_line("b1").unwrap()).unwrap();
    let tls: std::collections::BTreeMap<String, Vec<u8>> = [("tls.crt".to_string(), b"CERT".to_vec()), ("tls.key".to_string(), b"KEY".to_vec())].into();
    println!("{:>8} {:>8} {:>10} {:>14} {:>10} {:>14} {:>14}", "domains", "apikeys", "render ms", "µs per object", "secrets", "largest KiB", "bundle KiB");
    let mut largest_ms = 0.0;
    let mut fits = true;
    let mut biggest = None;
    for (d, k) in [(100, 1_000), (500, 5_000), (1_000, 10_000)] {
        let (inputs, material) = world(d, k);
        let private: std::collections::BTreeMap<String, Vec<u8>> =
            cascade_operator::render::evaluate::effective_dkim_keys(&inputs).iter().map(|dk| (cascade_operator::render::evaluate::dkim_key_file(&key_of(dk)), pem.clone().into_bytes())).collect();
        let start = Instant::now();
        let plan = evaluate(&inputs.pools[0], &inputs, &material, 1_800_000_000, "2027-01-15T08:00:00Z").unwrap();
        let parts = || cascade_operator::bundle::Parts { tls: &tls, admin: Default::default(), smarthost: Default::default(), dkim_private: &private };
        let pod = cascade_operator::bundle::build(&plan.config, parts(), cascade_operator::bundle::Layout::Pod { bundle: "main-relay-config", sealing: &sealing, published: None }).unwrap();
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        assert_eq!(plan.config.api_keys.len(), k);
        assert_eq!(plan.config.tenants.iter().map(|t| t.domains.len()).sum::<usize>(), d);
        let largest = pod.shards.values().map(size).chain(std::iter::once(size(&pod.files))).max().unwrap();
        let total = pod.shards.values().map(size).sum::<usize>() + size(&pod.files);
        fits &= largest < MIB;
        println!("{d:>8} {k:>8} {ms:>10.1} {:>14.1} {:>10} {:>14.0} {:>14.0}", ms * 1000.0 / (d + k) as f64, pod.shards.len() + 1, largest as f64 / 1024.0, total as f64 / 1024.0);
        largest_ms = ms;
        biggest = Some((plan, private));
    }
    println!("target: 1,000 domains + 10,000 keys under 1,000 ms -> {}", if largest_ms < 1000.0 { "met" } else { "NOT met" });
    println!("target: every Secret under 1 MiB -> {}", if fits { "met" } else { "NOT met" });
    assert!(fits, "a Secret of the pod layout reached 1 MiB");
    let (plan, private) = biggest.unwrap();
    relay_loads(&plan, &private);
}

/// Writes the directory layout of the largest world and has the relay load it.
fn relay_loads(plan: &cascade_operator::render::evaluate::Plan, private: &std::collections::BTreeMap<String, Vec<u8>>) {
    let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target");
    let Some(relay) = ["release", "debug"].iter().map(|p| target.join(p).join("cascade-relay")).find(|p| p.exists()) else {
        println!("relay load: skipped (build cascade-relay first: cargo build --ignore-rust-version -p cascade-relay)");
        return;
    };
    let dir = std::env::temp_dir().join(format!("cascade-bench-bundle-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let keys: std::collections::BTreeMap<String, Vec<u8>> =
        [("spool.key".to_string(), cascade_core::seal::KeyRing::generate_line("k1").unwrap().into_bytes()), ("audit.key".to_string(), cascade_core::audit::new_key_file().unwrap().into_bytes())]
            .into();
    let (cert, key) = cascade_core::certificate::self_signed(&["relay.example"]).unwrap();
    let tls: std::collections::BTreeMap<String, Vec<u8>> = [("tls.crt".to_string(), cert.into_bytes()), ("tls.key".to_string(), key.into_bytes())].into();
    let parts = cascade_operator::bundle::Parts { tls: &tls, admin: Default::default(), smarthost: Default::default(), dkim_private: private };
    let bundle = cascade_operator::bundle::build(&plan.config, parts, cascade_operator::bundle::Layout::Directory { keys: &keys }).unwrap();
    for (name, bytes) in &bundle.files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    let start = Instant::now();
    let out = std::process::Command::new(&relay).arg("check-config").arg(dir.join("relay.yaml")).output().unwrap();
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    let verdict = if out.status.success() { "OK" } else { "REFUSED" };
    println!("relay load of the largest ({} files): {verdict} in {ms:.0} ms", bundle.files.len());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let _ = std::fs::remove_dir_all(&dir);
}
