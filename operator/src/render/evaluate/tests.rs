//! The evaluation, table by table, with fixtures that read like the resources they stand for.

use super::*;
use cascade_crds::conditions::Condition;

fn pool(ns: &str, name: &str, serves: &[&str]) -> RelayPool {
    let spec: RelayPoolSpec = serde_json::from_value(serde_json::json!({ "tenants": { "matchNames": serves }, "dnsVerification": "warn" })).unwrap();
    let mut p = RelayPool::new(name, spec);
    p.metadata.namespace = Some(ns.into());
    p
}

fn domain(ns: &str, name: &str, domain: &str, created: &str) -> SendingDomain {
    let spec: SendingDomainSpec = serde_json::from_value(serde_json::json!({
        "domain": domain, "relayPool": { "name": "main", "namespace": "platform" }, "spf": { "include": "_spf.relay.test" }
    }))
    .unwrap();
    let mut d = SendingDomain::new(name, spec);
    d.metadata.namespace = Some(ns.into());
    d.metadata.generation = Some(1);
    d.metadata.creation_timestamp = Some(k8s_time(created));
    d
}

fn k8s_time(s: &str) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
    serde_json::from_value(serde_json::json!(s)).unwrap()
}

fn api_key(ns: &str, name: &str, extra: serde_json::Value) -> ApiKey {
    let mut a = ApiKey::new(name, serde_json::from_value(extra).unwrap());
    a.metadata.namespace = Some(ns.into());
    a
}

/// Key material for every effective DKIM key and API key of `inputs`.
fn material(inputs: &Inputs) -> Material {
    let mut m = Material::default();
    for k in effective_dkim_keys(inputs) {
        let key = key_of(&k);
        m.dkim_public.insert(key.clone(), format!("PUB-{}", key.1));
    }
    for a in &inputs.api_keys {
        let key = key_of(a);
        m.api_keys.insert(key.clone(), (format!("ck_{}", key.1), format!("sha256:{}", "ab".repeat(32))));
    }
    m
}

/// The resources, every claim's ownership challenge passed when it was created.
fn world(domains: Vec<SendingDomain>, api_keys: Vec<ApiKey>) -> Inputs {
    let verified = domains.iter().map(|d| (key_of(d), d.metadata.creation_timestamp.as_ref().map_or(0, |t| t.0.as_second() as u64))).collect();
    Inputs { pools: vec![pool("platform", "main", &["shop", "blog"])], domains, api_keys, verified, ..Default::default() }
}

fn plan(inputs: &Inputs) -> Plan {
    evaluate(&inputs.pools[0], inputs, &material(inputs), 1_800_000_000, "2027-01-15T08:00:00Z").unwrap()
}

fn ready(conditions: &[Condition]) -> (String, String) {
    let c = conditions.iter().find(|c| c.type_ == "Ready").expect("a Ready condition");
    (c.status.clone(), c.reason.clone())
}

fn k(ns: &str, name: &str) -> Key {
    (ns.into(), name.into())
}

