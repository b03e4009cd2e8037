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
pub mod dkim_lifecycle;
pub mod dmarc_reports;
pub mod dns;
pub mod domain_cleanup;
pub mod events;
pub mod external_dns;
pub mod leader;
pub mod master_key;
pub mod metrics;
pub mod relay_admin;
pub mod relay_pool;
pub mod render;
pub mod secrets;
pub mod sending_domain;
pub mod spool_drain;
pub mod spool_key;
pub mod suspensions;
pub mod workloads;

/// What every reconcile shares.
pub struct Context {
    pub client: kube::Client,
    pub secrets: secrets::SecretStore,
    /// How to reach Namespaces (for label selectors); a stand-in on the test API server.
    pub namespaces: kube::core::ApiResource,
    /// How to reach each workload kind, by (apiVersion, kind) as the manifests name them.
    pub workload_kinds: std::collections::BTreeMap<(String, String), kube::core::ApiResource>,
    /// The operator's own namespace (the master key lives there; relays let it reach their HTTP port).
    pub namespace: String,
    /// The relay container image the StatefulSets run.
    pub relay_image: String,
    /// The master key ring (see [`master_key`]).
    pub master: cascade_relay::spool::format::KeyRing,
    pub metrics: std::sync::Arc<metrics::Metrics>,
    pub events: events::Events,
    /// DNS for the SendingDomain checks (nameservers configurable).
    pub dns: dns::Dns,
    pub dns_recheck: sending_domain::Recheck,
    /// The time the controllers act on (a test advances it by days in microseconds).
    pub clock: Clock,
    /// Where the relays' HTTP listeners are, overriding the pool's headless Service (tests).
    pub relay_http: Option<Vec<std::net::SocketAddr>>,
    /// How to reach external-dns DNSEndpoints (default: `externaldns.k8s.io/v1alpha1`).
    pub external_dns: Option<kube::core::ApiResource>,
}

/// Unix time: the system clock, or a manual one for tests.
#[derive(Clone, Default)]
pub struct Clock(Option<std::sync::Arc<std::sync::atomic::AtomicU64>>);

impl Clock {
    /// A clock that reads `time`; store to it to move time.
    pub fn manual(time: std::sync::Arc<std::sync::atomic::AtomicU64>) -> Self {
        Self(Some(time))
    }

    pub fn now(&self) -> u64 {
        match &self.0 {
            Some(t) => t.load(std::sync::atomic::Ordering::SeqCst),
            None => cascade_relay::time::now_unix(),
        }
    }
}

impl Context {
    /// A context for a real cluster.
    pub fn kubernetes(client: kube::Client, master: cascade_relay::spool::format::KeyRing, dns: dns::Dns) -> Self {
        use k8s_openapi::api as k;
        use kube::core::ApiResource as R;
        let kinds = [
            R::erase::<k::core::v1::ServiceAccount>(&()),
            R::erase::<k::rbac::v1::Role>(&()),
            R::erase::<k::rbac::v1::RoleBinding>(&()),
            R::erase::<k::apps::v1::StatefulSet>(&()),
            R::erase::<k::core::v1::Service>(&()),
            R::erase::<k::policy::v1::PodDisruptionBudget>(&()),
            R::erase::<k::networking::v1::NetworkPolicy>(&()),
            R::erase::<k::autoscaling::v2::HorizontalPodAutoscaler>(&()),
            R::erase::<k::core::v1::PersistentVolumeClaim>(&()),
            R::erase::<k::batch::v1::Job>(&()),
        ];
        Self {
            workload_kinds: kinds.into_iter().map(|r| ((r.api_version.clone(), r.kind.clone()), r)).collect(),
            namespace: "cascade-system".into(),
            relay_image: concat!("cascade-relay:", env!("CARGO_PKG_VERSION")).into(),
            secrets: secrets::SecretStore::kubernetes(client.clone()),
            events: events::Events::new(client.clone(), std::env::var("POD_NAME").ok()),
            dns,
            dns_recheck: Default::default(),
            clock: Clock::default(),
            relay_http: None,
            external_dns: None,
            namespaces: kube::core::ApiResource::erase::<k8s_openapi::api::core::v1::Namespace>(&()),
            client,
            master,
            metrics: Default::default(),
        }
    }
}
