//! Configuration checks: defaults pinned, every problem reported with file, field and reason.

use super::*;
use crate::dev::{self, DevOptions};

fn bundle() -> (PathBuf, String) {
    let dir = crate::spool::tests::temp_dir("config");
    let opts = DevOptions {
        data_dir: dir.clone(),
        submission: "127.0.0.1:2587".into(),
        submissions: "127.0.0.1:2465".into(),
        http: "127.0.0.1:9587".into(),
        admin: "127.0.0.1:9588".into(),
        smarthost: None,
        webhook: None,
    };
    let (path, _) = dev::prepare(&opts).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    (path, text)
}

fn problems(path: &Path, text: &str) -> Vec<String> {
    std::fs::write(path, text).unwrap();
    let found = match load(path) {
        Ok(rt) => rt.dropped.clone(),
        Err(e) => e.0,
    };
    found.iter().map(|p| format!("{}: {}", p.field, p.reason)).collect()
}

#[test]
fn a_bad_tenant_entry_is_dropped_alone_and_the_rest_is_served() {
    let (path, text) = bundle();
    let mut config = parse("relay.yaml", &text).unwrap();
    let mut bad_key = config.api_keys[0].clone();
    (bad_key.id, bad_key.scopes) = ("ck_other".into(), vec!["email:send".into()]);
    config.api_keys.push(bad_key);
    let mut other = config.tenants[0].clone();
    (other.name, other.domains[0].name) = ("other".into(), "Not_A_Domain".into());
    config.tenants.push(other);
    std::fs::write(&path, serde_saphyr::to_string(&config).unwrap()).unwrap();
    let rt = load(&path).expect("one tenant's bad entries never refuse the whole configuration");
    assert_eq!(rt.keys.keys().collect::<Vec<_>>(), vec![&config.api_keys[0].id], "the good key is served, the bad one left out");
    assert!(rt.domains.contains_key("example.test") && rt.domains.len() == 1);
    let fields: Vec<&str> = rt.dropped.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(fields, vec!["tenants[1].domains[0].name", "apiKeys[1].scopes[0]"], "{:#?}", rt.dropped);
}

#[test]
fn the_dev_bundle_loads() {
    let (path, _) = bundle();
    let rt = load(&path).unwrap();
    assert_eq!(rt.domains["example.test"].signers.len(), 1);
    assert_eq!(rt.keys.len(), 1);
}

#[test]
fn defaults_are_pinned() {
    let minimal = "tls: {certFile: c.pem, keyFile: k.pem}\nspool: {dir: spool, keyFile: spool.key}\n";
    let config = parse("relay.yaml", minimal).unwrap();
    let limits = serde_json::to_value(&config.limits).unwrap();
    assert_eq!(
        limits,
        serde_json::json!({
            "maxMessageSize": "25MiB", "maxRecipients": 100, "maxLineLength": 1000, "maxSessions": 2000, "maxSessionsPerClient": 50, "tenantQueuedMessages": 100000, "tenantQueuedBytes": "4GiB",
            "maxCommands": 1000, "commandTimeout": "5m", "dataTimeout": "3m", "sessionTimeout": "10m", "minDataRate": "500", "dataRateWindow": "30s", "maxAuthFailures": 5,
            "authFailureWindow": "5m", "shutdownGrace": "25s", "apiRequestsPerMinute": 600
        })
    );
    let delivery = serde_json::to_value(&config.delivery).unwrap();
    assert_eq!(
        delivery,
        serde_json::json!({
            "mode": "mx", "mxPort": 25, "nameservers": [], "smarthost": null, "captureDir": null, "tls": "opportunistic",
            "concurrency": 64, "concurrencyPerTenant": 32, "concurrencyPerDestination": 20, "retry": {"initial": "1m", "maxDelay": "4h", "maxAge": "5d"},
            "timeouts": {"connect": "30s", "command": "5m", "dataEnd": "10m", "idle": "30s"}
        })
    );
    assert_eq!(config.listeners.submission, vec!["0.0.0.0:587"]);
    assert_eq!(config.listeners.submissions, vec!["0.0.0.0:465"]);
}

