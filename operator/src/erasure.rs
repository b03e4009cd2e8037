//! The ErasureRequest controller: an address leaves a tenant's data everywhere Cascade keeps
//! it. Every relay of every pool serving the tenant gets `POST /erase` on its admin listener
//! (mutual TLS; queued mail, message statuses, the suppression list, pending webhook events —
//! see the relay's `erase` module); the counts add up in the status, which also names the relays
//! that answered, so a retry (every 30 s, `Ready=False` `RelaysUnreachable`) asks only the
//! others. Once all answered, the tenant's backup data key is destroyed (`shredBackups`,
//! [`crate::backup::tenant_keys`]), the status says `Done`, and the audit trail records it with
//! the address masked. A done request is never run again.
//!
//! Each erasure makes every relay read its whole spool, and a tenant can create requests at
//! will: a namespace's requests run one at a time, oldest first (the others say `Waiting`), so
//! a flood of them costs the relays one scan at a time (a ResourceQuota on
//! `count/erasurerequests.cascade-mail.com` bounds how many may wait).

use crate::error::ReconcileError;
use crate::events::Note;
use crate::Context;
use cascade_crds::conditions;
use cascade_crds::v1alpha1::{ErasureRequest, ErasureRequestStatus};
use kube::api::{Api, ListParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use std::sync::Arc;
use std::time::Duration;

pub const DONE: &str = "Done";

/// One relay's answer.
#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Counts {
    queued_messages_purged: u64,
    queued_recipients_erased: u64,
    statuses_masked: u64,
    suppressions_removed: u64,
    #[serde(default)]
    events_masked: u64,
}

pub use cascade_core::audit::mask;

fn add(status: &mut ErasureRequestStatus, relay: String, c: &Counts) {
    status.erased_on.push(relay);
    status.relays = status.erased_on.len() as u32;
    status.queued_messages_purged += c.queued_messages_purged;
    status.queued_recipients_erased += c.queued_recipients_erased;
    status.statuses_masked += c.statuses_masked;
    status.suppressions_removed += c.suppressions_removed;
    status.events_masked += c.events_masked;
}

/// The request of the same namespace that runs before `req`: the oldest one not done, when it is
/// older (creation time, then name) than `req`. Pure.
pub fn runs_first<'a>(req: &ErasureRequest, all: &'a [ErasureRequest]) -> Option<&'a ErasureRequest> {
    let order = |r: &ErasureRequest| (r.metadata.creation_timestamp.clone(), r.name_any());
    let done = |r: &ErasureRequest| r.status.as_ref().and_then(|s| s.phase.as_deref()) == Some(DONE);
    all.iter().filter(|r| !done(r)).min_by_key(|r| order(r)).filter(|first| order(first) < order(req))
}

/// Asks every relay of the tenant's pools that has not answered yet; the ones still missing.
async fn fan_out(ctx: &Context, ns: &str, body: &serde_json::Value, status: &mut ErasureRequestStatus, now_unix: u64) -> Result<Vec<String>, ReconcileError> {
    let mut missing = Vec::new();
    for pool in crate::api_key::serving(ctx, ns).await?.0 {
        let (pns, pname) = (pool.namespace().unwrap_or_default(), pool.name_any());
        let admin = ctx.secrets.get(&pns, &crate::admin_authority::secret_name(&pname)).await?;
        let tls = admin.as_ref().and_then(|a| crate::admin_authority::operator_client(a, &ctx.master, &pns, &pname, now_unix));
        let addrs = crate::relay_admin::addrs(ctx, &pool).await;
        if addrs.is_empty() || (tls.is_none() && ctx.relay_http.is_none()) {
            missing.push(format!("{pns}/{pname}: no relay reachable"));
        }
        for addr in addrs {
            let relay = format!("{pns}/{pname}/{addr}");
            if status.erased_on.contains(&relay) {
                continue;
            }
            match crate::relay_admin::post_json::<Counts>(addr, tls.as_ref(), "/erase", body, Duration::from_secs(60)).await {
                Some(c) => add(status, relay, &c),
                None => missing.push(format!("{pns}/{pname}: relay {addr} did not answer")),
            }
        }
    }
    Ok(missing)
}

