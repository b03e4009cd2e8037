//! The RelayPool controller, in three steps:
//!
//! - [`gather`] (reads only): every SendingDomain, DkimKey and ApiKey, namespace labels, the
//!   Secrets with their key material, the pool's keys, certificate and current bundle, and what
//!   the pool's relays report on their admin listeners (DMARC summaries, audit anchors,
//!   suspensions).
//! - [`evaluate`] (pure, apart from drawing fresh keys): the same [`crate::render::evaluate`] as
//!   `render` gives the relay configuration, DNS records and statuses; then the DkimKeys to
//!   generate, the finalizers to add, the pool's keys (rotated when due), the bundle
//!   ([`crate::bundle`]), the statuses and the workloads.
//! - [`apply`] (writes only what changed, one field manager): in that order, so the bundle is
//!   written before the statuses that describe it, and deleted domains are released last.
//!
//! Any change of a SendingDomain, DkimKey or ApiKey re-evaluates every pool, so a revoked key
//! leaves the bundle within one reconcile.

mod apply;
mod evaluate;
mod gather;
mod readiness;

use crate::error::ReconcileError;
use crate::Context;
use cascade_crds::conditions::{self, reasons, types};
use cascade_crds::v1alpha1::RelayPool;
use kube::runtime::controller::Action;
use kube::ResourceExt;
use std::sync::Arc;

pub use crate::bundle::{AUDIT_KEY, SEALING_KEY, SPOOL_KEY};

pub async fn reconcile(pool: Arc<RelayPool>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let _timer = ctx.metrics.reconcile("RelayPool");
    let ns = pool.namespace().unwrap_or_default();
    if !ctx.pool_namespaces.contains(&ns) {
        return unmanaged(&ctx, &pool, &ns).await;
    }
    let world = gather::gather(&ctx, &pool).await?;
    let pool = crate::pod_shape::with_default_pull_secrets(&pool, &ctx.relay_pull_secrets);

    ctx.metrics.managed.with_label_values(&["SendingDomain"]).set(world.inputs.domains.len() as i64);
    let site = evaluate::Site { relay_image: &ctx.relay_image, operator_namespace: &ctx.namespace };
    let desired = evaluate::desired(&pool, world, &ctx.master, &site, ctx.clock.now())?;
    apply::apply(&ctx, &pool, desired).await
}

/// A pool in a namespace the operator may not write workloads in: refused, nothing written but
/// its status (the chart grants the operator a Role only in `relayPoolNamespaces`).
async fn unmanaged(ctx: &Context, pool: &RelayPool, ns: &str) -> Result<Action, ReconcileError> {
    let mut status = pool.status.clone().unwrap_or_default();
    let msg = format!("RelayPools are managed only in the namespaces {:?} (operator --pool-namespaces, chart value relayPoolNamespaces), not in {ns}", ctx.pool_namespaces);
    let (now, generation) = (cascade_core::time::rfc3339_utc(ctx.clock.now()), pool.metadata.generation.unwrap_or(0));
    conditions::set(&mut status.conditions, types::READY, false, reasons::NAMESPACE_NOT_MANAGED, &msg, generation, &now);
    status.observed_generation = generation;
    crate::status::apply(ctx, &crate::status::WHOLE, pool, pool.status.as_ref(), &status).await?;
    Ok(Action::await_change())
}

pub fn error_policy(pool: Arc<RelayPool>, error: &ReconcileError, ctx: Arc<Context>) -> Action {
    crate::failure::record(&ctx, "RelayPool", &*pool, error)
}
