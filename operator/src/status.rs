//! Statuses, written only when they changed: each writer (a field manager) owns some top-level
//! fields and some condition types, server-side apply keeps the writers apart, and each
//! condition that changed is published as an Event.

use crate::labels::FIELD_MANAGER;
use crate::Context;
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt::Debug;

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
        if let Some(conds) = v.get_mut("conditions").and_then(|c| c.as_array_mut()) {
            // `Reconciled` is the error policy's, never a status writer's.
            let owned = |t: &str| t != cascade_crds::conditions::types::RECONCILED && self.conditions.is_none_or(|types| types.contains(&t));
            conds.retain(|c| c.get("type").and_then(|t| t.as_str()).is_some_and(owned));
        }
        v
    }
}

/// Who last changed the object's spec or metadata as the API server tells it: the newest
/// `managedFields` entries outside the operator's own managers and the status subresource, as
/// `manager (operation, time)` — several joined by ` or ` when they share that second (the API
/// server keeps times to the second). Names the field manager (kubectl, argocd-controller, ...);
/// the cluster's API audit log has the authenticated user behind it.
pub fn last_writer(meta: &kube::core::ObjectMeta) -> Option<String> {
    let entries = meta.managed_fields.iter().flatten();
    let theirs: Vec<_> = entries.filter(|e| e.subresource.as_deref().unwrap_or_default() != "status" && !e.manager.as_deref().unwrap_or_default().starts_with(crate::labels::FIELD_MANAGER)).collect();
    let newest = theirs.iter().filter_map(|e| e.time.as_ref().map(|t| t.0)).max();
    let mut last: Vec<String> = theirs
        .iter()
        .filter(|e| e.time.as_ref().map(|t| t.0) == newest)
        .map(|e| format!("{} ({}, {})", e.manager.as_deref().unwrap_or("unknown"), e.operation.as_deref().unwrap_or("?"), e.time.as_ref().map(|t| t.0.to_string()).unwrap_or_default()))
        .collect();
    last.sort();
    (!last.is_empty()).then(|| last.join(" or "))
}

/// Whether `generation` of the object `uid` is not recorded yet (now it is). The map is
/// forgotten past `REMEMBERED` objects: at worst one record is written twice.
fn first_record(ctx: &Context, uid: Option<&str>, generation: i64) -> bool {
    const REMEMBERED: usize = 100_000;
    let Some(uid) = uid else { return true };
    let mut seen = ctx.recorded_generations.lock().unwrap_or_else(|e| e.into_inner());
    if seen.len() >= REMEMBERED {
        seen.clear();
    }
    seen.insert(uid.to_string(), generation) != Some(generation)
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
pub async fn apply<K, S>(ctx: &Context, writer: &Writer, obj: &K, old: Option<&S>, new: &S) -> Result<(), kube::Error>
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
    let patch = serde_json::json!({ "apiVersion": K::api_version(&()), "kind": K::kind(&()), "status": new });
    // The answer carries managedFields, which the caches strip (crate::lean).
    let written = api.patch_status(&obj.name_any(), &PatchParams::apply(writer.manager).force(), &Patch::Apply(&patch)).await?;
    let observed = |v: Option<&serde_json::Value>| v.and_then(|v| v.get("observedGeneration")).and_then(serde_json::Value::as_i64);
    if let Some(generation) = observed(Some(&new)).filter(|g| observed(old.as_ref()) != Some(*g) && first_record(ctx, obj.meta().uid.as_deref(), *g)) {
        let record = serde_json::json!({ "kind": K::kind(&()), "namespace": obj.namespace(), "name": obj.name_any(), "generation": generation, "changedBy": last_writer(written.meta()) });
        ctx.events.record("object.generation", record);
    }
    let before = old.as_ref().map(conditions_of).unwrap_or_default();
    for note in crate::events::condition_changes(&before, &conditions_of(&new)) {
        ctx.events.publish(&obj.object_ref(&()), &note).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, Time};

    fn entry(manager: &str, operation: &str, time: &str, subresource: Option<&str>) -> ManagedFieldsEntry {
        let time: Time = serde_json::from_value(serde_json::json!(time)).unwrap();
        ManagedFieldsEntry { manager: Some(manager.into()), operation: Some(operation.into()), time: Some(time), subresource: subresource.map(String::from), ..Default::default() }
    }

    #[test]
    fn the_last_writer_is_the_newest_foreign_manager_and_ties_name_them_all() {
        let mut meta = kube::core::ObjectMeta::default();
        assert_eq!(super::last_writer(&meta), None);
        meta.managed_fields = Some(vec![
            entry("argocd-controller", "Apply", "2027-01-01T00:00:00Z", None),
            entry("kubectl-patch", "Update", "2027-01-01T00:00:05Z", None),
            entry("cascade-operator", "Apply", "2027-01-01T00:00:09Z", None),
            entry("someone", "Update", "2027-01-01T00:00:09Z", Some("status")),
        ]);
        assert_eq!(super::last_writer(&meta).as_deref(), Some("kubectl-patch (Update, 2027-01-01T00:00:05Z)"));
        meta.managed_fields.as_mut().unwrap().push(entry("cascade-lockdown", "Update", "2027-01-01T00:00:05Z", None));
        assert_eq!(super::last_writer(&meta).as_deref(), Some("cascade-lockdown (Update, 2027-01-01T00:00:05Z) or kubectl-patch (Update, 2027-01-01T00:00:05Z)"));
    }
}
