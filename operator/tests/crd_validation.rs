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

    // Every example resource is valid.
    let examples = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/cascade.yaml")).unwrap();
    let inputs = cascade_operator::render::read_inputs(&[concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/cascade.yaml").into()]).unwrap();
    assert!(!examples.is_empty());
    let pools: Api<RelayPool> = Api::namespaced(server.client.clone(), "cascade-system");
    pools.create(&dry_run(), &inputs.pools[0]).await.unwrap();
    let domains: Api<SendingDomain> = Api::namespaced(server.client.clone(), "shop");
    domains.create(&dry_run(), &inputs.domains[0]).await.unwrap();

    let meta = "apiVersion: cascade-mail.com/v1alpha1\nmetadata: {name: bad, namespace: cascade-system}\n";
    let bad_scaling: RelayPool = from_yaml(&format!("{meta}kind: RelayPool\nspec: {{autoscaling: {{minReplicas: 5, maxReplicas: 2}}}}\n"));
    assert!(refused(&pools, &bad_scaling).await.contains("minReplicas must not exceed maxReplicas"));
    let no_smarthost: RelayPool = from_yaml(&format!("{meta}kind: RelayPool\nspec: {{delivery: {{mode: smarthost}}}}\n"));
    assert!(refused(&pools, &no_smarthost).await.contains("smarthost is required when mode is smarthost"));
    let too_many: RelayPool = from_yaml(&format!("{meta}kind: RelayPool\nspec: {{replicas: 1000}}\n"));
    assert!(refused(&pools, &too_many).await.contains("spec.replicas"));

    let meta = "apiVersion: cascade-mail.com/v1alpha1\nkind: SendingDomain\nmetadata: {name: bad, namespace: shop}\n";
    let bad_domain: SendingDomain = from_yaml(&format!("{meta}spec: {{domain: 'Not A Domain', relayPool: {{name: main, namespace: cascade-system}}}}\n"));
    assert!(refused(&domains, &bad_domain).await.contains("spec.domain"));
}
