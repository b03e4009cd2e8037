//! The ApiKey controller. gather: the Secret `<name>-credentials` → evaluate: the status
//! ([`evaluate::api_key_status`], with the relays' checks of [`evaluate::api_key_problem`]) →
//! apply: create the credentials once (≥ 256-bit secret with the `cascade_sk_` prefix, for the
//! key's owner, with the integrity mark of [`crate::credentials`]; never rewritten, so the
//! password stays valid), then server-side apply the status only when it differs. A Secret of
//! that name the operator did not issue is refused (`InvalidSpec`) and left alone. Then the
//! connection Secret for applications ([`crate::connection`]). Keys are requeued at their expiry.

use crate::error::ReconcileError;
use crate::events::Note;
use crate::render::evaluate;
use crate::Context;
use cascade_core::secret::{format_secret_hash, hash_secret, new_api_key};
use cascade_crds::conditions::reasons;
use cascade_crds::v1alpha1::ApiKey;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use std::sync::Arc;
use std::time::Duration;

/// The label on the Secrets this controller writes (value: the owner's name).
pub const SECRET_LABEL: &str = "cascade-mail.com/api-key";

/// Everything in an ApiKey status but `suspension` (see [`crate::suspensions`]).
const WRITER: crate::status::Writer =
    crate::status::Writer { manager: crate::labels::FIELD_MANAGER, fields: Some(&["observedGeneration", "keyId", "fingerprint", "state", "conditions"]), conditions: None };
pub async fn reconcile(key: Arc<ApiKey>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let _timer = ctx.metrics.reconcile("ApiKey");
    let ns = key.namespace().unwrap_or_default();
    let name = key.name_any();
    let secret = evaluate::credentials_secret(&name);
    let now_unix = ctx.clock.now();
    let now = cascade_core::time::rfc3339_utc(now_unix);
    let (username, hash, password) = match ctx.secrets.api(&ns).get_opt(&secret).await? {
        Some(s) => match crate::credentials::verify(&ctx.master, &key, &s) {
            Ok((user, hash)) => (user, hash, crate::secrets::data_of(&s).remove("password").unwrap_or_default()),
            // Someone else's Secret under our name: refused, never overwritten (deleting it
            // lets the operator issue credentials).
            Err(why) => {
                let status = evaluate::refused_status(&key, &why, &now);
                crate::status::apply(&ctx, &WRITER, &*key, key.status.as_ref(), &status).await?;
                return Ok(Action::requeue(Duration::from_secs(3600)));
            }
        },
        None => {
            let creds = new_api_key()?;
            let data = crate::credentials::data(&ctx.master, &key, &creds).map_err(|source| ReconcileError::Seal { what: "API key credentials mark".into(), source })?;
            let labels = crate::labels::managed(&[(SECRET_LABEL, &name)]);
            ctx.secrets.apply(&ns, &secret, &data, labels, key.controller_owner_ref(&())).await?;
            tracing::info!(namespace = %ns, api_key = %name, key_id = %creds.username, "API key credentials created");
            let note = Note::normal(reasons::CREDENTIALS_ISSUED, "IssueCredentials", format!("key {} issued; credentials in Secret {secret}", creds.username));
            ctx.events.publish(&key.object_ref(&()), &note).await;
            let hash = format_secret_hash(&hash_secret(&creds.password));
            (creds.username, hash, creds.password.into_bytes())
        }
    };
    // The checks the relays apply, per key: a bad key is refused here alone, naming the field.
    let problem = evaluate::api_key_problem(&key, &username);
    let pools = serving(&ctx, &ns).await?;
    let over = beyond_quota(&ctx, &key, &pools).await?;
    let (mut status, _refused) = evaluate::api_key_status(&key, &username, &hash, problem.clone().or(over.clone()), now_unix, &now);
    if let Some(over) = over.as_deref().filter(|_| problem.is_none()) {
        evaluate::quota_exceeded(&key, &mut status, over, &now);
    }
    crate::status::apply(&ctx, &WRITER, &*key, key.status.as_ref(), &status).await?;
    let connected = crate::connection::ensure(&ctx, &key, pools.0.first(), &username, &password).await?;
    // Wake up when the key expires, so its state flips on time; soon while the pool has no
    // certificate for the connection Secret yet.
    let until_expiry = key.spec.expires_at.as_deref().and_then(cascade_core::time::parse_rfc3339).filter(|t| *t > now_unix).map(|t| t - now_unix + 1);
    let wake = until_expiry.unwrap_or(3600).min(if connected { 3600 } else { 10 });
    Ok(Action::requeue(Duration::from_secs(wake)))
}

/// The pools whose `tenants` select namespace `ns` (sorted by namespace and name), and the
/// namespace's labels.
pub(crate) async fn serving(ctx: &Context, ns: &str) -> Result<(Vec<cascade_crds::v1alpha1::RelayPool>, std::collections::BTreeMap<String, String>), kube::Error> {
    use k8s_openapi::api::core::v1::Namespace;
    use kube::api::{Api, ListParams};
    let caches = ctx.caches().await;
    let mut pools = crate::caches::all(&caches.pools);
    let labels = match pools.iter().any(|p| !p.spec.tenants.match_labels.is_empty()) {
        // `list` by name: the operator may list namespaces, not get them.
        true => {
            let found = Api::<Namespace>::all(ctx.client.clone()).list(&ListParams::default().fields(&format!("metadata.name={ns}"))).await?;
            found.items.into_iter().next().and_then(|n| n.metadata.labels).unwrap_or_default()
        }
        false => Default::default(),
    };
    pools.retain(|p| p.spec.tenants.selects(ns, &labels));
    pools.sort_by_key(|p| (p.namespace(), p.name_any()));
    Ok((pools, labels))
}

/// Why `key` is beyond the smallest `limits.tenantMaxApiKeys` of the pools serving its
/// namespace (the pools leave it out of their bundles likewise), if it is.
async fn beyond_quota(ctx: &Context, key: &ApiKey, (pools, labels): &(Vec<cascade_crds::v1alpha1::RelayPool>, std::collections::BTreeMap<String, String>)) -> Result<Option<String>, kube::Error> {
    let ns = key.namespace().unwrap_or_default();
    let Some(max) = evaluate::quota::api_key_quota(pools, &ns, labels) else { return Ok(None) };
    // The namespace's keys from the cache (no list per key, no copies).
    let caches = ctx.caches().await;
    let all = caches.api_keys.state();
    let siblings: Vec<&ApiKey> = all.iter().map(|k| &**k).filter(|k| k.namespace().as_deref() == Some(ns.as_str())).collect();
    let rank = evaluate::quota::ranks(siblings.iter().copied()).get(&evaluate::key_of(key)).copied().unwrap_or(siblings.len());
    Ok((rank >= max as usize).then(|| evaluate::quota::message(&ns, siblings.len(), max, "limits.tenantMaxApiKeys", "ApiKeys")))
}

pub fn error_policy(key: Arc<ApiKey>, error: &ReconcileError, ctx: Arc<Context>) -> Action {
    crate::failure::record(&ctx, "ApiKey", &*key, error)
}
