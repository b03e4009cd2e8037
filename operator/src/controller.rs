//! Runs the controllers, and what they share: the reconcile error type, the error policy's
//! metric, and "apply the status only when it changed". Each controller is gather → evaluate
//! (pure) → apply, with one field manager.

use crate::secrets::FIELD_MANAGER;
use crate::{api_key, dkim_key, relay_pool, Context};
use cascade_crds::v1alpha1::{ApiKey, DkimKey, RelayPool, SendingDomain};
use futures::StreamExt;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
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
    #[error("applying relay workloads: {0}")]
    Workload(String),
}

impl ReconcileError {
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Kube(_) => "kube",
            Self::Key(_) => "key",
            Self::Input(_) => "input",
            Self::Workload(_) => "workload",
        }
    }
}

/// Counts the failure by kind and error, logs it, and retries soon.
pub fn record_error(ctx: &Context, kind: &str, name: &str, error: &ReconcileError) -> Action {
    ctx.metrics.reconcile_errors.with_label_values(&[kind, error.metric_label()]).inc();
    tracing::warn!(kind, name, %error, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(15))
}

/// Who writes which part of a status: a field manager, the top-level fields it owns (`None`:
/// all) and the condition types it owns (`None`: all). Two writers share a status through
/// server-side apply: conditions are a map keyed by type, so each keeps its own.
pub struct Writer {
    pub manager: &'static str,
    pub fields: Option<&'static [&'static str]>,
    pub conditions: Option<&'static [&'static str]>,
}

/// The operator's controllers, owning whole statuses.
pub const WHOLE: Writer = Writer { manager: FIELD_MANAGER, fields: None, conditions: None };

impl Writer {
    /// The part of `status` this writer owns, as JSON.
    fn project<S: Serialize>(&self, status: &S) -> serde_json::Value {
        let mut v = serde_json::to_value(status).unwrap_or_default();
        if let (Some(fields), Some(o)) = (self.fields, v.as_object_mut()) {
            o.retain(|k, _| fields.contains(&k.as_str()));
        }
        if let (Some(types), Some(conds)) = (self.conditions, v.get_mut("conditions").and_then(|c| c.as_array_mut())) {
            conds.retain(|c| c.get("type").and_then(|t| t.as_str()).is_some_and(|t| types.contains(&t)));
        }
        v
    }
}

/// A projected status without transition times: equal when nothing but the clock moved.
fn comparable(mut v: serde_json::Value) -> serde_json::Value {
    if let Some(conds) = v.get_mut("conditions").and_then(|c| c.as_array_mut()) {
        for c in conds {
            if let Some(o) = c.as_object_mut() {
                o.remove("lastTransitionTime");
            }
        }
    }
    v
}

fn conditions_of(v: &serde_json::Value) -> Vec<cascade_crds::conditions::Condition> {
    v.get("conditions").cloned().and_then(|c| serde_json::from_value(c).ok()).unwrap_or_default()
}

/// Server-side applies `writer`'s part of `new` as the status of `obj` when it differs from
/// that part of `old`, and publishes an Event for each of its conditions that changed; writes
/// nothing otherwise.
pub async fn apply_status<K, S>(ctx: &Context, writer: &Writer, obj: &K, kind: &str, old: Option<&S>, new: &S) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope> + Clone + DeserializeOwned + Debug,
    S: Serialize,
{
    let new = writer.project(new);
    let old = old.map(|o| writer.project(o));
    if old.clone().map(comparable) == Some(comparable(new.clone())) {
        return Ok(());
    }
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap_or_default());
    let patch = serde_json::json!({ "apiVersion": K::api_version(&()), "kind": kind, "status": new });
    api.patch_status(&obj.name_any(), &PatchParams::apply(writer.manager).force(), &Patch::Apply(&patch)).await?;
    let before = old.as_ref().map(conditions_of).unwrap_or_default();
    for note in crate::events::condition_changes(&before, &conditions_of(&new)) {
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
    let dkim = dkim.owns_with(secrets(), ctx.secrets.resource.clone(), managed()).run(dkim_key::reconcile, dkim_key::error_policy, ctx.clone());
    let keys = Controller::new(Api::<ApiKey>::all(ctx.client.clone()), watcher::Config::default());
    let key_store = keys.store();
    let keys = keys.owns_with(secrets(), ctx.secrets.resource.clone(), managed()).run(api_key::reconcile, api_key::error_policy, ctx.clone());
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
    // SendingDomains are checked again when a DkimKey of their namespace and domain changes.
    let domains = Controller::new(Api::<SendingDomain>::all(ctx.client.clone()), watcher::Config::default());
    let domain_store = domains.store();
    let domains = domains
        .watches(Api::<DkimKey>::all(ctx.client.clone()), watcher::Config::default(), move |k: DkimKey| {
            let ns = k.namespace();
            domain_store.state().iter().filter(|d| d.namespace() == ns && d.spec.domain == k.spec.domain).map(|d| ObjectRef::from_obj(&**d)).collect::<Vec<_>>()
        })
        .run(crate::sending_domain::reconcile, crate::sending_domain::error_policy, ctx.clone());
    futures::join!(drain(dkim), drain(keys), drain(pools), drain(domains), gauges);
}
