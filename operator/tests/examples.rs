//! Every example under `examples/` — the complete ones and the scenario directories (smarthost
//! through a cloud relay, a cert-manager Certificate, external-dns, two tenants by label with
//! quotas, an application mounting its connection Secret) — is accepted by a real API server
//! (server-side dry run): Cascade's kinds against the generated CRDs with their schemas and CEL
//! rules; built-in and foreign kinds (Secret, Namespace, Deployment, cert-manager's Certificate)
//! against stand-ins of the test server.

mod support;

use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use std::path::{Path, PathBuf};

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()) {
        if e.is_dir() {
            yaml_files(&e, out);
        } else if e.extension().is_some_and(|x| x == "yaml") {
            out.push(e);
        }
    }
}

#[tokio::test]
async fn every_example_is_accepted_by_the_api_server() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let Some(server) = support::apiserver::ApiServer::start().await else { return };
    support::crds::install(&server.client).await;
    support::crds::install_stand_ins(&server.client).await;
    support::crds::install_foreign_stand_ins(&server.client, &[("apps.test.local", "v1", "Deployment", "deployments"), ("cert-manager.io", "v1", "Certificate", "certificates")]).await;
    let mut files = Vec::new();
    yaml_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples"), &mut files);
    files.sort();
    let scenarios = ["smarthost", "cert-manager", "external-dns", "two-tenants", "app-deployment"];
    for s in scenarios {
        assert!(files.iter().any(|f| f.parent().unwrap().ends_with(s)), "examples/{s}/ is missing");
    }
    let dry = PostParams { dry_run: true, ..Default::default() };
    let mut checked = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for doc in docs.into_iter().filter(|d| !d.is_null()) {
            let obj: DynamicObject = serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let types = obj.types.clone().expect("apiVersion and kind");
            let (group, version) = types.api_version.rsplit_once('/').unwrap_or(("", &types.api_version));
            let plural = format!("{}s", types.kind.to_ascii_lowercase());
            let resource = ApiResource { group: group.into(), version: version.into(), api_version: types.api_version.clone(), kind: types.kind.clone(), plural };
            let api: Api<DynamicObject> = match obj.metadata.namespace.as_deref() {
                Some(ns) => Api::namespaced_with(server.client.clone(), ns, &resource),
                None => Api::all_with(server.client.clone(), &resource),
            };
            api.create(&dry, &obj).await.unwrap_or_else(|e| panic!("{}: {} {:?} refused: {e}", file.display(), types.kind, obj.metadata.name));
            checked += 1;
        }
    }
    assert!(checked >= 20, "{checked} objects");
}