#[test]
fn unknown_fields_and_bad_values_are_refused_with_their_location() {
    let err = parse("relay.yaml", "tls: {certFile: c, keyFile: k}\nspool: {dir: s, keyFile: k}\nlimits: {maxRecipeints: 5}\n").unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("relay.yaml: (document): ") && msg.contains("maxRecipeints"), "{msg}");
    let err = parse("relay.yaml", "tls: {certFile: c, keyFile: k}\nspool: {dir: s, keyFile: k}\nlimits: {commandTimeout: soon}\n").unwrap_err();
    assert!(err.to_string().contains("invalid duration \"soon\""), "{err}");
}

#[test]
fn every_problem_is_reported_with_its_field() {
    let (path, text) = bundle();
    let broken = text
        .replace("hostname: localhost", "hostname: -bad-")
        .replace("127.0.0.1:2587", "nowhere")
        .replace("127.0.0.1:9588", "127.0.0.1:9587")
        .replace("keyFile: dkim-example.test-cascade1.pem", "keyFile: missing.pem")
        .replace("tenant: dev", "tenant: nobody")
        .replace("secretHash: sha256:", "secretHash: md5:")
        .replace("allowedCidrs: []", "allowedCidrs: [10.0.0.0/99]")
        .replace("expiresAt: null", "expiresAt: tomorrow")
        .replace("scopes:\n  - smtp:submit", "scopes:\n  - smtp:everything")
        .replace("mode: capture", "mode: smarthost");
    let found = problems(&path, &broken);
    let expect = [
        "hostname: \"-bad-\" is not a valid host name",
        "listeners.submission[0]: \"nowhere\" is not IP:PORT",
        "listeners.admin: must differ from listeners.http",
        "tenants[0].domains[0].dkim[0].keyFile: cannot read",
        "apiKeys[0].tenant: no tenant named \"nobody\"",
        "apiKeys[0].secretHash: expected sha256:<64 hex digits>",
        "apiKeys[0].scopes[0]: unknown scope \"smtp:everything\"",
        "apiKeys[0].allowedCidrs[0]: \"10.0.0.0/99\": prefix length above 32",
        "apiKeys[0].expiresAt: \"tomorrow\" is not an RFC 3339 time",
        "delivery.smarthost: required when mode is smarthost",
    ];
    for e in expect {
        assert!(found.iter().any(|f| f.starts_with(e)), "missing {e:?} in {found:#?}");
    }
    assert_eq!(found.len(), expect.len(), "{found:#?}");
}

#[test]
fn domains_belong_to_one_tenant_and_keys_to_their_tenants_domains() {
    let (path, text) = bundle();
    let dkim_line = text.lines().find(|l| l.contains("keyFile: dkim-")).unwrap().trim().to_string();
    let extra = format!("- name: other\n  domains:\n  - name: example.test\n    dkim:\n    - selector: s2\n      {dkim_line}\napiKeys:");
    let dup = text.replacen("apiKeys:", &extra, 1).replace("allowedDomains: []", "allowedDomains: [bank.test]");
    let found = problems(&path, &dup);
    assert!(found.iter().any(|f| f == "tenants[1].domains[0].name: domain \"example.test\" is claimed more than once"), "{found:#?}");
    assert!(found.iter().any(|f| f == "apiKeys[0].allowedDomains[0]: \"bank.test\" is not a domain of tenant \"dev\""), "{found:#?}");
}

#[test]
fn weak_rsa_keys_are_refused() {
    let (path, text) = bundle();
    std::fs::write(path.parent().unwrap().join("weak.pem"), WEAK_RSA_1024).unwrap();
    let found = problems(&path, &text.replace("keyFile: dkim-example.test-cascade1.pem", "keyFile: weak.pem"));
    assert_eq!(found, vec!["tenants[0].domains[0].dkim[0].keyFile: RSA key is shorter than 2048 bits; at least 2048 are required"]);
}

/// A throwaway 1024-bit RSA key (PKCS#8), only to prove it is refused.
const WEAK_RSA_1024: &str = include_str!("testdata/weak-rsa-1024.pem");