pub async fn reconcile(req: Arc<ErasureRequest>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let old = req.status.clone().unwrap_or_default();
    if old.phase.as_deref() == Some(DONE) {
        return Ok(Action::await_change());
    }
    let ns = req.namespace().unwrap_or_default();
    let now_unix = ctx.clock.now();
    let now = cascade_core::time::rfc3339_utc(now_unix);
    let generation = req.metadata.generation.unwrap_or(0);
    let mut status = old.clone();
    let all = Api::<ErasureRequest>::namespaced(ctx.client.clone(), &ns).list(&ListParams::default()).await?;
    if let Some(first) = runs_first(&req, &all.items) {
        status.phase = Some("Waiting".into());
        conditions::set(&mut status.conditions, "Ready", false, "Waiting", &format!("waits for {}, which runs first", first.name_any()), generation, &now);
        crate::status::apply(&ctx, &crate::status::WHOLE, &*req, req.status.as_ref(), &status).await?;
        return Ok(Action::requeue(Duration::from_secs(10)));
    }
    let body = serde_json::json!({ "address": req.spec.address, "tenant": ns });
    let missing = fan_out(&ctx, &ns, &body, &mut status, now_unix).await?;
    if !missing.is_empty() {
        status.phase = Some("Pending".into());
        let why = format!("{} relay(s) erased it; retrying: {}", status.relays, missing.join("; "));
        conditions::set(&mut status.conditions, "Ready", false, "RelaysUnreachable", &why, generation, &now);
        crate::status::apply(&ctx, &crate::status::WHOLE, &*req, req.status.as_ref(), &status).await?;
        return Ok(Action::requeue(Duration::from_secs(30)));
    }
    if req.spec.shred_backups {
        status.backups_shredded = crate::backup::erase_tenant(&ctx.client, &ctx.namespace, &ns).await.map_err(|e| ReconcileError::Shred { tenant: ns.clone(), reason: e.to_string() })?;
    }
    status.phase = Some(DONE.into());
    status.completed_at = Some(now.clone());
    let summary = format!(
        "erased on {} relay(s): {} queued message(s) purged, {} queued recipient(s) erased, {} suppression(s) removed, {} pending event(s) masked{}",
        status.relays,
        status.queued_messages_purged,
        status.queued_recipients_erased,
        status.suppressions_removed,
        status.events_masked,
        if status.backups_shredded { "; earlier backups of this tenant can no longer be read" } else { "" }
    );
    conditions::set(&mut status.conditions, "Ready", true, "Erased", &summary, generation, &now);
    crate::status::apply(&ctx, &crate::status::WHOLE, &*req, req.status.as_ref(), &status).await?;
    ctx.events.record("erasure", serde_json::json!({ "namespace": ns, "name": req.name_any(), "address": mask(&req.spec.address), "status": &status }));
    ctx.events.publish(&req.object_ref(&()), &Note::normal("Erased", "Erase", summary)).await;
    Ok(Action::await_change())
}

/// `erase --address`: an ErasureRequest in the tenant's namespace, then its outcome (up to 2 min).
pub fn request_and_wait(tenant: &str, address: &str) -> anyhow::Result<()> {
    use cascade_crds::v1alpha1::ErasureRequest;
    use kube::api::{Api, PostParams};
    tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
        let client = kube::Client::try_default().await?;
        let api: Api<ErasureRequest> = Api::namespaced(client, tenant);
        let req: ErasureRequest = serde_json::from_value(serde_json::json!({ "apiVersion": "cascade-mail.com/v1alpha1", "kind": "ErasureRequest",
            "metadata": { "generateName": "erasure-" }, "spec": { "address": address } }))?;
        let made = api.create(&PostParams::default(), &req).await?;
        let name = kube::ResourceExt::name_any(&made);
        println!("ErasureRequest {tenant}/{name} created for {}", mask(address));
        for _ in 0..240 {
            let st = api.get(&name).await?.status.unwrap_or_default();
            let ready = st.conditions.iter().find(|c| c.type_ == "Ready");
            if st.phase.as_deref() == Some(DONE) {
                println!("done: {}", ready.map(|c| c.message.as_str()).unwrap_or_default());
                println!("delete the request when you no longer need its record: kubectl -n {tenant} delete erasurerequest {name}");
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
        anyhow::bail!("ErasureRequest {tenant}/{name} is not done after 2 minutes (the operator retries; see kubectl -n {tenant} describe erasurerequest {name})")
    })
}

pub fn error_policy(req: Arc<ErasureRequest>, error: &ReconcileError, ctx: Arc<Context>) -> Action {
    crate::failure::record(&ctx, "ErasureRequest", &*req, error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(name: &str, created: &str, phase: Option<&str>) -> ErasureRequest {
        serde_json::from_value(serde_json::json!({ "apiVersion": "cascade-mail.com/v1alpha1", "kind": "ErasureRequest",
            "metadata": { "name": name, "namespace": "shop", "creationTimestamp": created },
            "spec": { "address": "gone@dest.test" }, "status": { "phase": phase } }))
        .unwrap()
    }

    #[test]
    fn a_namespace_runs_its_oldest_open_request_first() {
        let (a, b, c) = (request("a", "2026-12-01T10:00:00Z", None), request("b", "2026-12-01T10:00:00Z", None), request("c", "2026-12-01T09:00:00Z", Some(DONE)));
        let all = [c.clone(), b.clone(), a.clone()];
        assert_eq!(runs_first(&a, &all).map(|r| r.name_any()), None, "a is the oldest open one (same second: by name)");
        assert_eq!(runs_first(&b, &all).map(|r| r.name_any()).as_deref(), Some("a"));
        let newer = request("z", "2026-12-02T00:00:00Z", None);
        assert_eq!(runs_first(&newer, std::slice::from_ref(&newer)).map(|r| r.name_any()), None, "alone");
        let done_a = request("a", "2026-12-01T10:00:00Z", Some(DONE));
        assert_eq!(runs_first(&b, &[c, done_a, b.clone()]).map(|r| r.name_any()), None, "the older ones are done");
    }

    #[test]
    fn addresses_are_masked_as_the_relays_do() {
        assert_eq!(super::mask("gone@dest.test"), "g***@dest.test");
        assert_eq!(super::mask("nonsense"), "***");
    }
}
