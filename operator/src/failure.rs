//! The controllers' error policy: a failed reconcile is counted, logged, told to the object's
//! readers as a Warning Event and as the condition `Reconciled=False` (reason
//! `ReconcileFailed`, the failed operation), and retried with backoff
//! ([`crate::error::backoff`]). The next successful reconcile sets `Reconciled=True`. The
//! condition has its own field manager, so the controllers' status writers never touch it.

use crate::error::{backoff, ReconcileError};
use kube::runtime::controller::Action;

/// Counts the failure by kind and error, logs it, tells the object's readers with a Warning
/// Event (`ReconcileFailed`, the failed operation; never key material), and retries with
/// backoff.
pub fn record<K>(ctx: &crate::Context, kind: &str, obj: &K, error: &ReconcileError) -> Action
where
    K: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope> + Clone + serde::de::DeserializeOwned + std::fmt::Debug + 'static,
{
    let name = obj.meta().name.clone().unwrap_or_default();
    ctx.metrics.reconcile_errors.with_label_values(&[kind, error.metric_label()]).inc();
    let n = ctx.failures.bump(&key(kind, obj.meta()), cascade_core::time::now_unix());
    let wait = backoff(n);
    tracing::warn!(kind, name, %error, failures = n, retry_in_s = wait.as_secs(), "reconcile failed; retrying");
    let note = crate::events::Note::warning(cascade_crds::conditions::reasons::RECONCILE_FAILED, "Reconcile", format!("{error} (failure {n} in a row; retrying in {} s)", wait.as_secs()));
    let (events, regarding) = (ctx.events.clone(), obj.object_ref(&()));
    tokio::spawn(async move { events.publish(&regarding, &note).await });
    let message = format!("{error} (failure {n} in a row; retrying in {} s)", wait.as_secs());
    tokio::spawn(write::<K>(ctx.client.clone(), obj.meta().clone(), false, cascade_crds::conditions::reasons::RECONCILE_FAILED, message));
    Action::requeue(wait)
}

/// The key [`record`] counts failures under.
pub fn key(kind: &str, meta: &kube::api::ObjectMeta) -> String {
    format!("{kind}/{}/{}", meta.namespace.clone().unwrap_or_default(), meta.name.clone().unwrap_or_default())
}

/// A reconcile succeeded: when it had failed before, `Reconciled` turns True again.
pub fn recovered<K>(ctx: &crate::Context, kind: &str, meta: &kube::api::ObjectMeta)
where
    K: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope> + Clone + serde::de::DeserializeOwned + std::fmt::Debug + 'static,
{
    if ctx.failures.clear(&key(kind, meta)) {
        let message = "the last reconcile succeeded".to_string();
        tokio::spawn(write::<K>(ctx.client.clone(), meta.clone(), true, cascade_crds::conditions::reasons::RECONCILED, message));
    }
}

/// Server-side applies the one condition `Reconciled` under its own field manager (conditions
/// are a map keyed by type: the other writers' conditions stay).
async fn write<K>(client: kube::Client, meta: kube::api::ObjectMeta, ok: bool, reason: &str, message: String)
where
    K: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let (ns, name) = (meta.namespace.clone().unwrap_or_default(), meta.name.clone().unwrap_or_default());
    let mut conditions = Vec::new();
    let now = cascade_core::time::rfc3339_utc(cascade_core::time::now_unix());
    cascade_crds::conditions::set(&mut conditions, cascade_crds::conditions::types::RECONCILED, ok, reason, &message, meta.generation.unwrap_or(0), &now);
    let patch = serde_json::json!({ "apiVersion": K::api_version(&()), "kind": K::kind(&()), "status": { "conditions": conditions } });
    let api: kube::Api<K> = kube::Api::namespaced(client, &ns);
    if let Err(e) = api.patch_status(&name, &kube::api::PatchParams::apply(MANAGER).force(), &kube::api::Patch::Apply(&patch)).await {
        tracing::warn!(kind = %K::kind(&()), namespace = %ns, name = %name, error = %e, "writing the Reconciled condition failed");
    }
}

/// The field manager of the `Reconciled` condition.
pub const MANAGER: &str = "cascade-operator-reconcile";
