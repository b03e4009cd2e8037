//! The ApiKey controller. gather: the Secret `<name>-credentials` → evaluate: the status
//! ([`evaluate::api_key_status`]) → apply: create the credentials once (≥ 256-bit secret with the
//! `cascade_sk_` prefix, for the key's owner; never rewritten, so the password stays valid), then
//! server-side apply the status only when it differs. Keys are requeued at their expiry.

use crate::error::ReconcileError;
use crate::events::Note;
use crate::render::evaluate;
use crate::secrets::SecretData;
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
    let field = |d: &SecretData, k: &str| d.get(k).map(|v| String::from_utf8_lossy(v).into_owned());
    let (username, password) = match ctx.secrets.get(&ns, &secret).await?.and_then(|d| field(&d, "username").zip(field(&d, "password"))) {
        Some(c) => c,
        None => {
            let creds = new_api_key()?;
            let data: SecretData = [("username".to_string(), creds.username.clone().into_bytes()), ("password".to_string(), creds.password.clone().into_bytes())].into();
            let labels = crate::labels::managed(&[(SECRET_LABEL, &name)]);
            ctx.secrets.apply(&ns, &secret, &data, labels, key.controller_owner_ref(&())).await?;
            tracing::info!(namespace = %ns, api_key = %name, key_id = %creds.username, "API key credentials created");
            let note = Note::normal(reasons::CREDENTIALS_ISSUED, "IssueCredentials", format!("key {} issued; credentials in Secret {secret}", creds.username));
            ctx.events.publish(&key.object_ref(&()), &note).await;
            (creds.username, creds.password)
        }
    };
    let now_unix = ctx.clock.now();
    let hash = format_secret_hash(&hash_secret(&password));
    let (status, _refused) = evaluate::api_key_status(&key, &username, &hash, None, now_unix, &cascade_core::time::rfc3339_utc(now_unix));
    crate::status::apply(&ctx, &WRITER, &*key, key.status.as_ref(), &status).await?;
    // Wake up when the key expires, so its state flips on time.
    let until_expiry = key.spec.expires_at.as_deref().and_then(cascade_core::time::parse_rfc3339).filter(|t| *t > now_unix).map(|t| t - now_unix + 1);
    Ok(Action::requeue(Duration::from_secs(until_expiry.unwrap_or(3600).min(3600))))
}

pub fn error_policy(key: Arc<ApiKey>, error: &ReconcileError, ctx: Arc<Context>) -> Action {
    crate::error::record(&ctx.metrics, "ApiKey", &key.name_any(), error)
}
