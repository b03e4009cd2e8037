//! Runs the controllers, and what they share: the reconcile error type, the error policy's
//! metric, and "apply the status only when it changed". Each controller is gather → evaluate
//! (pure) → apply, with one field manager.

use crate::secrets::FIELD_MANAGER;
use crate::{api_key, dkim_key, relay_pool, Context};
use cascade_crds::v1alpha1::{ApiKey, DkimKey, RelayPool, SendingDomain};
use kube::runtime::reflector::ObjectRef;
use futures::StreamExt;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::{watcher, Controller};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("reading or writing Kubernetes objects: {0}")]
    Kube(#[from] kube::Error),
    #[error("generating or sealing key material: {0}")]
    Key(String),
    #[error("reading a Secret the resources name: {0}")]
    Input(String),
}

impl ReconcileError {
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Kube(_) => "kube",
            Self::Key(_) => "key",
            Self::Input(_) => "input",
        }
    }
}

/// Counts the failure by kind and error, logs it, and retries soon.
pub fn record_error(ctx: &Context, kind: &str, name: &str, error: &ReconcileError) -> Action {
    ctx.metrics.reconcile_errors.with_label_values(&[kind, error.metric_label()]).inc();
    tracing::warn!(kind, name, %error, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(15))
}

/// The status as JSON without transition times: equal when nothing but the clock moved.
fn comparable<S: Serialize>(s: &S) -> serde_json::Value {
    let mut v = serde_json::to_value(s).unwrap_or_default();
    if let Some(conds) = v.get_mut("conditions").and_then(|c| c.as_array_mut()) {
        for c in conds {
            if let Some(o) = c.as_object_mut() {
                o.remove("lastTransitionTime");
            }
        }
    }
    v
}

fn conditions_of<S: Serialize>(status: Option<&S>) -> Vec<cascade_crds::conditions::Condition> {
    let v = status.and_then(|s| serde_json::to_value(s).ok()).and_then(|mut v| v.get_mut("conditions").map(serde_json::Value::take));
    v.and_then(|c| serde_json::from_value(c).ok()).unwrap_or_default()
}

/// Server-side applies `new` as the status of `obj` when it differs from `old`, and publishes an
/// Event for each condition that changed; writes nothing otherwise.
pub async fn apply_status<K, S>(ctx: &Context, obj: &K, kind: &str, old: Option<&S>, new: &S) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope> + Clone + DeserializeOwned + Debug,
    S: Serialize,
{
    if old.map(comparable) == Some(comparable(new)) {
        return Ok(());
    }
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap_or_default());
    let patch = serde_json::json!({ "apiVersion": K::api_version(&()), "kind": kind, "status": new });
    api.patch_status(&obj.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch)).await?;
    for note in crate::events::condition_changes(&conditions_of(old), &conditions_of(Some(new))) {
        ctx.events.publish(&obj.object_ref(&()), &note).await;
    }
    Ok(())
}

async fn drain<T, E: std::fmt::Display>(stream: impl futures::Stream<Item = Result<T, E>>) {
    stream
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "controller event");
            }
        })
        .await;
}

/// Runs every controller until the task is dropped.
pub async fn run(ctx: Arc<Context>) {
    let secrets = || Api::<DynamicObject>::all_with(ctx.client.clone(), &ctx.secrets.resource);
    let managed = || watcher::Config::default().labels("app.kubernetes.io/managed-by=cascade-operator");
    let dkim = Controller::new(Api::<DkimKey>::all(ctx.client.clone()), watcher::Config::default());
    let dkim_store = dkim.store();
    let dkim = dkim
        .owns_with(secrets(), ctx.secrets.resource.clone(), managed())
        .run(dkim_key::reconcile, dkim_key::error_policy, ctx.clone());
    let keys = Controller::new(Api::<ApiKey>::all(ctx.client.clone()), watcher::Config::default());
    let key_store = keys.store();
    let keys = keys
        .owns_with(secrets(), ctx.secrets.resource.clone(), managed())
        .run(api_key::reconcile, api_key::error_policy, ctx.clone());
    // Pools re-evaluate when anything they could serve changes: every pool, since a namespace or
    // a domain claim elsewhere can change what a pool serves.
    let pools = Controller::new(Api::<RelayPool>::all(ctx.client.clone()), watcher::Config::default());
    let store = pools.store();
    let pool_store = store.clone();
    let all_pools = move || store.state().iter().map(|p| ObjectRef::from_obj(&**p)).collect::<Vec<_>>();
    let (a, b, c) = (all_pools.clone(), all_pools.clone(), all_pools);
    let mut pools = pools.owns_with(secrets(), ctx.secrets.resource.clone(), managed());
    for resource in ctx.workload_kinds.values() {
        pools = pools.owns_with(Api::<DynamicObject>::all_with(ctx.client.clone(), resource), resource.clone(), managed());
    }
    let pools = pools
        .watches(Api::<SendingDomain>::all(ctx.client.clone()), watcher::Config::default(), move |_| a())
        .watches(Api::<DkimKey>::all(ctx.client.clone()), watcher::Config::default(), move |_| b())
        .watches(Api::<ApiKey>::all(ctx.client.clone()), watcher::Config::default(), move |_| c())
        .run(relay_pool::reconcile, relay_pool::error_policy, ctx.clone());
    let metrics = ctx.metrics.clone();
    let gauges = async move {
        loop {
            for (kind, n) in [("DkimKey", dkim_store.state().len()), ("ApiKey", key_store.state().len()), ("RelayPool", pool_store.state().len())] {
                metrics.managed.with_label_values(&[kind]).set(n as i64);
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    };
    let domains = Controller::new(Api::<SendingDomain>::all(ctx.client.clone()), watcher::Config::default())
        .run(crate::domain_cleanup::reconcile, crate::domain_cleanup::error_policy, ctx.clone());
    futures::join!(drain(dkim), drain(keys), drain(pools), drain(domains), gauges);
}