#[test]
fn a_domain_with_a_generated_key_is_served_signed_and_published() {
    let inputs = world(vec![domain("shop", "main", "shop.test", "2026-01-01T00:00:00Z")], vec![]);
    let p = plan(&inputs);
    assert_eq!(p.config.tenants.len(), 1);
    let t = &p.config.tenants[0];
    assert_eq!((t.name.as_str(), t.domains[0].name.as_str()), ("shop", "shop.test"));
    assert_eq!(t.domains[0].dkim[0].selector, "cascade1");
    assert_eq!(t.domains[0].dkim[0].key_file, "dkim-shop.main-dkim.pem");
    assert_eq!(
        p.records,
        vec![
            ("_dmarc.shop.test.".to_string(), "v=DMARC1; p=reject".to_string()),
            ("cascade1._domainkey.shop.test.".to_string(), "v=DKIM1; k=rsa; p=PUB-main-dkim".to_string()),
            ("shop.test.".to_string(), "v=spf1 include:_spf.relay.test -all".to_string()),
        ]
    );
    let st = &p.domain_status[&k("shop", "main")];
    assert_eq!(ready(&st.conditions), ("True".into(), "Served".into()));
    assert_eq!(st.observed_generation, 1);
    assert_eq!(st.records.len(), 3);
    let ks = &p.dkim_status[&k("shop", "main-dkim")];
    assert_eq!(ks.dns_name.as_deref(), Some("cascade1._domainkey.shop.test."));
    // Automatic suppression as the tenant's resources say (absent: the relay's default for the
    // tenant), pool-wide sharing on, feedback address passed on.
    assert_eq!((t.suppressed_reasons.clone(), t.domains[0].suppressed_reasons.clone()), (vec!["bounce".to_string(), "complaint".to_string()], None));
    assert_eq!(p.config.suppressions.as_ref().map(|s| s.pool.as_str()), Some("main"));
    let mut quiet = domain("shop", "main", "shop.test", "2026-01-01T00:00:00Z");
    quiet.spec.suppressed_reasons = Some(vec!["complaint".into()]);
    let mut inputs = world(vec![quiet], vec![]);
    inputs.pools[0].spec.feedback_address = Some("fbl@relay.test".into());
    let p = plan(&inputs);
    assert_eq!(p.config.tenants[0].domains[0].suppressed_reasons, Some(vec!["complaint".to_string()]));
    assert_eq!(p.config.feedback_address.as_deref(), Some("fbl@relay.test"));
}

#[test]
fn an_unproven_claim_is_never_served_and_blocks_no_one() {
    // The squatter claimed first and never proved anything; the owner's claim came later.
    let mut inputs = world(vec![domain("blog", "stolen", "shop.test", "2026-01-01T00:00:00Z"), domain("shop", "main", "shop.test", "2026-06-01T00:00:00Z")], vec![]);
    inputs.verified.remove(&k("blog", "stolen"));
    let p = plan(&inputs);
    assert_eq!(p.config.tenants.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), vec!["shop"]);
    let squatter = &p.domain_status[&k("blog", "stolen")];
    assert_eq!(ready(&squatter.conditions), ("False".into(), "OwnershipUnverified".into()));
    let msg = &squatter.conditions.iter().find(|c| c.type_ == "Ready").unwrap().message;
    let challenge = ownership::challenge(&inputs.domains[0]);
    assert!(msg.contains("_cascade-challenge.shop.test.") && msg.contains(&challenge.value) && msg.contains("blocks no one"), "{msg}");
    assert!(!squatter.conditions.iter().any(|c| c.type_ == "DomainConflict"), "an unproven claim is in no conflict");
    assert!(squatter.records.is_empty());
    // Unproven alone (warn mode, the only claim): still not served.
    let mut alone = world(vec![domain("blog", "stolen", "shop.test", "2026-01-01T00:00:00Z")], vec![]);
    alone.verified.clear();
    assert!(plan(&alone).config.tenants.is_empty());
}

#[test]
fn among_proven_claims_the_earliest_verification_wins_even_when_created_later() {
    let mut inputs = world(vec![domain("blog", "early", "shop.test", "2026-01-01T00:00:00Z"), domain("shop", "main", "shop.test", "2026-06-01T00:00:00Z")], vec![]);
    inputs.verified = [(k("blog", "early"), 2_000), (k("shop", "main"), 1_000)].into();
    let p = plan(&inputs);
    assert_eq!(ready(&p.domain_status[&k("shop", "main")].conditions).1, "Served");
    let loser = &p.domain_status[&k("blog", "early")];
    assert_eq!(ready(&loser.conditions), ("False".into(), "DomainConflict".into()));
    assert!(loser.conditions.iter().any(|c| c.type_ == "DomainConflict" && c.status == "True" && c.message.contains("shop/main")));
    // Same verification second: creation time, then the name decide, never listing order.
    inputs.verified = [(k("blog", "early"), 1_000), (k("shop", "main"), 1_000)].into();
    let forward = ownership::domain_owners(&inputs);
    inputs.domains.reverse();
    assert_eq!((forward["shop.test"].clone(), ownership::domain_owners(&inputs)["shop.test"].clone()), (k("blog", "early"), k("blog", "early")));
}

