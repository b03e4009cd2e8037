//! The pools' per-tenant quotas on objects (`limits.tenantMaxDomains`, `tenantMaxApiKeys`): a
//! tenant's objects in age order (creation time, then name), the first N within quota. The order
//! never depends on listing order, and an object within quota stays within it when newer ones
//! arrive. Pure.

use super::key_of;
use cascade_crds::v1alpha1::RelayPool;
use kube::ResourceExt;

/// The age order of a tenant's objects: creation time (unknown last), then name.
fn age<K: ResourceExt>(o: &K) -> (i64, String) {
    (o.meta().creation_timestamp.as_ref().map_or(i64::MAX, |t| t.0.as_second()), o.name_any())
}

/// Why `obj` is beyond the quota `max` among `siblings` (the tenant's objects of its kind that
/// count, `obj` among them), naming the limit; `None` within quota.
pub fn beyond<K: ResourceExt>(obj: &K, siblings: &[&K], max: u32, field: &str, what: &str) -> Option<String> {
    let mine = age(obj);
    let older = siblings.iter().filter(|s| key_of(**s) != key_of(obj) && age(**s) < mine).count();
    (older >= max as usize).then(|| format!("{field}: namespace {} has {} {what}; at most {max} are served (the oldest first)", obj.namespace().unwrap_or_default(), siblings.len()))
}

/// The smallest API key quota among `pools` that serve namespace `ns` (None: none serves it).
pub fn api_key_quota(pools: &[RelayPool], ns: &str, labels: &std::collections::BTreeMap<String, String>) -> Option<u32> {
    pools.iter().filter(|p| p.spec.tenants.selects(ns, labels)).map(|p| p.spec.limits.tenant_max_api_keys).min()
}