/// The dev bundle's directory as in-memory entries (a watched Secret), with absolute directories.
fn entries(path: &Path, text: &str) -> BTreeMap<String, Vec<u8>> {
    let dir = path.parent().unwrap();
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            files.insert(p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap());
        }
    }
    let mut config = parse("relay.yaml", text).unwrap();
    config.spool.dir = dir.join(&config.spool.dir).display().to_string();
    config.delivery.capture_dir = config.delivery.capture_dir.map(|c| dir.join(c).display().to_string());
    files.insert(BUNDLE_CONFIG.into(), serde_saphyr::to_string(&config).unwrap().into_bytes());
    files
}

#[test]
fn a_bundle_in_memory_loads_like_its_files() {
    let (path, text) = bundle();
    let files = entries(&path, &text);
    let rt = load_bundle("secret mail/main-relay-config", &files).unwrap();
    assert_eq!((rt.domains["example.test"].signers.len(), rt.keys.len()), (1, 1));
    assert_eq!(rt.tls_pem.0, files[&rt.config.tls.cert_file]);

    let mut missing = files.clone();
    missing.remove(&rt.config.tls.key_file);
    let err = |files: &BTreeMap<String, Vec<u8>>| load_bundle("secret mail/x", files).err().expect("refused").to_string();
    let e = err(&missing);
    assert!(e.contains("secret mail/x: relay.yaml: tls.keyFile: the bundle has no entry"), "{e}");
    let mut no_config = files.clone();
    no_config.remove(BUNDLE_CONFIG);
    assert!(err(&no_config).contains("relay.yaml: (file): missing from the bundle"));
    let mut relative = files;
    let yaml = String::from_utf8(relative[BUNDLE_CONFIG].clone()).unwrap();
    let dir = path.parent().unwrap().display().to_string();
    relative.insert(BUNDLE_CONFIG.into(), yaml.replace(&format!("{dir}/spool"), "spool").into_bytes());
    assert!(err(&relative).contains("spool.dir: must be an absolute path in a bundle"));
}

#[test]
fn sealed_dkim_keys_open_with_the_sealing_key_under_their_own_name() {
    let (path, text) = bundle();
    let dir = path.parent().unwrap();
    let mut config = parse("relay.yaml", &text).unwrap();
    let plain = config.tenants[0].domains[0].dkim[0].key_file.clone();
    let ring_line = KeyRing::generate_line("b1").unwrap();
    std::fs::write(dir.join("bundle.key"), &ring_line).unwrap();
    let ring = KeyRing::parse(&ring_line).unwrap();
    let sealed = cascade_core::seal::seal_blob(&ring, "dkim.pem.sealed", &std::fs::read(dir.join(&plain)).unwrap()).unwrap();
    std::fs::write(dir.join("dkim.pem.sealed"), &sealed).unwrap();
    std::fs::write(dir.join("moved.pem.sealed"), &sealed).unwrap();
    config.tenants[0].domains[0].dkim[0].key_file = "dkim.pem.sealed".into();
    config.sealing_key_file = Some("bundle.key".into());
    let yaml = |c: &RelayConfig| serde_saphyr::to_string(c).unwrap();
    assert_eq!(problems(&path, &yaml(&config)), Vec::<String>::new());
    assert_eq!(load(&path).unwrap().domains["example.test"].signers.len(), 1);

    // A sealed file under another name does not decrypt; without the ring it cannot.
    config.tenants[0].domains[0].dkim[0].key_file = "moved.pem.sealed".into();
    let p = problems(&path, &yaml(&config));
    assert!(p.len() == 1 && p[0].starts_with("tenants[0].domains[0].dkim[0].keyFile: cannot decrypt with sealingKeyFile"), "{p:?}");
    config.tenants[0].domains[0].dkim[0].key_file = "dkim.pem.sealed".into();
    config.sealing_key_file = None;
    assert_eq!(problems(&path, &yaml(&config)), vec!["tenants[0].domains[0].dkim[0].keyFile: a .sealed key file needs sealingKeyFile"]);
}

#[test]
fn smarthost_credentials_need_verified_tls() {
    let (path, text) = bundle();
    let smarthost = |tls: &str| {
        let block = format!("delivery:\n  mode: smarthost\n  smarthost:\n    address: 127.0.0.1:2525\n{tls}    username: relay\n    passwordFile: relay.yaml\n");
        let start = text.find("delivery:\n").unwrap();
        let end = start + text[start..].find("\nspool:").unwrap() + 1;
        format!("{}{block}{}", &text[..start], &text[end..])
    };
    for weak in ["", "    tls: opportunistic\n"] {
        assert_eq!(problems(&path, &smarthost(weak)), ["delivery.smarthost.tls: must be required (verified TLS) when username and passwordFile are set"], "{weak:?}");
    }
    assert_eq!(problems(&path, &smarthost("    tls: required\n")), Vec::<String>::new());
}

