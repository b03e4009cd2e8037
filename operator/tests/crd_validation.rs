//! The generated CRDs installed in a real API server: they become Established, the example
//! resources are accepted, and the schema and CEL rules refuse bad specs (server-side dry run).

mod support;

use cascade_crds::v1alpha1::{RelayPool, SendingDomain};
use kube::api::{Api, PostParams};

fn dry_run() -> PostParams {
    PostParams { dry_run: true, ..Default::default() }
}

fn from_yaml<T: serde::de::DeserializeOwned>(yaml: &str) -> T {
    serde_saphyr::from_str(yaml).unwrap()
}

async fn refused<K>(api: &Api<K>, obj: &K) -> String
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.create(&dry_run(), obj).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422, "{status:?}");
            status.message
        }
        other => panic!("expected 422, got {other:?}"),
    }
}

#[tokio::test]
async fn crds_accept_the_examples_and_refuse_bad_specs() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let Some(server) = support::apiserver::ApiServer::start().await else { return };
    support::crds::install(&server.client).await;

    // Every example resource is valid (server-side dry run).
    let pools: Api<RelayPool> = Api::namespaced(server.client.clone(), "cascade-system");
    let domains: Api<SendingDomain> = Api::namespaced(server.client.clone(), "shop");
    let keys: Api<cascade_crds::v1alpha1::ApiKey> = Api::namespaced(server.client.clone(), "shop");
    for example in ["cascade.yaml", "kind.yaml"] {
        let inputs = cascade_operator::render::read_inputs(&[format!("{}/../examples/{example}", env!("CARGO_MANIFEST_DIR")).into()]).unwrap();
        assert!(!inputs.pools.is_empty() && !inputs.domains.is_empty() && !inputs.api_keys.is_empty(), "{example}");
        for p in &inputs.pools {
            pools.create(&dry_run(), p).await.unwrap_or_else(|e| panic!("{example}: {e}"));
        }
        for d in &inputs.domains {
            domains.create(&dry_run(), d).await.unwrap_or_else(|e| panic!("{example}: {e}"));
        }
        for k in &inputs.api_keys {
            keys.create(&dry_run(), k).await.unwrap_or_else(|e| panic!("{example}: {e}"));
        }
    }

    let meta = "apiVersion: cascade-mail.com/v1alpha1\nmetadata: {name: bad, namespace: cascade-system}\n";
    let bad_scaling: RelayPool = from_yaml(&format!("{meta}kind: RelayPool\nspec: {{autoscaling: {{minReplicas: 5, maxReplicas: 2}}}}\n"));
    assert!(refused(&pools, &bad_scaling).await.contains("minReplicas must not exceed maxReplicas"));
    let stray_port: RelayPool = from_yaml(&format!("{meta}kind: RelayPool\nspec: {{service: {{submissionNodePort: 30587}}}}\n"));
    assert!(refused(&pools, &stray_port).await.contains("node ports need type NodePort"));
    let bad_port: RelayPool = from_yaml(&format!("{meta}kind: RelayPool\nspec: {{service: {{type: NodePort, submissionNodePort: 587}}}}\n"));
    assert!(!refused(&pools, &bad_port).await.is_empty());
    let no_smarthost: RelayPool = from_yaml(&format!("{meta}kind: RelayPool\nspec: {{delivery: {{mode: smarthost}}}}\n"));
    assert!(refused(&pools, &no_smarthost).await.contains("smarthost is required when mode is smarthost"));
    let weak_smarthost: RelayPool = from_yaml(&format!("{meta}kind: RelayPool\nspec: {{delivery: {{mode: smarthost, smarthost: {{address: 'up.example:587', credentialsSecret: up}}}}}}\n"));
    assert!(refused(&pools, &weak_smarthost).await.contains("tls must be required (verified) when credentialsSecret is set"));
    let cluster_local: RelayPool = from_yaml(&format!("{meta}kind: RelayPool\nspec: {{service: {{externalTrafficPolicy: Local}}}}\n"));
    assert!(refused(&pools, &cluster_local).await.contains("externalTrafficPolicy needs type NodePort or LoadBalancer"));
    let local: RelayPool = from_yaml(&format!("{meta}kind: RelayPool\nspec: {{service: {{type: LoadBalancer, externalTrafficPolicy: Local}}, listeners: {{trustedProxyCidrs: [10.0.0.0/8]}}}}\n"));
    pools.create(&dry_run(), &local).await.unwrap();
    let hijack: RelayPool = from_yaml(&format!("{meta}kind: RelayPool\nspec: {{pod: {{podLabels: {{cascade-mail.com/relay-pool: other}}}}}}\n"));
    assert!(refused(&pools, &hijack).await.contains("podLabels: app.kubernetes.io/name and cascade-mail.com/relay-pool are the pool's selector"));
    let shaped: RelayPool = from_yaml(&format!("{meta}kind: RelayPool\nspec: {{pod: {{resources: {{requests: {{cpu: 500m}}}}, podLabels: {{team: mail}}, topologySpreadConstraints: []}}}}\n"));
    pools.create(&dry_run(), &shaped).await.expect("pod settings");
    let too_many: RelayPool = from_yaml(&format!("{meta}kind: RelayPool\nspec: {{replicas: 1000}}\n"));
    assert!(refused(&pools, &too_many).await.contains("spec.replicas"));

    let meta = "apiVersion: cascade-mail.com/v1alpha1\nkind: SendingDomain\nmetadata: {name: bad, namespace: shop}\n";
    let bad_domain: SendingDomain = from_yaml(&format!("{meta}spec: {{domain: 'Not A Domain', relayPool: {{name: main, namespace: cascade-system}}}}\n"));
    assert!(refused(&domains, &bad_domain).await.contains("spec.domain"));
    let long = "d".repeat(250);
    let generating: SendingDomain = from_yaml(&format!("{meta}spec: {{domain: shop.example, relayPool: {{name: main, namespace: cascade-system}}}}\n").replace("name: bad", &format!("name: {long}")));
    assert!(refused(&domains, &generating).await.contains("metadata.name: at most 58 characters"));
    let named_keys: SendingDomain =
        from_yaml(&format!("{meta}spec: {{domain: shop.example, relayPool: {{name: main, namespace: cascade-system}}, dkim: {{keys: [k1]}}}}\n").replace("name: bad", &format!("name: {long}")));
    domains.create(&dry_run(), &named_keys).await.expect("a long name is fine when no DkimKey is derived from it");
    let egress = (0..33).map(|i| format!("'192.0.2.{i}'")).collect::<Vec<_>>().join(", ");
    let wide: SendingDomain = from_yaml(&format!("{meta}spec: {{domain: shop.example, relayPool: {{name: main, namespace: cascade-system}}, spf: {{egress: [{egress}]}}}}\n"));
    assert!(refused(&domains, &wide).await.contains("spec.spf.egress"));
    let rua: SendingDomain = from_yaml(&format!("{meta}spec: {{domain: shop.example, relayPool: {{name: main, namespace: cascade-system}}, dmarc: {{rua: 'https://x.example'}}}}\n"));
    assert!(refused(&domains, &rua).await.contains("spec.dmarc.rua"));
    let reasons: SendingDomain = from_yaml(&format!("{meta}spec: {{domain: shop.example, relayPool: {{name: main, namespace: cascade-system}}, suppressedReasons: [bounce, spam]}}\n"));
    assert!(refused(&domains, &reasons).await.contains("spec.suppressedReasons[1]"));
    let none: SendingDomain = from_yaml(&format!("{meta}spec: {{domain: shop.example, relayPool: {{name: main, namespace: cascade-system}}, suppressedReasons: []}}\n"));
    domains.create(&dry_run(), &none).await.expect("no automatic suppression is a choice");

    // Every tenant field of an ApiKey is checked where it is written, naming the field.
    let meta = "apiVersion: cascade-mail.com/v1alpha1\nkind: ApiKey\nmetadata: {name: bad, namespace: shop}\n";
    let key = |spec: &str| -> cascade_crds::v1alpha1::ApiKey { from_yaml(&format!("{meta}spec: {spec}\n")) };
    assert!(refused(&keys, &key("{scopes: [smtp:submit, 'email:send']}")).await.contains("spec.scopes[1]"));
    assert!(refused(&keys, &key("{scopes: []}")).await.contains("spec.scopes"));
    assert!(refused(&keys, &key("{allowedCidrs: ['10.0.0.0/33']}")).await.contains("spec.allowedCidrs[0]"));
    assert!(refused(&keys, &key("{allowedCidrs: ['ten']}")).await.contains("spec.allowedCidrs[0]"));
    let many = (0..65).map(|i| format!("'10.0.{i}.0/24'")).collect::<Vec<_>>().join(", ");
    assert!(refused(&keys, &key(&format!("{{allowedCidrs: [{many}]}}"))).await.contains("spec.allowedCidrs"));
    assert!(refused(&keys, &key(&format!("{{allowedDomains: ['{}.example']}}", "a".repeat(300)))).await.contains("spec.allowedDomains[0]"));
    assert!(refused(&keys, &key("{expiresAt: 'next tuesday'}")).await.contains("spec.expiresAt"));
    assert!(refused(&keys, &key(&format!("{{anomalies: {{acknowledged: '{}'}}}}", "x".repeat(2000)))).await.contains("spec.anomalies.acknowledged"));
    for fine in ["{expiresAt: '2027-01-01T00:00:00+02:00'}", "{allowedCidrs: ['10.0.0.0/8', '2001:db8::/32', '192.0.2.7']}", "{scopes: [smtp:submit, dmarc:upload]}"] {
        keys.create(&dry_run(), &key(fine)).await.unwrap_or_else(|e| panic!("{fine}: {e}"));
    }
    let long_key: cascade_crds::v1alpha1::ApiKey = from_yaml(&format!("{meta}spec: {{}}\n").replace("name: bad", &format!("name: {}", "k".repeat(64))));
    assert!(refused(&keys, &long_key).await.contains("metadata.name: at most 63 characters"));

    let dkim: Api<cascade_crds::v1alpha1::DkimKey> = Api::namespaced(server.client.clone(), "shop");
    let meta = "apiVersion: cascade-mail.com/v1alpha1\nkind: DkimKey\nmetadata: {name: bad, namespace: shop}\n";
    let dk = |spec: &str| -> cascade_crds::v1alpha1::DkimKey { from_yaml(&format!("{meta}spec: {spec}\n")) };
    assert!(refused(&dkim, &dk("{domain: 'Shop Example', selector: s1}")).await.contains("spec.domain"));
    assert!(refused(&dkim, &dk("{domain: shop.example, selector: s1, rotation: {rotateEvery: soon}}")).await.contains("spec.rotation.rotateEvery"));
    dkim.create(&dry_run(), &dk("{domain: shop.example, selector: s1, rotation: {rotateEvery: 30d}}")).await.unwrap();

    let erasures: Api<cascade_crds::v1alpha1::ErasureRequest> = Api::namespaced(server.client.clone(), "shop");
    let meta = "apiVersion: cascade-mail.com/v1alpha1\nkind: ErasureRequest\nmetadata: {name: bad, namespace: shop}\n";
    let er = |spec: &str| -> cascade_crds::v1alpha1::ErasureRequest { from_yaml(&format!("{meta}spec: {spec}\n")) };
    assert!(refused(&erasures, &er("{address: 'no at sign'}")).await.contains("spec.address"));
    assert!(refused(&erasures, &er(&format!("{{address: '{}@example.test'}}", "a".repeat(400)))).await.contains("spec.address"));
    erasures.create(&dry_run(), &er("{address: someone@example.test}")).await.unwrap();
}
