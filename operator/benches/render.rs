//! Render time and bundle size for growing worlds (target: 1,000 SendingDomains and 10,000
//! ApiKeys in under a second, growing linearly). Run: `cargo bench --ignore-rust-version -p cascade-operator`.
//! Key material is given (as the controllers have it in Secrets), so this measures evaluation
//! and serialization, not RSA key generation.

use cascade_crds::v1alpha1::*;
use cascade_operator::render::evaluate::{evaluate, key_of, Inputs, Material};
use std::time::Instant;

fn world(domains: usize, keys: usize) -> (Inputs, Material) {
    let namespaces = 100;
    let ns = |i: usize| format!("tenant-{}", i % namespaces);
    let pool_spec: RelayPoolSpec = serde_json::from_value(serde_json::json!({
        "tenants": { "matchNames": (0..namespaces).map(ns).collect::<Vec<_>>() }
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

fn main() {
    println!("{:>8} {:>8} {:>10} {:>12} {:>14}", "domains", "apikeys", "render ms", "bundle KiB", "µs per object");
    let mut largest = 0.0;
    for (d, k) in [(100, 1_000), (500, 5_000), (1_000, 10_000)] {
        let (inputs, material) = world(d, k);
        let start = Instant::now();
        let plan = evaluate(&inputs.pools[0], &inputs, &material, 1_800_000_000, "2027-01-15T08:00:00Z").unwrap();
        let yaml = serde_saphyr::to_string(&plan.config).unwrap();
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        assert_eq!(plan.config.api_keys.len(), k);
        assert_eq!(plan.config.tenants.iter().map(|t| t.domains.len()).sum::<usize>(), d);
        println!("{d:>8} {k:>8} {ms:>10.1} {:>12.0} {:>14.1}", yaml.len() as f64 / 1024.0, ms * 1000.0 / (d + k) as f64);
        largest = ms;
    }
    println!("target: 1,000 domains + 10,000 keys under 1,000 ms -> {}", if largest < 1000.0 { "met" } else { "NOT met" });
}