#[test]
fn expiry_times_with_any_offset_are_accepted_and_compared_in_utc() {
    let (path, text) = bundle();
    std::fs::write(&path, text.replace("expiresAt: null", "expiresAt: 2027-01-01T02:00:00+02:00")).unwrap();
    let rt = load(&path).unwrap();
    let key = rt.keys.values().next().unwrap();
    assert_eq!(key.expires_at, cascade_core::time::parse_rfc3339("2027-01-01T00:00:00Z"));
}

/// The dev bundle with its tenant and key moved into a shard file, as the operator writes them.
fn sharded(path: &Path, text: &str) -> (RelayConfig, String) {
    let mut config = parse("relay.yaml", text).unwrap();
    let shard = cascade_crds::relay_config::Shard { tenants: std::mem::take(&mut config.tenants), api_keys: std::mem::take(&mut config.api_keys) };
    let shard_text = serde_saphyr::to_string(&shard).unwrap();
    let dir = path.parent().unwrap();
    let keys: Vec<Vec<u8>> = shard.key_files().iter().map(|f| std::fs::read(dir.join(f)).unwrap()).collect();
    let digest = cascade_core::shard::digest(shard_text.as_bytes(), &keys.iter().map(Vec::as_slice).collect::<Vec<_>>());
    config.shards.push(cascade_crds::relay_config::ShardRef { file: "tenant-dev.yaml".into(), secret: None, digest });
    (config, shard_text)
}

#[test]
fn tenants_in_shards_load_only_with_their_digest() {
    let (path, text) = bundle();
    let dir = path.parent().unwrap().to_path_buf();
    let (config, shard_text) = sharded(&path, &text);
    std::fs::write(&path, serde_saphyr::to_string(&config).unwrap()).unwrap();
    std::fs::write(dir.join("tenant-dev.yaml"), &shard_text).unwrap();
    let rt = load(&path).unwrap();
    assert!(rt.dropped.is_empty() && rt.keys.len() == 1 && rt.domains.contains_key("example.test"), "{:?}", rt.dropped);

    // An altered shard (a revocation written without its digest) is dropped, never half-used.
    std::fs::write(dir.join("tenant-dev.yaml"), shard_text.replace("revoked: false", "revoked: true")).unwrap();
    let rt = load(&path).unwrap();
    assert!(rt.keys.is_empty() && rt.domains.is_empty());
    assert_eq!(rt.dropped.iter().map(|p| p.field.as_str()).collect::<Vec<_>>(), vec!["shards[0].digest"]);
    // A missing one likewise.
    std::fs::remove_file(dir.join("tenant-dev.yaml")).unwrap();
    assert!(load(&path).unwrap().dropped[0].field.starts_with("shards[0].file"));

    // In memory (a watched set): consistent only when every shard matches its digest.
    let mut files = entries(&path, &serde_saphyr::to_string(&config).unwrap());
    files.insert("tenant-dev.yaml".into(), shard_text.clone().into_bytes());
    assert!(shards_consistent(&files));
    files.insert("tenant-dev.yaml".into(), shard_text.replace("revoked: false", "revoked: true").into_bytes());
    assert!(!shards_consistent(&files));
    files.remove("tenant-dev.yaml");
    assert!(!shards_consistent(&files));
}

