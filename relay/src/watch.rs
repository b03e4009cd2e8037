//! Fast configuration changes in a cluster: the relay watches its one configuration Secret
//! through the Kubernetes API (RBAC lets it `get`/`list`/`watch` that Secret by name and nothing
//! else) and swaps in each new version as soon as the API server sends it, typically well under a
//! second after the operator wrote it. This is what makes a revoked, expired or deleted API key
//! stop authenticating within seconds; the kubelet's update of the mounted copy can take a minute.
//!
//! The mounted file stays the fallback: the relay starts from it, and keeps reloading it until
//! the watch has delivered a configuration. A version the configuration check refuses is
//! logged and counted, and the last good one stays in force.

use crate::relay::Relay;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::runtime::{watcher, WatchStreamExt};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The Secret to watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub namespace: String,
    pub name: String,
}

impl Target {
    /// `NAMESPACE/NAME`.
    pub fn parse(secret: &str) -> Result<Self, String> {
        let (namespace, name) = secret.split_once('/').filter(|(n, s)| !n.is_empty() && !s.is_empty() && !s.contains('/')).ok_or_else(|| format!("{secret:?} is not NAMESPACE/NAME"))?;
        Ok(Self { namespace: namespace.into(), name: name.into() })
    }

    pub fn describe(&self) -> String {
        format!("secret {}/{}", self.namespace, self.name)
    }
}

/// A Secret's `data` as bytes.
pub fn secret_data(secret: &Secret) -> BTreeMap<String, Vec<u8>> {
    secret.data.iter().flatten().map(|(k, v)| (k.clone(), v.0.clone())).collect()
}

/// Checks a new version of the bundle and, when it passes, makes it the relay's configuration
/// (and its certificate the one served). Returns whether it was installed.
pub fn install(relay: &Relay, source: &str, files: &BTreeMap<String, Vec<u8>>) -> bool {
    match crate::config::load_bundle(source, files) {
        Ok(rt) => {
            match relay.certs.install(&rt.tls_pem.0, &rt.tls_pem.1) {
                Ok(true) => tracing::info!(source, "TLS certificate replaced"),
                Ok(false) => {}
                Err(e) => tracing::error!(source, error = %e, "TLS certificate refused; keeping the current one"),
            }
            relay.swap_runtime(rt);
            relay.metrics.config_reloads.with_label_values(&["ok"]).inc();
            tracing::info!(source, "configuration reloaded");
            relay.audit.record("config.reload", serde_json::json!({ "source": source, "result": "ok" }));
            true
        }
        Err(e) => {
            relay.metrics.config_reloads.with_label_values(&["refused"]).inc();
            relay.audit.record("config.reload", serde_json::json!({ "source": source, "result": "refused", "problems": e.0.len() }));
            for p in &e.0 {
                tracing::error!(problem = %p, "configuration from the watched Secret refused; keeping the last good one");
            }
            false
        }
    }
}

/// Watches the Secret until shutdown; reconnects with backoff when the API server goes away.
pub async fn run(client: kube::Client, target: Target, relay: Arc<Relay>) {
    let api: Api<Secret> = Api::namespaced(client, &target.namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={}", target.name));
    let source = target.describe();
    let mut events = std::pin::pin!(watcher(api, config).default_backoff().applied_objects());
    let mut shutdown = relay.shutdown_signal();
    let mut last: Option<BTreeMap<String, Vec<u8>>> = None;
    loop {
        let next = tokio::select! {
            n = events.next() => n,
            _ = Relay::stopped(&mut shutdown) => return,
        };
        match next {
            None => return,
            Some(Err(e)) => tracing::warn!(source, error = %e, "watching the configuration Secret; retrying"),
            Some(Ok(obj)) => {
                let files = secret_data(&obj);
                if last.as_ref() == Some(&files) {
                    continue;
                }
                if install(&relay, &source, &files) {
                    relay.set_watch_delivered();
                }
                last = Some(files);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Target;

    #[test]
    fn targets_are_namespace_slash_name() {
        assert_eq!(Target::parse("mail/main-relay-config").unwrap(), Target { namespace: "mail".into(), name: "main-relay-config".into() });
        assert!(Target::parse("no-namespace").unwrap_err().contains("NAMESPACE/NAME"));
        assert!(Target::parse("a/b/c").is_err());
        assert!(Target::parse("/b").is_err());
    }
}
