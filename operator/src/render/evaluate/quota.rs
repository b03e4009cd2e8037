//! The pools' per-tenant quotas on objects (`limits.tenantMaxDomains`, `tenantMaxApiKeys`): a
//! tenant's objects in age order (creation time, then name), the first N within quota. The order
//! never depends on listing order, and an object within quota stays within it when newer ones
//! arrive. Pure.

use cascade_crds::v1alpha1::RelayPool;
use kube::ResourceExt;

/// The age order of a tenant's objects: creation time (unknown last), then name.
fn age<K: ResourceExt>(o: &K) -> (i64, String) {
    (o.meta().creation_timestamp.as_ref().map_or(i64::MAX, |t| t.0.as_second()), o.name_any())
}

/// Each object's place in its namespace's age order (0 = oldest; `rank >= max` is beyond the
/// quota), in one sort.
pub fn ranks<'a, K: ResourceExt + 'a>(objs: impl IntoIterator<Item = &'a K>) -> std::collections::BTreeMap<super::Key, usize> {
    let mut sorted: Vec<(String, (i64, String))> = objs.into_iter().map(|o| (o.namespace().unwrap_or_default(), age(o))).collect();
    sorted.sort();
    let mut out = std::collections::BTreeMap::new();
    let mut at = (String::new(), 0);
    for (ns, (_, name)) in sorted {
        if ns != at.0 {
            at = (ns.clone(), 0);
        }
        out.insert((ns, name), at.1);
        at.1 += 1;
    }
    out
}

/// What an object beyond its quota is told.
pub fn message(ns: &str, count: usize, max: u32, field: &str, what: &str) -> String {
    format!("{field}: namespace {ns} has {count} {what}; at most {max} are served (the oldest first)")
}

/// The smallest API key quota among `pools` that serve namespace `ns` (None: none serves it).
pub fn api_key_quota(pools: &[RelayPool], ns: &str, labels: &std::collections::BTreeMap<String, String>) -> Option<u32> {
    pools.iter().filter(|p| p.spec.tenants.selects(ns, labels)).map(|p| p.spec.limits.tenant_max_api_keys).min()
}