#[test]
fn a_non_loopback_admin_listener_needs_mutual_tls_and_its_files_must_hold() {
    let (path, text) = bundle();
    let mut config = parse("relay.yaml", &text).unwrap();
    assert!(config.admin_tls.is_some(), "dev configures the admin channel");
    config.listeners.admin = "0.0.0.0:9588".into();
    assert_eq!(problems(&path, &serde_saphyr::to_string(&config).unwrap()), Vec::<String>::new());
    let channel = config.admin_tls.take().unwrap();
    assert_eq!(problems(&path, &serde_saphyr::to_string(&config).unwrap()), ["adminTls: required when listeners.admin is not a loopback address"]);
    config.listeners.admin = "127.0.0.1:9588".into();
    assert_eq!(problems(&path, &serde_saphyr::to_string(&config).unwrap()), Vec::<String>::new(), "plaintext on loopback");
    // The relay's key with the authority's certificate as its own: refused, naming the section.
    config.admin_tls = Some(cascade_crds::relay_config::AdminTls { cert_file: channel.ca_file.clone(), ..channel });
    let p = problems(&path, &serde_saphyr::to_string(&config).unwrap());
    assert!(p.len() == 1 && p[0].starts_with("adminTls: certificate and key"), "{p:?}");
}

#[test]
fn the_admin_channel_tells_a_relay_of_the_pool_from_other_certificates() {
    use cascade_core::certificate::{Authority, Usage};
    use rustls_pki_types::pem::PemObject;
    let (path, _) = bundle();
    let dir = path.parent().unwrap();
    let read = |f: &str| std::fs::read(dir.join(f)).unwrap();
    let channel = crate::tls::admin_channel(&read("admin.crt"), &read("admin.key"), &read("admin-ca.crt"), dev::DEV_RELAY_NAME, false).unwrap();
    let der = |pem: &[u8]| rustls::pki_types::CertificateDer::from_pem_slice(pem).unwrap();
    let (relay, client) = (der(&read("admin.crt")), der(&read("admin-client.crt")));
    assert!(channel.is_relay(Some(&relay)) && channel.is_pool(Some(&relay)));
    assert!(!channel.is_relay(Some(&client)) && channel.is_pool(Some(&client)), "the operator's certificate reads but never hands over");
    assert!(!channel.is_relay(None) && !channel.is_pool(None));
    let (other, _, _) = Authority::generate("other pool", 1_800_000_000, 86_400).unwrap();
    let (foreign, _) = other.issue(&["another.relays.cascade.internal"], Usage::ServerAndClient, 1_800_000_000, 86_400).unwrap();
    assert!(!channel.is_relay(Some(&der(foreign.as_bytes()))), "another pool's relay name");
}

#[test]
fn suppressed_reasons_apply_per_domain_over_the_tenant_and_bad_ones_are_named() {
    let (path, text) = bundle();
    let mut config = parse("relay.yaml", &text).unwrap();
    config.tenants[0].suppressed_reasons = vec!["bounce".into()];
    config.tenants[0].domains[0].suppressed_reasons = Some(vec![]);
    let (tenant, domain) = (config.tenants[0].name.clone(), config.tenants[0].domains[0].name.clone());
    std::fs::write(&path, serde_saphyr::to_string(&config).unwrap()).unwrap();
    let rt = load(&path).unwrap();
    use crate::suppression::reason_applies;
    assert!(!reason_applies(&rt, &tenant, &format!("a@{}", domain.to_ascii_uppercase()), "bounce"), "the domain says none");
    assert!(reason_applies(&rt, &tenant, "a@elsewhere.test", "bounce"), "the tenant's apply elsewhere");
    assert!(!reason_applies(&rt, &tenant, "a@elsewhere.test", "complaint"));
    assert!(!reason_applies(&rt, "stranger", "a@elsewhere.test", "bounce"));
    config.tenants[0].domains[0].suppressed_reasons = Some(vec!["spam".into()]);
    let found = problems(&path, &serde_saphyr::to_string(&config).unwrap());
    assert!(found.iter().any(|p| p == "tenants[0].domains[0].suppressedReasons[0]: \"spam\" is not bounce or complaint"), "{found:?}");
}

#[test]
fn the_generation_is_the_stamped_one_else_the_texts_hash() {
    assert_eq!(generation_of(b"# Rendered\nconfigGeneration: 0123abcd\nhostname: x\n"), "0123abcd");
    assert_eq!(generation_of(b"configGeneration: '0123abcd'\n"), "0123abcd");
    assert_eq!(generation_of(b"hostname: x\n"), cascade_core::shard::config_hash(b"hostname: x\n"));
    assert_eq!(generation_of(b"hostname: x\nconfigGeneration: late\n"), cascade_core::shard::config_hash(b"hostname: x\nconfigGeneration: late\n"), "only the first line counts");
}