#[test]
fn the_pools_assignment_proves_a_claim_before_any_verification() {
    let mut inputs = world(vec![domain("blog", "verified", "mail.shop.test", "2026-01-01T00:00:00Z"), domain("shop", "main", "mail.shop.test", "2026-06-01T00:00:00Z")], vec![]);
    inputs.verified.remove(&k("shop", "main"));
    inputs.pools[0].spec.assigned_domains = [("shop".to_string(), vec!["shop.test".to_string()])].into();
    let p = plan(&inputs);
    assert_eq!(ready(&p.domain_status[&k("shop", "main")].conditions).1, "Served", "a subdomain of an assigned zone is assigned");
    assert_eq!(ready(&p.domain_status[&k("blog", "verified")].conditions).1, "DomainConflict");
    assert!(ownership::assigned(&inputs.pools[0], "shop", "shop.test") && !ownership::assigned(&inputs.pools[0], "shop", "evilshop.test"));
    assert!(!ownership::assigned(&inputs.pools[0], "blog", "shop.test"));
}

#[test]
fn a_challenge_is_bound_to_its_claim() {
    let mut a = domain("shop", "main", "shop.test", "2026-01-01T00:00:00Z");
    a.metadata.uid = Some("u1".into());
    let c = ownership::challenge(&a);
    assert_eq!(c.name, "_cascade-challenge.shop.test.");
    assert!(c.value.starts_with("cascade-verification=") && c.value.len() == "cascade-verification=".len() + 32);
    let mut others = vec![domain("blog", "main", "shop.test", "2026-01-01T00:00:00Z"), domain("shop", "other", "shop.test", "2026-01-01T00:00:00Z"), a.clone()];
    others[2].metadata.uid = Some("u2".into());
    for o in &others {
        assert_ne!(ownership::challenge(o).value, c.value, "{:?}", key_of(o));
    }
    assert!(ownership::proves(&["v=spf1 -all".into(), format!(" {} ", c.value)], &c) && !ownership::proves(&[format!("{}x", c.value)], &c));
    // The status records a verification only for the claim's current challenge.
    let mut st = SendingDomainStatus { ownership: Some(DomainOwnership { verified_at: Some("2026-01-02T00:00:00Z".into()), ..c.clone() }), ..Default::default() };
    a.status = Some(st.clone());
    assert_eq!(ownership::verified_from_status(std::slice::from_ref(&a)).get(&k("shop", "main")), Some(&1_767_312_000));
    st.ownership.as_mut().unwrap().value = ownership::challenge(&others[0]).value;
    a.status = Some(st);
    assert!(ownership::verified_from_status(&[a]).is_empty());
}

#[test]
fn namespaces_outside_the_selector_are_not_served_nor_their_keys() {
    let inputs = world(vec![domain("other", "main", "other.test", "2026-01-01T00:00:00Z")], vec![api_key("other", "app", serde_json::json!({}))]);
    let p = plan(&inputs);
    assert!(p.config.tenants.is_empty() && p.config.api_keys.is_empty());
    assert_eq!(ready(&p.domain_status[&k("other", "main")].conditions).1, "NamespaceNotServed");
}

#[test]
fn selectors_match_labels_too() {
    let mut inputs = world(vec![domain("labelled", "main", "l.test", "2026-01-01T00:00:00Z")], vec![]);
    inputs.pools[0].spec.tenants.match_labels.insert("cascade-mail.com/tenant".into(), "yes".into());
    inputs.namespace_labels.insert("labelled".into(), [("cascade-mail.com/tenant".to_string(), "yes".to_string())].into());
    assert_eq!(plan(&inputs).config.tenants[0].name, "labelled");
}

