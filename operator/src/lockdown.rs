//! Incident switches for one tenant. **Lockdown** records the tenant in `spec.lockdown` of every
//! RelayPool (visible to GitOps as a diff; commit it or let it stand): the evaluation then
//! refuses every API key of the tenant and marks it `held` in the bundle, so each relay refuses
//! its keys and holds its queued mail (kept, neither delivered nor expired) as soon as the
//! bundle reaches it (its Secret watch: well under 5 s). **Unlock** removes the entry.
//! **Emergency rotation** asks for a new DKIM key on every DkimKey of the tenant (the rotate
//! annotation) and deletes every API key's credentials Secret, so the operator issues a new
//! secret for each key id at once.

use crate::api_key::SECRET_LABEL;
use cascade_crds::v1alpha1::{ApiKey, DkimKey, RelayPool};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::ResourceExt;

/// `lockdown`'s arguments (the operator binary and the kubectl plugin take the same).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The tenant (namespace).
    pub tenant: String,
    /// Why (recorded with the time).
    #[arg(long, default_value = "incident")]
    pub reason: String,
    /// Emergency rotation as well: every DKIM key and API key secret of the tenant.
    #[arg(long)]
    pub rotate: bool,
}

/// The field manager of these changes: the audit trail's `changedBy` (see [`crate::status::last_writer`]).
pub const MANAGER: &str = "cascade-lockdown";

fn by(manager: &str) -> PatchParams {
    PatchParams { field_manager: Some(manager.into()), ..Default::default() }
}

fn merge(client: &kube::Client, pool: &RelayPool) -> Api<RelayPool> {
    Api::namespaced(client.clone(), &pool.namespace().unwrap_or_default())
}

/// Puts `tenant` in lockdown in every RelayPool; returns the pools (`namespace/name`).
pub async fn lockdown(client: &kube::Client, tenant: &str, reason: &str, now: u64) -> Result<Vec<String>, kube::Error> {
    let value = format!("{} at {}", reason.trim(), cascade_core::time::rfc3339_utc(now));
    set(client, tenant, serde_json::Value::String(value.chars().take(256).collect())).await
}

/// Lifts the lockdown of `tenant` in every RelayPool; returns the pools that had it.
pub async fn unlock(client: &kube::Client, tenant: &str) -> Result<Vec<String>, kube::Error> {
    set(client, tenant, serde_json::Value::Null).await
}

async fn set(client: &kube::Client, tenant: &str, value: serde_json::Value) -> Result<Vec<String>, kube::Error> {
    let mut changed = Vec::new();
    for pool in Api::<RelayPool>::all(client.clone()).list(&ListParams::default()).await?.items {
        if value.is_null() && !pool.spec.lockdown.contains_key(tenant) {
            continue;
        }
        let patch = serde_json::json!({ "spec": { "lockdown": { tenant: value } } });
        merge(client, &pool).patch(&pool.name_any(), &by(MANAGER), &Patch::Merge(&patch)).await?;
        changed.push(format!("{}/{}", pool.namespace().unwrap_or_default(), pool.name_any()));
    }
    Ok(changed)
}

/// What an emergency rotation asked for.
#[derive(Debug, Default, serde::Serialize)]
pub struct Rotated {
    pub dkim_keys: Vec<String>,
    pub api_keys: Vec<String>,
}

/// Rotates every DKIM key and every API key secret of `tenant` at once.
pub async fn rotate_all(client: &kube::Client, tenant: &str, now: u64) -> Result<Rotated, kube::Error> {
    let mut out = Rotated::default();
    let dkim: Api<DkimKey> = Api::namespaced(client.clone(), tenant);
    for key in dkim.list(&ListParams::default()).await?.items {
        let patch = serde_json::json!({ "metadata": { "annotations": { crate::dkim_key::ROTATE_ANNOTATION: format!("emergency-{now}") } } });
        dkim.patch(&key.name_any(), &by(MANAGER), &Patch::Merge(&patch)).await?;
        out.dkim_keys.push(key.name_any());
    }
    let secrets: Api<Secret> = Api::namespaced(client.clone(), tenant);
    for key in Api::<ApiKey>::namespaced(client.clone(), tenant).list(&ListParams::default()).await?.items {
        let name = crate::render::evaluate::credentials_secret(&key.name_any());
        let ours = secrets.get_opt(&name).await?.is_some_and(|s| s.labels().get(SECRET_LABEL) == Some(&key.name_any()));
        if ours {
            secrets.delete(&name, &DeleteParams::default()).await?;
            out.api_keys.push(key.name_any());
        }
    }
    Ok(out)
}
