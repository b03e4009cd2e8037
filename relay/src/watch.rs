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
use base64::Engine;
use futures::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::{watcher, WatchStreamExt};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The Secret to watch, and how the API server serves Secrets (`v1 Secret`, or a stand-in kind
/// on a test API server).
#[derive(Debug, Clone)]
pub struct Target {
    pub namespace: String,
    pub name: String,
    pub resource: ApiResource,
}

impl Target {
    /// `NAMESPACE/NAME`, with the resource given as `GROUP/VERSION/KIND/PLURAL` (empty: core
    /// `v1 Secret`).
    pub fn parse(secret: &str, resource: Option<&str>) -> Result<Self, String> {
        let (namespace, name) = secret.split_once('/').filter(|(n, s)| !n.is_empty() && !s.is_empty() && !s.contains('/')).ok_or_else(|| format!("{secret:?} is not NAMESPACE/NAME"))?;
        let resource = match resource {
            None => ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("", "v1", "Secret"), "secrets"),
            Some(r) => match r.split('/').collect::<Vec<_>>()[..] {
                [group, version, kind, plural] if !version.is_empty() && !kind.is_empty() && !plural.is_empty() => {
                    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
                }
                _ => return Err(format!("{r:?} is not GROUP/VERSION/KIND/PLURAL")),
            },
        };
        Ok(Self { namespace: namespace.into(), name: name.into(), resource })
    }

    pub fn describe(&self) -> String {
        format!("secret {}/{}", self.namespace, self.name)
    }
}

/// A Secret's `data`, base64-decoded; entries that are not valid base64 are left out.
pub fn secret_data(obj: &DynamicObject) -> BTreeMap<String, Vec<u8>> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let data = obj.data.get("data").and_then(|d| d.as_object());
    data.into_iter().flatten().filter_map(|(k, v)| Some((k.clone(), b64.decode(v.as_str()?).ok()?))).collect()
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
    let api: Api<DynamicObject> = Api::namespaced_with(client, &target.namespace, &target.resource);
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
    fn targets_parse_with_the_core_secret_or_a_given_resource() {
        let t = Target::parse("mail/main-relay-config", None).unwrap();
        assert_eq!((t.namespace.as_str(), t.name.as_str(), t.resource.api_version.as_str(), t.resource.plural.as_str()), ("mail", "main-relay-config", "v1", "secrets"));
        let t = Target::parse("mail/x", Some("core.test.local/v1/Secret/secrets")).unwrap();
        assert_eq!(t.resource.api_version, "core.test.local/v1");
        assert!(Target::parse("no-namespace", None).unwrap_err().contains("NAMESPACE/NAME"));
        assert!(Target::parse("a/b/c", None).is_err());
        assert!(Target::parse("a/b", Some("v1/Secret")).unwrap_err().contains("GROUP/VERSION/KIND/PLURAL"));
    }
}