#[test]
fn api_keys_get_state_fingerprint_and_narrowed_domains() {
    let domains = vec![domain("shop", "main", "shop.test", "2026-01-01T00:00:00Z"), domain("shop", "news", "news.shop.test", "2026-01-01T00:00:00Z")];
    let keys = vec![
        api_key("shop", "active", serde_json::json!({ "allowedDomains": ["news.shop.test", "elsewhere.test"] })),
        api_key("shop", "revoked", serde_json::json!({ "revoked": true })),
        api_key("shop", "expired", serde_json::json!({ "expiresAt": "2020-01-01T00:00:00Z" })),
        api_key("shop", "future", serde_json::json!({ "expiresAt": "2099-01-01T00:00:00Z" })),
        api_key("shop", "nowhere", serde_json::json!({ "allowedDomains": ["elsewhere.test"] })),
        api_key("shop", "garbled", serde_json::json!({ "expiresAt": "soon" })),
    ];
    let p = plan(&world(domains, keys));
    let state = |n: &str| p.api_key_status[&k("shop", n)].state;
    assert_eq!(state("active"), Some(ApiKeyState::Active));
    assert_eq!(state("revoked"), Some(ApiKeyState::Revoked));
    assert_eq!(state("expired"), Some(ApiKeyState::Expired));
    assert_eq!(state("future"), Some(ApiKeyState::Active));
    let cfg = |id: &str| p.config.api_keys.iter().find(|a| a.id == format!("ck_{id}")).unwrap();
    assert_eq!(cfg("active").allowed_domains, vec!["news.shop.test"]);
    assert_eq!(cfg("active").tenant, "shop");
    assert!(cfg("revoked").revoked && !cfg("active").revoked);
    // A key whose every allowed domain is unserved must not widen to "all domains": it is refused.
    assert!(cfg("nowhere").revoked);
    assert_eq!(ready(&p.api_key_status[&k("shop", "nowhere")].conditions).1, "InvalidSpec");
    assert!(p.config.api_keys.iter().all(|a| a.id != "ck_garbled"), "an invalid expiresAt is left out");
    assert_eq!(ready(&p.api_key_status[&k("shop", "garbled")].conditions).1, "InvalidSpec");
    assert_eq!(p.api_key_status[&k("shop", "active")].fingerprint.as_deref(), Some("abababababababab"));
}

#[test]
fn a_suspension_at_the_current_generation_refuses_the_key_and_an_edit_lifts_it() {
    let domains = vec![domain("shop", "main", "shop.test", "2026-01-01T00:00:00Z")];
    let mut key = api_key("shop", "app", serde_json::json!({ "anomalies": { "suspend": true, "rateFactor": 5, "acknowledged": "reviewed" } }));
    key.metadata.generation = Some(3);
    let suspension = cascade_crds::v1alpha1::ApiKeySuspension { generation: 3, kind: "rate".into(), detail: "900 messages this minute".into(), since: "2027-01-15T07:00:00Z".into() };
    key.status = Some(ApiKeyStatus { suspension: Some(suspension), ..Default::default() });
    let p = plan(&world(domains.clone(), vec![key.clone()]));
    let cfg = &p.config.api_keys[0];
    assert!(cfg.revoked, "every relay refuses it");
    assert_eq!((cfg.generation, cfg.anomalies.suspend, cfg.anomalies.rate_factor, cfg.anomalies.min_messages_per_minute), (3, true, 5, 100));
    let st = &p.api_key_status[&k("shop", "app")];
    assert_eq!(st.state, Some(ApiKeyState::Suspended));
    assert_eq!(ready(&st.conditions), ("False".into(), "Suspended".into()));
    // The spec was edited: generation 4, the old suspension no longer holds.
    key.metadata.generation = Some(4);
    let p = plan(&world(domains, vec![key]));
    assert!(!p.config.api_keys[0].revoked);
    assert_eq!((p.config.api_keys[0].generation, p.api_key_status[&k("shop", "app")].state), (4, Some(ApiKeyState::Active)));
}

#[test]
fn a_missing_dkim_key_keeps_the_domain_unserved() {
    let mut d = domain("shop", "main", "shop.test", "2026-01-01T00:00:00Z");
    d.spec.dkim.keys = vec!["nope".into()];
    let p = plan(&world(vec![d], vec![]));
    assert!(p.config.tenants.is_empty());
    let (status, reason) = ready(&p.domain_status[&k("shop", "main")].conditions);
    assert_eq!((status.as_str(), reason.as_str()), ("False", "DkimKeyMissing"));
}

