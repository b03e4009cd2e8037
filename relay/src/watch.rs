//! Fast configuration changes in a cluster: the relay watches its configuration Secret and the
//! shard Secrets it lists (one per tenant) through the Kubernetes API (RBAC lets it
//! `get`/`list`/`watch` those Secrets by name and nothing else) and swaps in each new version as soon as the API server sends it, typically well under a
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
            relay.note_refused(files.get(crate::config::BUNDLE_CONFIG).map(|t| crate::config::generation_of(t)), &e.0);
            relay.metrics.config_reloads.with_label_values(&["refused"]).inc();
            relay.audit.record("config.reload", serde_json::json!({ "source": source, "result": "refused", "problems": e.0.len() }));
            for p in &e.0 {
                tracing::error!(problem = %p, "configuration from the watched Secret refused; keeping the last good one");
            }
            false
        }
    }
}

/// The Secrets to watch: the bundle's, then each shard Secret its `relay.yaml` lists.
fn watched(bundle: &str, seen: &BTreeMap<String, BTreeMap<String, Vec<u8>>>) -> Vec<String> {
    let shards = seen.get(bundle).map(crate::config::shard_secrets).unwrap_or_default();
    std::iter::once(bundle.to_string()).chain(shards).collect()
}

/// The bundle's entries with those of each shard Secret it lists (a shard never overrides).
fn merged(names: &[String], seen: &BTreeMap<String, BTreeMap<String, Vec<u8>>>) -> Option<BTreeMap<String, Vec<u8>>> {
    let mut files = seen.get(&names[0])?.clone();
    for data in names[1..].iter().filter_map(|n| seen.get(n)) {
        for (k, v) in data {
            files.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    Some(files)
}

/// Watches the bundle Secret and its shard Secrets (each by name: RBAC lets the relay read these
/// and nothing else) until shutdown, installing every consistent set; reconnects with backoff
/// when the API server goes away. The pool's shared suppression lists are watched beside it, in
/// the same namespace ([`crate::suppression::shared::watch`]).
pub async fn run(client: kube::Client, target: Target, relay: Arc<Relay>) {
    tokio::spawn(crate::suppression::shared::watch(client.clone(), target.namespace.clone(), relay.clone()));
    let api: Api<Secret> = Api::namespaced(client, &target.namespace);
    let source = target.describe();
    let mut shutdown = relay.shutdown_signal();
    let mut seen: BTreeMap<String, BTreeMap<String, Vec<u8>>> = BTreeMap::new();
    let mut last: Option<BTreeMap<String, Vec<u8>>> = None;
    loop {
        let names = watched(&target.name, &seen);
        let streams = names.iter().map(|n| watcher(api.clone(), watcher::Config::default().fields(&format!("metadata.name={n}"))).default_backoff().boxed());
        let mut events = futures::stream::select_all(streams);
        // Until the set of Secrets to watch changes (a tenant came or went).
        while watched(&target.name, &seen) == names {
            let next = tokio::select! {
                n = events.next() => n,
                _ = Relay::stopped(&mut shutdown) => return,
            };
            match next {
                None => return,
                Some(Err(e)) => tracing::warn!(source, error = %e, "watching the configuration Secrets; retrying"),
                Some(Ok(watcher::Event::Apply(s) | watcher::Event::InitApply(s))) => drop(seen.insert(s.metadata.name.clone().unwrap_or_default(), secret_data(&s))),
                Some(Ok(watcher::Event::Delete(s))) => drop(seen.remove(s.metadata.name.as_deref().unwrap_or_default())),
                Some(Ok(_)) => {}
            }
            let Some(files) = merged(&names, &seen).filter(|f| last.as_ref() != Some(f)) else { continue };
            if !crate::config::shards_consistent(&files) {
                tracing::debug!(source, "configuration shards not yet consistent; keeping the current configuration");
                continue;
            }
            if install(&relay, &source, &files) {
                relay.set_watch_delivered();
                if !relay.is_shutting_down() {
                    relay.set_ready(true);
                }
            }
            last = Some(files);
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
