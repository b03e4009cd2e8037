//! What the operator keeps of the objects it reads, so its memory is bounded by what the CRD
//! schemas allow rather than by what a tenant writes.
//!
//! A tenant's custom resources carry schema-bounded specs (see `cascade_crds::v1alpha1::bounds`),
//! but their metadata is free: up to 256 KiB of annotations, any number of labels, and
//! server-side-apply `managedFields`. None of that is read except Cascade's own annotations, so
//! every object the operator caches or lists is [`strip`]ped as it arrives. Lists and watches
//! are paged ([`PAGE`], [`SECRET_PAGE`]) so no single response holds more than a page of
//! objects. Secrets are
//! listed page by page and only those a caller wants, under [`MAX_SECRET_BYTES`], are kept.

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams};
use kube::runtime::watcher;
use kube::Resource;

/// Objects per list page (initial lists of watches, and every list a reconcile makes).
pub const PAGE: u32 = 50;

/// Secrets per list page: smaller, since a tenant's labelled Secret may hold up to 1 MiB.
pub const SECRET_PAGE: u32 = 20;

/// No Secret the operator writes is near this size (a sealed RSA-2048 key is about 3 KiB); a
/// larger one carrying the operator's labels is a tenant's, and is skipped.
pub const MAX_SECRET_BYTES: usize = 64 * 1024;

/// The annotations the operator reads, and its API group, start with this.
const CASCADE_PREFIX: &str = "cascade-mail.com/";

/// Drops what the operator never reads from an object's metadata: `managedFields`, labels, and
/// every annotation but Cascade's own. Finalizers and owner references are kept (the operator
/// writes finalizer lists back and follows owners).
pub fn strip<K: Resource>(obj: &mut K) {
    let meta = obj.meta_mut();
    meta.managed_fields = None;
    meta.labels = None;
    if let Some(a) = meta.annotations.as_mut() {
        a.retain(|k, _| k.starts_with(CASCADE_PREFIX));
    }
}

/// A Secret as the caches keep it: metadata without `managedFields` and annotations, and its
/// data only when it is no larger than [`MAX_SECRET_BYTES`] and controlled by a Cascade object
/// (the Secrets the operator issues are; a tenant's other labelled Secrets are kept as names).
pub fn lean_secret(s: &mut Secret) {
    s.metadata.managed_fields = None;
    s.metadata.annotations = None;
    let ours = s.metadata.owner_references.iter().flatten().any(|o| o.controller == Some(true) && o.api_version.starts_with(CASCADE_PREFIX));
    if !ours || secret_bytes(s) > MAX_SECRET_BYTES {
        s.data = None;
        s.string_data = None;
    }
}

/// A watch configuration that pages its initial list.
pub fn watch_config() -> watcher::Config {
    watcher::Config::default().page_size(PAGE)
}

/// The size of a Secret's data, as the operator would hold it.
pub fn secret_bytes(s: &Secret) -> usize {
    s.data.iter().flatten().map(|(k, v)| k.len() + v.0.len()).sum::<usize>() + s.string_data.iter().flatten().map(|(k, v)| k.len() + v.len()).sum::<usize>()
}

/// Secrets of `api` matching `lp`, page by page: those `wanted` (by namespace and name) and no
/// larger than [`MAX_SECRET_BYTES`]; the others are dropped as each page arrives.
pub async fn list_secrets(api: &Api<Secret>, lp: &ListParams, wanted: impl Fn(&str, &str) -> bool) -> Result<Vec<Secret>, kube::Error> {
    let mut out = Vec::new();
    let mut lp = lp.clone().limit(SECRET_PAGE);
    loop {
        let page = api.list(&lp).await?;
        for mut s in page.items {
            let (ns, name) = (s.metadata.namespace.clone().unwrap_or_default(), s.metadata.name.clone().unwrap_or_default());
            if !wanted(&ns, &name) {
                continue;
            }
            if secret_bytes(&s) > MAX_SECRET_BYTES {
                tracing::warn!(namespace = %ns, secret = %name, "a Secret with the operator's labels is larger than any it writes; skipped");
                continue;
            }
            s.metadata.managed_fields = None;
            out.push(s);
        }
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => lp = lp.continue_token(&token),
            _ => return Ok(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cascade_crds::v1alpha1::ApiKey;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;

    #[test]
    fn only_what_the_operator_reads_is_kept() {
        let mut key: ApiKey = serde_json::from_value(serde_json::json!({
            "apiVersion": "cascade-mail.com/v1alpha1", "kind": "ApiKey",
            "metadata": { "name": "k", "namespace": "shop", "uid": "u", "finalizers": ["x/y"],
                "labels": { "big": "v" },
                "annotations": { "junk": "x".repeat(200_000), "cascade-mail.com/rotate": "now" } },
            "spec": { "scopes": ["smtp:send"] }
        }))
        .unwrap();
        key.metadata.managed_fields = Some(vec![ManagedFieldsEntry::default(); 100]);
        strip(&mut key);
        assert_eq!(key.metadata.annotations.unwrap().into_keys().collect::<Vec<_>>(), ["cascade-mail.com/rotate"]);
        assert!(key.metadata.labels.is_none() && key.metadata.managed_fields.is_none());
        assert_eq!(key.metadata.finalizers.unwrap(), ["x/y"]);
        assert_eq!(key.metadata.uid.as_deref(), Some("u"));
    }
}
