//! The names and labels every controller writes, in one place: the field manager, the
//! `managed-by` label the controllers watch by, and the names of a pool's objects.

use std::collections::BTreeMap;

/// The one field manager of every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "cascade-operator";

pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// The label selector of everything the operator manages.
pub const MANAGED_SELECTOR: &str = "app.kubernetes.io/managed-by=cascade-operator";
pub const RELAY_POOL: &str = "cascade-mail.com/relay-pool";

/// `managed-by: cascade-operator` and the given extra labels.
pub fn managed(extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> = extra.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    labels.insert(MANAGED_BY.into(), FIELD_MANAGER.into());
    labels
}

/// The Secret with the pool's relay configuration bundle.
pub fn bundle_secret(pool: &str) -> String {
    format!("{pool}-relay-config")
}

/// The label on a pool's shard Secrets (value: the pool's name).
pub const SHARD_OF: &str = "cascade-mail.com/relay-config-shard-of";

/// The pool's own keys (spool, sealing, audit): mounted into the relay pods, never in the bundle.
pub fn keys_secret(pool: &str) -> String {
    format!("{pool}-keys")
}

/// The pool's StatefulSet (its pods are `<this>-N`, its spool claims `spool-<this>-N`).
pub fn statefulset(pool: &str) -> String {
    format!("{pool}-relay")
}

/// The headless Service the StatefulSet's pods are addressed through.
pub fn headless_service(pool: &str) -> String {
    format!("{pool}-relay-headless")
}

/// The DNS name of the headless Service: one address per relay pod.
pub fn headless_host(pool: &str, namespace: &str) -> String {
    format!("{}.{namespace}.svc", headless_service(pool))
}

pub const DRAIN_OF: &str = "cascade-mail.com/drain-of";

/// Labels of a pool's spool drain Job pods: not the relays' (no Service sends them mail).
pub fn drain_pods(pool: &str) -> BTreeMap<String, String> {
    [("app.kubernetes.io/name".to_string(), "cascade-relay-drain".to_string()), (DRAIN_OF.to_string(), pool.to_string())].into()
}
