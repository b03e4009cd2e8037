//! Secrets, reached through a configurable API resource: `v1 Secret` in a cluster, a stand-in
//! custom resource of the same shape on the test API server (which serves no built-in kinds).
//! Values are bytes; the base64 of the wire format stays in here.

use base64::Engine;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, ObjectMeta};
use std::collections::BTreeMap;

pub const FIELD_MANAGER: &str = "cascade-operator";

#[derive(Clone)]
pub struct SecretStore {
    client: kube::Client,
    pub resource: ApiResource,
}

pub type SecretData = BTreeMap<String, Vec<u8>>;

impl SecretStore {
    pub fn kubernetes(client: kube::Client) -> Self {
        Self { client, resource: ApiResource::erase::<k8s_openapi::api::core::v1::Secret>(&()) }
    }

    pub fn with_resource(client: kube::Client, resource: ApiResource) -> Self {
        Self { client, resource }
    }

    pub fn api(&self, ns: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), ns, &self.resource)
    }

    pub async fn get(&self, ns: &str, name: &str) -> Result<Option<SecretData>, kube::Error> {
        let Some(obj) = self.api(ns).get_opt(name).await? else { return Ok(None) };
        Ok(Some(cascade_relay::watch::secret_data(&obj)))
    }

    /// Every Secret in every namespace matching a label selector, by (namespace, name): one list
    /// call instead of one get per object.
    pub async fn list(&self, selector: &str) -> Result<BTreeMap<(String, String), SecretData>, kube::Error> {
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &self.resource);
        let list = api.list(&kube::api::ListParams::default().labels(selector)).await?;
        Ok(list.items.iter().map(|o| ((o.metadata.namespace.clone().unwrap_or_default(), o.metadata.name.clone().unwrap_or_default()), cascade_relay::watch::secret_data(o))).collect())
    }

    fn object(&self, ns: &str, name: &str, data: &SecretData, labels: BTreeMap<String, String>, owner: Option<OwnerReference>) -> DynamicObject {
        let b64 = base64::engine::general_purpose::STANDARD;
        let encoded: serde_json::Map<String, serde_json::Value> = data.iter().map(|(k, v)| (k.clone(), b64.encode(v).into())).collect();
        let mut obj = DynamicObject::new(name, &self.resource).within(ns).data(serde_json::json!({ "type": "Opaque", "data": encoded }));
        obj.metadata = ObjectMeta { name: Some(name.into()), namespace: Some(ns.into()), labels: Some(labels), owner_references: owner.map(|o| vec![o]), ..Default::default() };
        obj
    }

    /// Server-side apply (our field manager owns the whole Secret).
    pub async fn apply(&self, ns: &str, name: &str, data: &SecretData, labels: BTreeMap<String, String>, owner: Option<OwnerReference>) -> Result<(), kube::Error> {
        let obj = self.object(ns, name, data, labels, owner);
        self.api(ns).patch(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&obj)).await.map(|_| ())
    }

    /// Creates the Secret unless it exists; returns whether this call created it.
    pub async fn create(&self, ns: &str, name: &str, data: &SecretData, labels: BTreeMap<String, String>) -> Result<bool, kube::Error> {
        match self.api(ns).create(&PostParams::default(), &self.object(ns, name, data, labels, None)).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }
}
