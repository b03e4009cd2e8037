//! The DkimKey controller. gather: the key's Secret `<name>-dkim` → evaluate: the status
//! ([`evaluate::dkim_key_status`]) → apply: create the key material when missing or unreadable
//! (the private key sealed under the master key, owned by the DkimKey), then server-side apply
//! the status only when it differs.

use crate::controller::{apply_status, ReconcileError};
use crate::render::evaluate;
use crate::secrets::SecretData;
use crate::events::Note;
use crate::Context;
use cascade_crds::v1alpha1::DkimKey;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use std::sync::Arc;
use std::time::Duration;


/// The label on the Secrets this controller writes (value: the owner's name).
pub const SECRET_LABEL: &str = "cascade-mail.com/dkim-key";
pub fn secret_name(key_name: &str) -> String {
    format!("{key_name}-dkim")
}

/// The public key of a readable key Secret, or `None` when it must be (re)generated.
fn public_of(data: &SecretData, dk: &DkimKey, ctx: &Context, context: &str) -> Option<String> {
    let pem = crate::master_key::open(&ctx.master, context, data.get("private.sealed")?).ok()?;
    cascade_relay::dkim::public_key_of(dk.spec.algorithm, &pem).ok()
}

pub async fn reconcile(dk: Arc<DkimKey>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let _timer = ctx.metrics.reconcile("DkimKey");
    let ns = dk.namespace().unwrap_or_default();
    let name = dk.name_any();
    let context = format!("{ns}/{name}");
    let existing = ctx.secrets.get(&ns, &secret_name(&name)).await?;
    let public = match existing.as_ref().and_then(|d| public_of(d, &dk, &ctx, &context)) {
        Some(p) => p,
        None => {
            let (pem, public) = cascade_relay::dkim::generate(dk.spec.algorithm).map_err(|e| ReconcileError::Key(e.to_string()))?;
            let sealed = crate::master_key::seal(&ctx.master, &context, pem.as_bytes()).map_err(|e| ReconcileError::Key(e.to_string()))?;
            let data: SecretData = [("private.sealed".to_string(), sealed), ("public".to_string(), public.clone().into_bytes())].into();
            let labels = [("app.kubernetes.io/managed-by".to_string(), "cascade-operator".to_string()), (SECRET_LABEL.to_string(), name.clone())].into();
            ctx.secrets.apply(&ns, &secret_name(&name), &data, labels, dk.controller_owner_ref(&())).await?;
            tracing::info!(namespace = %ns, dkim_key = %name, "DKIM key generated");
            // A key that had a published record before is a replacement the admin must act on.
            let replaced = existing.is_some() || dk.status.as_ref().is_some_and(|s| s.txt_value.is_some());
            let note = match replaced {
                false => Note::normal("KeyGenerated", "GenerateKey", format!("{:?} key generated; private key sealed in Secret {}", dk.spec.algorithm, secret_name(&name))),
                true => Note::warning("KeyRegenerated", "GenerateKey", format!("Secret {} held no usable key; a new key was generated: publish the new TXT record", secret_name(&name))),
            };
            ctx.events.publish(&dk.object_ref(&()), &note).await;
            public
        }
    };
    let now = cascade_relay::time::rfc3339_utc(cascade_relay::time::now_unix());
    let status = evaluate::dkim_key_status(&dk, &public, &now);
    apply_status(&ctx, &crate::controller::WHOLE, &*dk, "DkimKey", dk.status.as_ref(), &status).await?;
    Ok(Action::requeue(Duration::from_secs(3600)))
}

pub fn error_policy(dk: Arc<DkimKey>, error: &ReconcileError, ctx: Arc<Context>) -> Action {
    crate::controller::record_error(&ctx, "DkimKey", &dk.name_any(), error)
}
