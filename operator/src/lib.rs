//! `cascade-operator`: turns Cascade's custom resources into what the relays run.
//!
//! [`render::evaluate`] is the pure core (resources in, relay configuration, DNS records and
//! statuses out); [`render`] runs it on files without a cluster; [`crdgen`] prints the CRDs;
//! [`controller`] runs the in-cluster controllers ([`dkim_key`], [`api_key`]).
#![forbid(unsafe_code)]

pub mod api_key;
pub mod controller;
pub mod crdgen;
pub mod dkim_key;
pub mod master_key;
pub mod metrics;
pub mod render;
pub mod secrets;

/// What every reconcile shares.
pub struct Context {
    pub client: kube::Client,
    pub secrets: secrets::SecretStore,
    /// The master key ring (see [`master_key`]).
    pub master: cascade_relay::spool::format::KeyRing,
    pub metrics: metrics::Metrics,
}