#[test]
fn an_unchanged_world_gives_the_same_plan_and_keeps_transition_times() {
    let mut inputs = world(vec![domain("shop", "main", "shop.test", "2026-01-01T00:00:00Z")], vec![api_key("shop", "app", serde_json::json!({}))]);
    let first = plan(&inputs);
    inputs.domains[0].status = Some(first.domain_status[&k("shop", "main")].clone());
    inputs.api_keys[0].status = Some(first.api_key_status[&k("shop", "app")].clone());
    // The generated DkimKey now exists (the operator created it) and carries its status.
    let mut generated = effective_dkim_keys(&inputs).pop().unwrap();
    generated.status = Some(first.dkim_status[&k("shop", "main-dkim")].clone());
    inputs.dkim_keys.push(generated);
    let later = evaluate(&inputs.pools[0], &inputs, &material(&inputs), 1_900_000_000, "2030-03-17T17:46:40Z").unwrap();
    assert_eq!(later, first);
}

#[test]
fn one_bad_api_key_is_refused_alone_naming_its_field_and_the_rest_is_served() {
    let domains = vec![domain("shop", "main", "shop.test", "2026-01-01T00:00:00Z"), domain("blog", "blog", "blog.test", "2026-01-01T00:00:00Z")];
    let keys = vec![
        api_key("shop", "good", serde_json::json!({})),
        api_key("blog", "scope", serde_json::json!({ "scopes": ["smtp:submit", "email:send"] })),
        api_key("blog", "cidr", serde_json::json!({ "allowedCidrs": ["10.0.0.0/33"] })),
        api_key("blog", "offset", serde_json::json!({ "expiresAt": "2099-01-01T02:00:00+02:00" })),
    ];
    let mut inputs = world(domains, keys);
    let mut m = material(&inputs);
    m.api_keys.insert(k("blog", "forged"), ("ck bad id!".into(), "sha256:00".into()));
    inputs.api_keys.push(api_key("blog", "forged", serde_json::json!({})));
    let p = evaluate(&inputs.pools[0], &inputs, &m, 1_800_000_000, "2027-01-15T08:00:00Z").unwrap();
    let ids: Vec<&str> = p.config.api_keys.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, ["ck_good", "ck_offset"], "only the bad keys are left out");
    let why = |n: &str| {
        let c = p.api_key_status[&k("blog", n)].conditions.iter().find(|c| c.type_ == "Ready").unwrap().clone();
        assert_eq!((c.status.as_str(), c.reason.as_str()), ("False", "InvalidSpec"), "{n}");
        (c.reason, c.message)
    };
    assert!(why("scope").1.starts_with("spec.scopes[1]: unknown scope \"email:send\""), "{:?}", why("scope"));
    assert!(why("cidr").1.starts_with("spec.allowedCidrs[0]: \"10.0.0.0/33\""), "{:?}", why("cidr"));
    assert!(why("forged").1.contains("key id \"ck bad id!\""), "{:?}", why("forged"));
    // A valid RFC 3339 time with an offset is accepted and written in UTC.
    assert_eq!(p.config.api_keys[1].expires_at.as_deref(), Some("2099-01-01T00:00:00Z"));
    let yaml = serde_saphyr::to_string(&p.config).unwrap();
    let back: cascade_crds::relay_config::RelayConfig = serde_saphyr::from_str(&yaml).unwrap();
    assert_eq!(back, p.config);
}

#[test]
fn a_domain_name_too_long_for_its_generated_key_is_refused_alone() {
    let long = "x".repeat(250);
    let inputs = world(vec![domain("shop", "main", "shop.test", "2026-01-01T00:00:00Z"), domain("blog", &long, "blog.test", "2026-01-01T00:00:00Z")], vec![]);
    let p = plan(&inputs);
    let c = p.domain_status[&k("blog", &long)].conditions.iter().find(|c| c.type_ == "Ready").unwrap().clone();
    assert_eq!(c.reason, "InvalidSpec");
    assert!(c.message.starts_with("metadata.name: 250 characters; at most 58"), "{}", c.message);
    assert_eq!(p.config.tenants.iter().flat_map(|t| t.domains.iter().map(|d| d.name.as_str())).collect::<Vec<_>>(), ["shop.test"]);
}

