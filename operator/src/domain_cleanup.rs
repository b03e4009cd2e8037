//! Deleting a SendingDomain must reach the relays: its mail is no longer sent, and mail of it
//! still queued is purged. The pool puts a finalizer on every SendingDomain (which ones: [`needing_finalizer`], pure) that references it;
//! when one is deleted, the pool records it under `status.retiredDomains` (and so in the relay
//! configuration's `retiredDomains`), writes the bundle, and only then releases the finalizer.
//! A SendingDomain whose pool no longer exists is released by the SendingDomain controller.

use crate::render::evaluate::{key_of, DOMAIN_FINALIZER};
use crate::Context;
use cascade_crds::v1alpha1::{RelayPool, SendingDomain};
use kube::api::{Api, Patch, PatchParams};
use kube::ResourceExt;

fn references(d: &SendingDomain, pool: &RelayPool) -> bool {
    let (ns, name) = key_of(pool);
    d.spec.relay_pool.namespace == ns && d.spec.relay_pool.name == name
}

fn has_finalizer(d: &SendingDomain) -> bool {
    d.finalizers().iter().any(|f| f == DOMAIN_FINALIZER)
}

/// Sets the finalizers (optimistically: a concurrent change makes this fail with 409, and the
/// reconcile is retried).
async fn set_finalizers(ctx: &Context, d: &SendingDomain, finalizers: Vec<String>) -> Result<(), kube::Error> {
    let api: Api<SendingDomain> = Api::namespaced(ctx.client.clone(), &d.namespace().unwrap_or_default());
    let patch = serde_json::json!({ "metadata": { "finalizers": finalizers, "resourceVersion": d.resource_version() } });
    api.patch(&d.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await.map(|_| ())
}

/// The live domains of `pool` that lack the pool's finalizer.
pub fn needing_finalizer<'a>(pool: &RelayPool, live: &'a [SendingDomain]) -> Vec<&'a SendingDomain> {
    live.iter().filter(|d| references(d, pool) && !has_finalizer(d)).collect()
}

/// Of the domains being deleted, those `pool` must retire (they reference it and wait for it).
pub fn retiring(pool: &RelayPool, deleting: &[SendingDomain]) -> Vec<SendingDomain> {
    deleting.iter().filter(|d| references(d, pool) && has_finalizer(d)).cloned().collect()
}

/// Puts the pool's finalizer on a live domain.
pub async fn add_finalizer(ctx: &Context, d: &SendingDomain) -> Result<(), kube::Error> {
    let mut finalizers = d.finalizers().to_vec();
    finalizers.push(DOMAIN_FINALIZER.into());
    set_finalizers(ctx, d, finalizers).await
}

/// Lets the deletion of these domains finish (call once the pool recorded them).
pub async fn release(ctx: &Context, deleting: &[SendingDomain]) -> Result<(), kube::Error> {
    for d in deleting {
        set_finalizers(ctx, d, d.finalizers().iter().filter(|f| *f != DOMAIN_FINALIZER).cloned().collect()).await?;
        tracing::info!(namespace = ?d.namespace(), sending_domain = %d.name_any(), "SendingDomain retired from its pool");
    }
    Ok(())
}

/// Releases a deleted domain whose pool is gone (a pool that exists does it itself, after
/// recording the deletion).
pub async fn release_orphan(ctx: &Context, d: &SendingDomain) -> Result<(), kube::Error> {
    if d.metadata.deletion_timestamp.is_some() && has_finalizer(d) {
        let pools: Api<RelayPool> = Api::namespaced(ctx.client.clone(), &d.spec.relay_pool.namespace);
        if pools.get_opt(&d.spec.relay_pool.name).await?.is_none() {
            release(ctx, std::slice::from_ref(d)).await?;
        }
    }
    Ok(())
}
