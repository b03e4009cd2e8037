//! `cascade-operator`: turns Cascade's custom resources into what the relays run.
//!
//! [`render::evaluate`] is the pure core (resources in, relay configuration, DNS records and
//! statuses out); [`render`] runs it on files without a cluster; [`crdgen`] prints the CRDs;
//! [`controller`] runs the in-cluster controllers ([`dkim_key`], [`api_key`], [`relay_pool`]).
#![forbid(unsafe_code)]

pub mod api_key;
pub mod controller;
pub mod crdgen;
pub mod dkim_key;
pub mod master_key;
pub mod metrics;
pub mod relay_pool;
pub mod render;
pub mod secrets;

/// What every reconcile shares.
pub struct Context {
    pub client: kube::Client,
    pub secrets: secrets::SecretStore,
    /// How to reach Namespaces (for label selectors); a stand-in on the test API server.
    pub namespaces: kube::core::ApiResource,
    /// The master key ring (see [`master_key`]).
    pub master: cascade_relay::spool::format::KeyRing,
    pub metrics: metrics::Metrics,
}

impl Context {
    /// A context for a real cluster.
    pub fn kubernetes(client: kube::Client, master: cascade_relay::spool::format::KeyRing) -> Self {
        Self {
            secrets: secrets::SecretStore::kubernetes(client.clone()),
            namespaces: kube::core::ApiResource::erase::<k8s_openapi::api::core::v1::Namespace>(&()),
            client,
            master,
            metrics: Default::default(),
        }
    }
}