#[test]
fn the_rendered_config_round_trips_through_the_relay_config_format() {
    // The relay's own checks of a rendered bundle run in the controller tests and the
    // integration tests (`cascade-relay check-config`, `cascade-relay serve`).
    let inputs = world(vec![domain("shop", "main", "shop.test", "2026-01-01T00:00:00Z")], vec![api_key("shop", "app", serde_json::json!({}))]);
    let p = plan(&inputs);
    let yaml = serde_saphyr::to_string(&p.config).unwrap();
    let back: cascade_crds::relay_config::RelayConfig = serde_saphyr::from_str(&yaml).unwrap();
    assert_eq!(back, p.config);
}

#[test]
fn smarthost_credentials_come_from_the_named_secret() {
    let mut inputs = world(vec![], vec![]);
    let spec = serde_json::json!({ "mode": "smarthost", "smarthost": { "address": "smtp.provider.test:587", "tls": "required", "credentialsSecret": "upstream" } });
    inputs.pools[0].spec.delivery = serde_json::from_value(spec).unwrap();
    let err = evaluate(&inputs.pools[0], &inputs, &material(&inputs), 0, "t").unwrap_err();
    assert_eq!(err.field, "delivery.smarthost.credentialsSecret");
    assert!(err.reason.contains(r#"Secret "upstream" not found in the pool's namespace"#), "{err}");

    inputs.secrets.insert(k("platform", "upstream"), [("username".to_string(), b"relay".to_vec())].into());
    let err = evaluate(&inputs.pools[0], &inputs, &material(&inputs), 0, "t").unwrap_err();
    assert!(err.to_string().contains("needs non-empty keys username and password"), "{err}");

    let data = [("username", "relay\n"), ("password", "s3cret"), ("ca.crt", "PEM")].map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()));
    inputs.secrets.insert(k("platform", "upstream"), data.into());
    let s = plan(&inputs).config.delivery.smarthost.unwrap();
    assert_eq!((s.username.as_deref(), s.password_file.as_deref(), s.ca_file.as_deref()), (Some("relay"), Some(SMARTHOST_PASSWORD_FILE), Some(SMARTHOST_CA_FILE)));
    let (_, files) = smarthost_files("upstream", inputs.secrets.get(&k("platform", "upstream"))).unwrap();
    assert_eq!(files[SMARTHOST_PASSWORD_FILE], b"s3cret");
    // A Secret in another namespace is not the pool's.
    inputs.secrets = [(k("shop", "upstream"), inputs.secrets[&k("platform", "upstream")].clone())].into();
    assert!(evaluate(&inputs.pools[0], &inputs, &material(&inputs), 0, "t").is_err());
}

#[test]
fn deleted_domains_are_retired_for_a_week_unless_served_again() {
    let old = RetiredDomain { domain: "old.example".into(), namespace: "shop".into(), retired_at: "2027-01-01T00:00:00Z".into() };
    let recent = RetiredDomain { domain: "recent.example".into(), namespace: "shop".into(), retired_at: "2027-01-14T00:00:00Z".into() };
    let back = RetiredDomain { domain: "back.example".into(), namespace: "blog".into(), retired_at: "2027-01-14T00:00:00Z".into() };
    let deleting = domain("shop", "gone", "gone.example", "2026-01-01T00:00:00Z");
    let live = domain("blog", "back", "back.example", "2026-01-01T00:00:00Z");
    let now = 1_800_000_000; // 2027-01-15T08:00:00Z
    let out = retire(&[old, recent.clone(), back], std::slice::from_ref(&deleting), &[live], now, "2027-01-15T08:00:00Z");
    let names: Vec<_> = out.iter().map(|r| (r.namespace.as_str(), r.domain.as_str())).collect();
    assert_eq!(names, [("shop", "recent.example"), ("shop", "gone.example")]);
    // Seen again while still deleting: listed once, with its first time.
    let again = retire(&out, &[deleting], &[], now + 60, "later");
    assert_eq!(again, out);

    // The relay configuration lists them by tenant.
    let mut inputs = world(vec![], vec![]);
    inputs.retired = vec![recent];
    let config = plan(&inputs).config;
    assert_eq!(config.retired_domains, vec![rc::RetiredDomain { name: "recent.example".into(), tenant: "shop".into() }]);
}

