//! The controllers' error policy: a failed reconcile is counted, logged, told to the object's
//! readers as a Warning Event and retried with backoff ([`crate::error::backoff`]).

use crate::error::{backoff, ReconcileError};
use kube::runtime::controller::Action;

/// Counts the failure by kind and error, logs it, tells the object's readers with a Warning
/// Event (`ReconcileFailed`, the failed operation; never key material), and retries with
/// backoff.
pub fn record<K: kube::Resource<DynamicType = ()>>(ctx: &crate::Context, kind: &str, obj: &K, error: &ReconcileError) -> Action {
    let name = obj.meta().name.clone().unwrap_or_default();
    ctx.metrics.reconcile_errors.with_label_values(&[kind, error.metric_label()]).inc();
    let key = format!("{kind}/{}/{name}", obj.meta().namespace.clone().unwrap_or_default());
    let n = ctx.failures.bump(&key, cascade_core::time::now_unix());
    let wait = backoff(n);
    tracing::warn!(kind, name, %error, failures = n, retry_in_s = wait.as_secs(), "reconcile failed; retrying");
    let note = crate::events::Note::warning(cascade_crds::conditions::reasons::RECONCILE_FAILED, "Reconcile", format!("{error} (failure {n} in a row; retrying in {} s)", wait.as_secs()));
    let (events, regarding) = (ctx.events.clone(), obj.object_ref(&()));
    tokio::spawn(async move { events.publish(&regarding, &note).await });
    Action::requeue(wait)
}
