//! The RelayPool controller's writes, in order: finalizers and generated DkimKeys, the pool's
//! keys and certificate, the bundle, API key suspensions and SendingDomain statuses, the
//! workloads and drain Jobs, DNSEndpoints, the pool's status, and last the release of deleted
//! domains (once the bundle and status record them). Each write happens only when it changes
//! something.

use super::evaluate::{Desired, Served};
use crate::apply::{apply as apply_child, force, Outcome};
use crate::error::ReconcileError;
use crate::events::Note;
use crate::labels::{self, RELAY_POOL};
use crate::status::{self, Writer, WHOLE};
use crate::workloads::Workloads;
use crate::Context;
use cascade_crds::conditions::{self, reasons, types};
use cascade_crds::v1alpha1::{DkimKey, RelayPool, RelayPoolStatus};
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::api::{Api, DeleteParams, PropagationPolicy};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt::Debug;
use std::time::Duration;

/// The pool's part of a SendingDomain status: the records, `Ready` and `DomainConflict` (the
/// DNS checks are the SendingDomain controller's).
const DOMAIN_WRITER: Writer =
    Writer { manager: labels::FIELD_MANAGER, fields: Some(&["observedGeneration", "records", "conditions", "dmarcReports"]), conditions: Some(&[types::READY, types::DOMAIN_CONFLICT]) };

pub async fn apply(ctx: &Context, pool: &RelayPool, desired: Desired) -> Result<Action, ReconcileError> {
    let Desired { finalize, generated, deleting, served, mut status, requeue } = desired;
    // A write to one tenant's object that fails (its namespace's quota, an object being
    // deleted) never keeps the pool's bundle from being written: it is logged, the rest goes
    // on, and the reconcile reports it at the end (retried with backoff).
    let mut failed: Option<kube::Error> = None;
    for d in &finalize {
        if let Err(e) = crate::domain_cleanup::add_finalizer(ctx, d).await {
            tracing::warn!(namespace = ?d.namespace(), sending_domain = %d.name_any(), error = %e, "adding the finalizer failed; serving the rest");
            failed.get_or_insert(e);
        }
    }
    for (domain, key) in generated {
        let created = match force(&Api::<DkimKey>::namespaced(ctx.client.clone(), &key.namespace().unwrap_or_default()), &key).await {
            Ok(created) => created,
            Err(e) => {
                tracing::warn!(namespace = ?domain.namespace(), sending_domain = %domain.name_any(), error = %e, "creating its DkimKey failed; serving the rest");
                failed.get_or_insert(e);
                continue;
            }
        };
        tracing::info!(namespace = ?created.namespace(), dkim_key = %created.name_any(), "DkimKey created for SendingDomain {}", domain.name_any());
        ctx.events.publish(&domain.object_ref(&()), &Note::normal(reasons::DKIM_KEY_CREATED, "CreateDkimKey", format!("DkimKey {} created for this domain", created.name_any()))).await;
    }
    let serving = served.is_some();
    let mut tenant_failure: Option<ReconcileError> = failed.map(Into::into);
    if let Some(served) = served {
        // Per-object failures are reported after everything else is written.
        if let Some(e) = serve(ctx, pool, *served, &mut status).await? {
            tenant_failure.get_or_insert(e);
        }
    }
    status::apply(ctx, &WHOLE, pool, pool.status.as_ref(), &status).await?;
    // Recorded in the status (and, when the pool is served, in the bundle): now the deleted
    // domains may go.
    for d in deleting.iter().filter(|_| serving) {
        let note = format!("SendingDomain {}/{} ({}) deleted: its queued mail is purged", d.namespace().unwrap_or_default(), d.name_any(), d.spec.domain);
        ctx.events.publish(&pool.object_ref(&()), &Note::normal(reasons::DOMAIN_RETIRED, "RetireDomain", note)).await;
    }
    crate::domain_cleanup::release(ctx, &deleting).await?;
    // Relays load a new configuration without an event the operator sees: look again soon.
    let progressing = conditions::is_true(&status.conditions, types::PROGRESSING);
    match tenant_failure {
        Some(e) => Err(e),
        None => Ok(Action::requeue(if progressing { requeue.min(Duration::from_secs(5)) } else { requeue })),
    }
}