fn with_dns(mut d: SendingDomain, spf: bool, dkim: bool, dmarc: bool) -> SendingDomain {
    let mut st = SendingDomainStatus::default();
    for (t, ok) in [("SPFVerified", spf), ("DKIMVerified", dkim), ("DMARCVerified", dmarc)] {
        conditions::set(&mut st.conditions, t, ok, if ok { "Verified" } else { "Missing" }, &format!("{t} says why"), 1, "t0");
    }
    d.status = Some(st);
    d
}

#[test]
fn enforced_dns_verification_gates_ready_and_refuses_unverified_dkim() {
    let mut inputs = world(
        vec![
            with_dns(domain("shop", "all", "all.example", "2026-01-01T00:00:00Z"), true, true, true),
            with_dns(domain("shop", "nodkim", "nodkim.example", "2026-01-01T00:00:00Z"), true, false, true),
            with_dns(domain("shop", "nodmarc", "nodmarc.example", "2026-01-01T00:00:00Z"), true, true, false),
            domain("shop", "unchecked", "unchecked.example", "2026-01-01T00:00:00Z"),
        ],
        vec![],
    );
    inputs.pools[0].spec.dns_verification = DnsVerification::Enforce;
    let p = plan(&inputs);
    let st = |name: &str| ready(&p.domain_status[&k("shop", name)].conditions);
    let refuse = |d: &str| p.config.tenants.iter().flat_map(|t| &t.domains).find(|x| x.name == d).unwrap().refuse.clone();
    assert_eq!(st("all"), ("True".into(), "Served".into()));
    assert_eq!(refuse("all.example"), None);
    assert_eq!(st("nodkim"), ("False".into(), "DNSNotVerified".into()));
    assert_eq!(refuse("nodkim.example").unwrap(), "its DKIM record is not verified in DNS (Missing); see the SendingDomain's status");
    // SPF or DMARC missing: not Ready, but mail is signed and sent.
    assert_eq!(st("nodmarc"), ("False".into(), "DNSNotVerified".into()));
    assert_eq!(refuse("nodmarc.example"), None);
    assert!(refuse("unchecked.example").unwrap().contains("not checked yet"));
    // warn: everything is served and Ready, the gaps are named.
    inputs.pools[0].spec.dns_verification = DnsVerification::Warn;
    let p = plan(&inputs);
    let c = p.domain_status[&k("shop", "nodkim")].conditions.iter().find(|c| c.type_ == "Ready").unwrap().clone();
    assert_eq!((c.status.as_str(), c.message.contains("not verified yet: DKIMVerified")), ("True", true));
    assert!(p.config.tenants.iter().flat_map(|t| &t.domains).all(|d| d.refuse.is_none()));
}

#[test]
fn a_return_path_domain_needs_its_own_spf_record_to_be_ready() {
    let mut d = with_dns(domain("shop", "rp", "rp.example", "2026-01-01T00:00:00Z"), true, true, true);
    d.spec.return_path = Some("bounces.rp.example".into());
    let mut inputs = world(vec![d.clone()], vec![]);
    inputs.pools[0].spec.dns_verification = DnsVerification::Enforce;
    let p = plan(&inputs);
    let st = &p.domain_status[&k("shop", "rp")];
    assert!(st.records.iter().any(|r| r.name == "bounces.rp.example." && r.value == "v=spf1 include:_spf.relay.test -all"));
    let c = st.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!((c.status.as_str(), c.reason.as_str()), ("False", "DNSNotVerified"));
    assert!(c.message.contains("ReturnPathVerified"));
    conditions::set(&mut d.status.as_mut().unwrap().conditions, "ReturnPathVerified", true, "SPFVerified", "ok", 1, "t0");
    inputs.domains = vec![d];
    assert_eq!(ready(&plan(&inputs).domain_status[&k("shop", "rp")].conditions).0, "True");
}

