//! Secrets as bytes: get, list by label, server-side apply and create-once, on typed
//! `v1 Secret`. The base64 of the wire format stays in k8s-openapi's `ByteString`.

use crate::labels::FIELD_MANAGER;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::ByteString;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::core::ObjectMeta;
use std::collections::BTreeMap;

#[derive(Clone)]
pub struct SecretStore {
    client: kube::Client,
}

pub type SecretData = BTreeMap<String, Vec<u8>>;

/// A Secret's `data` as bytes.
pub fn data_of(secret: &Secret) -> SecretData {
    secret.data.iter().flatten().map(|(k, v)| (k.clone(), v.0.clone())).collect()
}

/// An Opaque Secret with these contents, labels and owner.
pub fn secret(ns: &str, name: &str, data: &SecretData, labels: BTreeMap<String, String>, owner: Option<OwnerReference>) -> Secret {
    Secret {
        metadata: ObjectMeta { name: Some(name.into()), namespace: Some(ns.into()), labels: Some(labels), owner_references: owner.map(|o| vec![o]), ..Default::default() },
        type_: Some("Opaque".into()),
        data: Some(data.iter().map(|(k, v)| (k.clone(), ByteString(v.clone()))).collect()),
        ..Default::default()
    }
}

impl SecretStore {
    pub fn new(client: kube::Client) -> Self {
        Self { client }
    }

    pub fn api(&self, ns: &str) -> Api<Secret> {
        Api::namespaced(self.client.clone(), ns)
    }

    pub async fn get(&self, ns: &str, name: &str) -> Result<Option<SecretData>, kube::Error> {
        Ok(self.api(ns).get_opt(name).await?.as_ref().map(data_of))
    }

    /// Server-side apply (our field manager owns the whole Secret).
    pub async fn apply(&self, ns: &str, name: &str, data: &SecretData, labels: BTreeMap<String, String>, owner: Option<OwnerReference>) -> Result<(), kube::Error> {
        let obj = secret(ns, name, data, labels, owner);
        self.api(ns).patch(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&obj)).await.map(|_| ())
    }

    /// Creates the Secret unless it exists; returns whether this call created it.
    pub async fn create(&self, ns: &str, name: &str, data: &SecretData, labels: BTreeMap<String, String>) -> Result<bool, kube::Error> {
        match self.api(ns).create(&PostParams::default(), &secret(ns, name, data, labels, None)).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }
}