async fn serve(ctx: &Context, pool: &RelayPool, served: Served, status: &mut RelayPoolStatus) -> Result<Option<ReconcileError>, ReconcileError> {
    let (ns, name) = (pool.namespace().unwrap_or_default(), pool.name_any());
    let owned = |data| (data, labels::managed(&[(RELAY_POOL, &name)]), pool.controller_owner_ref(&()));
    if let Some((keys, note)) = served.keys {
        let (data, l, o) = owned(keys);
        ctx.secrets.apply(&ns, &labels::keys_secret(&name), &data, l, o).await?;
        if let Some(note) = note {
            ctx.events.publish(&pool.object_ref(&()), &note).await;
        }
    }
    if let Some(admin) = served.admin {
        let (data, l, o) = owned(admin);
        ctx.secrets.apply(&ns, &crate::admin_authority::secret_name(&name), &data, l, o).await?;
    }
    if let Some(tls) = served.tls {
        let (data, l, o) = owned(tls);
        ctx.secrets.apply(&ns, &format!("{name}-tls"), &data, l, o).await?;
    }
    if let Some(super::evaluate::BundleWrite { files: bundle, shards, note, sources }) = served.bundle {
        // Shards first, the bundle listing them last: a relay installs only a consistent set.
        for (shard, data) in shards {
            let l = labels::managed(&[(RELAY_POOL, &name), (labels::SHARD_OF, &name)]);
            ctx.secrets.apply(&ns, &shard, &data, l, pool.controller_owner_ref(&())).await?;
        }
        let (data, l, o) = owned(bundle);
        ctx.secrets.apply(&ns, &labels::bundle_secret(&name), &data, l, o).await?;
        tracing::info!(namespace = %ns, relay_pool = %name, "relay configuration bundle updated");
        ctx.events.publish(&pool.object_ref(&()), &note).await;
        record_generation(ctx, pool, &data, sources);
    }
    // One tenant's object failing a write never stops the others' (reported at the end).
    let mut failed: Option<ReconcileError> = None;
    for (key, suspension) in served.suspensions {
        if let Err(e) = crate::suspensions::record(ctx, &key, suspension).await {
            tracing::warn!(namespace = ?key.namespace(), api_key = %key.name_any(), error = %e, "recording the suspension failed; going on");
            failed.get_or_insert(e.into());
        }
    }
    for (key, last_used, network) in &served.usage {
        if let Err(e) = crate::key_usage::record(ctx, key, *last_used, network).await {
            tracing::warn!(namespace = ?key.namespace(), api_key = %key.name_any(), error = %e, "recording the key's last use failed; going on");
            failed.get_or_insert(e.into());
        }
    }
    for (e, st) in &served.webhook_statuses {
        if let Err(e2) = crate::webhook_endpoint::report_status(ctx, e, st).await {
            tracing::warn!(namespace = ?e.namespace(), webhook_endpoint = %e.name_any(), error = %e2, "writing the delivery report failed; going on");
            failed.get_or_insert(e2.into());
        }
    }
    for (d, st) in &served.domain_statuses {
        if let Err(e) = status::apply(ctx, &DOMAIN_WRITER, d, d.status.as_ref(), st).await {
            tracing::warn!(namespace = ?d.namespace(), sending_domain = %d.name_any(), error = %e, "writing the status failed; going on");
            failed.get_or_insert(e.into());
        }
    }
    let sts = workloads(ctx, pool, served.workloads).await?;
    let spec_replicas = sts.spec.as_ref().and_then(|s| s.replicas);
    let (ready, running) = sts.status.as_ref().map(|s| (s.ready_replicas.unwrap_or(0), s.replicas)).unwrap_or((0, 0));
    let desired = spec_replicas.unwrap_or(pool.spec.replicas);
    let draining = crate::spool_drain::apply(ctx, pool, desired, running).await?;
    let now = cascade_core::time::rfc3339_utc(ctx.clock.now());
    let generation = pool.metadata.generation.unwrap_or(0);
    let config_hash = status.config_hash.clone().unwrap_or_default();
    let rollout = super::readiness::Rollout::of(desired, sts.status.as_ref(), &served.configs, &config_hash, draining);
    super::readiness::set(&mut status.conditions, &rollout, &served.configs, &config_hash, generation, &now);
    for (state, n) in [("desired", rollout.desired), ("ready", rollout.ready), ("current", rollout.current), ("draining", rollout.draining)] {
        ctx.metrics.pool_replicas.with_label_values(&[&ns, &name, state]).set(i64::from(n));
    }
    ctx.metrics.pool_config_refused.with_label_values(&[&ns, &name]).set(i64::from(served.configs.iter().any(|c| c.refused.is_some())));
    match served.endpoints {
        Some(endpoints) => {
            let (ok, reason, msg) = match crate::external_dns::apply(ctx, &endpoints).await? {
                true => (true, reasons::PUBLISHED, format!("{} DNSEndpoint(s) applied for external-dns", endpoints.len())),
                false => {
                    (false, reasons::CRD_NOT_INSTALLED, "externalDns is on but the DNSEndpoint CRD (externaldns.k8s.io) is not installed; records are only in the SendingDomain statuses".to_string())
                }
            };
            conditions::set(&mut status.conditions, types::EXTERNAL_DNS, ok, reason, &msg, generation, &now);
        }
        None => conditions::remove(&mut status.conditions, types::EXTERNAL_DNS),
    }
    status.ready_replicas = ready;
    Ok(failed)
}