#[test]
fn a_tenant_beyond_its_quota_gets_its_oldest_objects_served_and_the_rest_refused_by_name() {
    let mut inputs = world(
        vec![
            domain("shop", "new", "new.shop.test", "2026-06-01T00:00:00Z"),
            domain("shop", "old", "old.shop.test", "2026-01-01T00:00:00Z"),
            domain("blog", "main", "blog.test", "2026-07-01T00:00:00Z"),
        ],
        vec![api_key("shop", "b-new", serde_json::json!({})), api_key("shop", "a-old", serde_json::json!({})), api_key("blog", "writer", serde_json::json!({}))],
    );
    for (i, a) in inputs.api_keys.iter_mut().enumerate() {
        a.metadata.creation_timestamp = Some(k8s_time(["2026-06-01T00:00:00Z", "2026-01-01T00:00:00Z", "2026-07-01T00:00:00Z"][i]));
    }
    (inputs.pools[0].spec.limits.tenant_max_domains, inputs.pools[0].spec.limits.tenant_max_api_keys) = (1, 1);
    let p = plan(&inputs);
    assert_eq!(ready(&p.domain_status[&k("shop", "old")].conditions).1, "Served");
    let over = &p.domain_status[&k("shop", "new")].conditions;
    assert_eq!(ready(over), ("False".into(), "QuotaExceeded".into()));
    assert!(over.iter().any(|c| c.message.starts_with("limits.tenantMaxDomains: namespace shop has 2 SendingDomains")), "{over:?}");
    assert_eq!(ready(&p.domain_status[&k("blog", "main")].conditions).1, "Served", "another tenant's quota is its own");
    let ids: Vec<&str> = p.config.api_keys.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, vec!["ck_a-old", "ck_writer"]);
    assert_eq!(ready(&p.api_key_status[&k("shop", "b-new")].conditions).1, "QuotaExceeded");
    // Listing order never decides.
    inputs.domains.reverse();
    inputs.api_keys.reverse();
    let again = plan(&inputs);
    assert_eq!((again.config.api_keys.len(), ready(&again.domain_status[&k("shop", "new")].conditions).1), (2, "QuotaExceeded".into()));
}

#[test]
fn a_malformed_domain_is_refused_alone_naming_the_field() {
    let inputs = world(vec![domain("blog", "bad", "Not_A.Domain", "2026-01-01T00:00:00Z"), domain("shop", "main", "shop.test", "2026-01-01T00:00:00Z")], vec![]);
    let p = plan(&inputs);
    let (status, reason) = ready(&p.domain_status[&k("blog", "bad")].conditions);
    assert_eq!((status.as_str(), reason.as_str()), ("False", "InvalidSpec"));
    assert!(p.domain_status[&k("blog", "bad")].conditions.iter().any(|c| c.message.starts_with("spec.domain: \"Not_A.Domain\"")));
    assert_eq!(p.config.tenants.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), vec!["shop"]);
}

#[test]
fn a_tenant_in_lockdown_has_every_key_refused_and_its_mail_held_and_no_one_else() {
    let domains = vec![domain("shop", "main", "shop.test", "2026-01-01T00:00:00Z"), domain("blog", "main", "blog.test", "2026-01-01T00:00:00Z")];
    let keys = vec![api_key("shop", "web", serde_json::json!({})), api_key("blog", "news", serde_json::json!({}))];
    let mut inputs = world(domains, keys);
    inputs.pools[0].spec.lockdown.insert("shop".into(), "leaked key at 2027-01-15T08:00:00Z".into());
    let p = plan(&inputs);
    let tenant = |n: &str| p.config.tenants.iter().find(|t| t.name == n).unwrap();
    let key = |id: &str| p.config.api_keys.iter().find(|a| a.id == format!("ck_{id}")).unwrap();
    assert!(tenant("shop").held && key("web").revoked);
    assert!(!tenant("blog").held && !key("news").revoked);
    // The domain stays in the bundle: held mail keeps its signing key and tenant.
    assert_eq!(tenant("shop").domains[0].name, "shop.test");
}
