//! What every reconcile shares: the client, the master key, the clock, DNS, Events and metrics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub struct Context {
    pub client: kube::Client,
    pub secrets: crate::secrets::SecretStore,
    /// The operator's own namespace (the master key lives there; relays let it reach their HTTP port).
    pub namespace: String,
    /// The namespaces RelayPools may live in, where the operator's namespaced Role lets it write
    /// workloads, Roles and the pool's Secrets (default: its own namespace). A RelayPool
    /// elsewhere is refused with `NamespaceNotManaged`.
    pub pool_namespaces: Vec<String>,
    /// The relay container image the StatefulSets run.
    pub relay_image: String,
    /// Pull Secrets for relay pods of pools that name none (`--relay-image-pull-secrets`).
    pub relay_pull_secrets: Vec<String>,
    /// The master key ring (see [`crate::master_key`]).
    pub master: cascade_core::seal::KeyRing,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub events: crate::events::Events,
    /// DNS for the SendingDomain checks (nameservers configurable).
    pub dns: crate::dns::Dns,
    pub dns_recheck: crate::dns::Recheck,
    /// The time every controller acts on (a test advances it by days in microseconds).
    pub clock: Clock,
    /// Where the relays' admin listeners are, overriding the pool's headless Service (tests).
    pub relay_http: Option<Vec<std::net::SocketAddr>>,
    /// How to reach external-dns DNSEndpoints, a foreign CRD without Rust types (default:
    /// `externaldns.k8s.io/v1alpha1`).
    pub external_dns: Option<kube::core::ApiResource>,
    /// The caches of the custom resources ([`crate::caches`]), set by the controllers' `run`
    /// before any reconcile runs: reconciles read them instead of listing.
    pub caches: std::sync::OnceLock<crate::caches::Caches>,
    /// Recent reconcile failures per object, for the retry backoff of the error policy.
    pub failures: crate::error::Failures,
    /// Per pool, the object generations its last bundle was rendered from (for the audit
    /// trail's `config.generation` records).
    pub config_sources: std::sync::Mutex<std::collections::HashMap<String, std::collections::BTreeMap<String, i64>>>,
    /// Per object (by uid), the generation its last `object.generation` record named: a
    /// reconcile that runs again before the cache has the new status records nothing twice.
    pub recorded_generations: std::sync::Mutex<std::collections::HashMap<String, i64>>,
}

impl Context {
    /// The shared caches, once they hold complete lists. Reconciles run only inside
    /// the controllers' `run`, which sets them first.
    pub async fn caches(&self) -> &crate::caches::Caches {
        let caches = self.caches.get().expect("reconciles run only after controller::run set the caches");
        caches.ready().await;
        caches
    }
}

/// Unix time: the system clock, or a manual one for tests.
#[derive(Clone, Default)]
pub struct Clock(Option<Arc<AtomicU64>>);

impl Clock {
    /// A clock that reads `time`; store to it to move time.
    pub fn manual(time: Arc<AtomicU64>) -> Self {
        Self(Some(time))
    }

    pub fn now(&self) -> u64 {
        match &self.0 {
            Some(t) => t.load(Ordering::SeqCst),
            None => cascade_core::time::now_unix(),
        }
    }
}

impl Context {
    pub fn new(client: kube::Client, master: cascade_core::seal::KeyRing, dns: crate::dns::Dns) -> Self {
        Self {
            namespace: "cascade-system".into(),
            pool_namespaces: vec!["cascade-system".into()],
            relay_image: concat!("cascade-relay:", env!("CARGO_PKG_VERSION")).into(),
            relay_pull_secrets: Vec::new(),
            secrets: crate::secrets::SecretStore::new(client.clone()),
            events: crate::events::Events::new(client.clone(), std::env::var("POD_NAME").ok()),
            dns,
            dns_recheck: Default::default(),
            clock: Clock::default(),
            relay_http: None,
            external_dns: None,
            caches: Default::default(),
            failures: Default::default(),
            config_sources: Default::default(),
            recorded_generations: Default::default(),
            client,
            master,
            metrics: Default::default(),
        }
    }
}