/// Applies one child; publishes what changed as an Event on the pool.
async fn child<K>(ctx: &Context, pool: &RelayPool, api: &Api<K>, obj: K) -> Result<K, ReconcileError>
where
    K: Resource<DynamicType = ()> + Clone + Serialize + DeserializeOwned + Debug,
{
    let (kind, name) = (K::kind(&()).to_string(), obj.name_any());
    let outcome = apply_child(api, obj).await?;
    if let Outcome::Created(_) | Outcome::Updated(_) = &outcome {
        let verb = if matches!(outcome, Outcome::Created(_)) { "created" } else { "updated" };
        ctx.events.publish(&pool.object_ref(&()), &Note::normal(reasons::WORKLOAD_APPLIED, "ApplyWorkload", format!("{kind} {name} {verb}"))).await;
    }
    Ok(outcome.object().clone())
}

fn api<K: Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>>(ctx: &Context, ns: &str) -> Api<K> {
    Api::namespaced(ctx.client.clone(), ns)
}

/// Applies the pool's workloads, the account before the pods that use it; returns the
/// StatefulSet as the API server has it.
async fn workloads(ctx: &Context, pool: &RelayPool, w: Workloads) -> Result<StatefulSet, ReconcileError> {
    let ns = pool.namespace().unwrap_or_default();
    child(ctx, pool, &api(ctx, &ns), w.account).await?;
    child(ctx, pool, &api(ctx, &ns), w.role).await?;
    child(ctx, pool, &api(ctx, &ns), w.binding).await?;
    let sts = statefulset(ctx, pool, w.statefulset).await?;
    child(ctx, pool, &api(ctx, &ns), w.service).await?;
    child(ctx, pool, &api(ctx, &ns), w.headless).await?;
    child(ctx, pool, &api(ctx, &ns), w.disruption_budget).await?;
    child(ctx, pool, &api(ctx, &ns), w.network_policy).await?;
    if let Some(hpa) = w.autoscaler {
        child(ctx, pool, &api(ctx, &ns), hpa).await?;
    }
    Ok(sts)
}

/// The StatefulSet, recreated (its pods and claims kept) when Kubernetes refuses the change of a
/// field it never updates in place.
async fn statefulset(ctx: &Context, pool: &RelayPool, sts: StatefulSet) -> Result<StatefulSet, ReconcileError> {
    let api: Api<StatefulSet> = api(ctx, &pool.namespace().unwrap_or_default());
    let name = sts.name_any();
    match child(ctx, pool, &api, sts.clone()).await {
        Err(ReconcileError::Kube(e)) if immutable_field_refused(&e) => {
            recreate_orphaning_pods(&api, &name).await?;
            let applied = force(&api, &crate::apply::with_hash(sts).0).await?;
            let note = format!("StatefulSet {name} recreated: a field Kubernetes never updates in place changed; its pods and claims were kept");
            ctx.events.publish(&pool.object_ref(&()), &Note::normal(reasons::WORKLOAD_RECREATED, "RecreateWorkload", note)).await;
            Ok(applied)
        }
        other => other,
    }
}

/// A StatefulSet update refused because it changes a field Kubernetes never updates in place
/// (the spool claim template, selector, service name): `422 Invalid`, "Forbidden: updates to
/// statefulset spec".
fn immutable_field_refused(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 422 && s.message.contains("Forbidden: updates to statefulset spec"))
}

/// Deletes the StatefulSet but not its pods (orphan), and waits (bounded) until it is gone, so
/// the new one adopts the running pods and their claims: no relay stops, no spool is lost.
async fn recreate_orphaning_pods(api: &Api<StatefulSet>, name: &str) -> Result<(), ReconcileError> {
    let orphan = DeleteParams { propagation_policy: Some(PropagationPolicy::Orphan), ..Default::default() };
    api.delete(name, &orphan).await?;
    for _ in 0..100 {
        if api.get_opt(name).await?.is_none() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(ReconcileError::StillThere(name.into()))
}

/// The audit record of a bundle write: its configGeneration and which object generations
/// changed since the last one this operator wrote (all of them after a start), the first 200.
fn record_generation(ctx: &Context, pool: &RelayPool, bundle: &crate::secrets::SecretData, sources: std::collections::BTreeMap<String, i64>) {
    let generation = bundle.get("relay.yaml").and_then(|y| std::str::from_utf8(y).ok()?.lines().next()?.strip_prefix("configGeneration: ").map(str::to_string));
    let key = format!("{}/{}", pool.namespace().unwrap_or_default(), pool.name_any());
    let previous = ctx.config_sources.lock().unwrap_or_else(|e| e.into_inner()).insert(key.clone(), sources.clone()).unwrap_or_default();
    let mut changed: Vec<String> = sources.iter().filter(|(k, g)| previous.get(*k) != Some(g)).map(|(k, g)| format!("{k}@{g}")).collect();
    changed.extend(previous.keys().filter(|k| !sources.contains_key(*k)).map(|k| format!("{k} deleted")));
    let total = changed.len();
    changed.truncate(200);
    let lockdown: Vec<&String> = pool.spec.lockdown.keys().collect();
    ctx.events.record("config.generation", serde_json::json!({ "pool": key, "configGeneration": generation, "changed": changed, "changedTotal": total, "lockdown": lockdown }));
}
