//! The WebhookEndpoint controller: the signing secret — generated once into `<name>-webhook`
//! (key `secret`, `whsec_<base64>`), or read from the tenant's Secret `spec.secretName` —
//! then the status: `Ready` naming the Secret, or `InvalidSpec` naming the field when the
//! Secret is missing or holds no `whsec_` secret. The pools serving the namespace put valid
//! endpoints into their tenant's shard ([`endpoints`]); what the relays report of their
//! deliveries (last success and failure, a `410`) comes back through [`report_status`].

use crate::error::ReconcileError;
use crate::events::Note;
use crate::secrets::SecretData;
use crate::Context;
use cascade_crds::conditions::{self, reasons, types};
use cascade_crds::v1alpha1::{WebhookEndpoint, WebhookEndpointStatus};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use std::sync::Arc;
use std::time::Duration;

pub use crate::render::evaluate::webhooks::{endpoints, secret_name, secret_problem, SECRET_KEY};
/// The label on generated signing Secrets (value: the endpoint's name).
pub const SECRET_LABEL: &str = "cascade-mail.com/webhook-secret";

const WRITER: crate::status::Writer =
    crate::status::Writer { manager: crate::labels::FIELD_MANAGER, fields: Some(&["observedGeneration", "secretName", "conditions"]), conditions: Some(&[types::READY]) };
/// What the pools fold in from the relays' reports.
const REPORTS: crate::status::Writer =
    crate::status::Writer { manager: "cascade-operator-webhook-reports", fields: Some(&["lastSuccess", "lastFailure", "lastError", "disabledAt"]), conditions: Some(&[]) };

pub async fn reconcile(ep: Arc<WebhookEndpoint>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let _timer = ctx.metrics.reconcile("WebhookEndpoint");
    let (ns, name) = (ep.namespace().unwrap_or_default(), ep.name_any());
    let secret = secret_name(&ep);
    let mut data = ctx.secrets.get(&ns, &secret).await?;
    if data.is_none() && ep.spec.secret_name.is_none() {
        let fresh: SecretData = [(SECRET_KEY.to_string(), format!("{}\n", cascade_core::secret::new_webhook_secret()?).into_bytes())].into();
        let labels = crate::labels::managed(&[(SECRET_LABEL, &name)]);
        ctx.secrets.apply(&ns, &secret, &fresh, labels, ep.controller_owner_ref(&())).await?;
        let note = Note::normal(reasons::SECRET_ISSUED, "IssueSecret", format!("signing secret generated into Secret {secret}"));
        ctx.events.publish(&ep.object_ref(&()), &note).await;
        data = Some(fresh);
    }
    let generation = ep.metadata.generation.unwrap_or_default();
    let now = cascade_core::time::rfc3339_utc(ctx.clock.now());
    let mut status = ep.status.clone().unwrap_or_default();
    status.observed_generation = generation;
    status.secret_name = Some(secret.clone());
    let problem = match &data {
        None => Some(format!("secretName: Secret {secret} not found in {ns}")),
        Some(d) => secret_problem(Some(d)).map(|why| format!("secretName: Secret {secret}: {why}")),
    };
    match &problem {
        None => conditions::set(&mut status.conditions, types::READY, true, reasons::SECRET_READY, &format!("events are signed with the secret in Secret {secret}"), generation, &now),
        Some(why) => conditions::set(&mut status.conditions, types::READY, false, reasons::INVALID_SPEC, why, generation, &now),
    }
    crate::status::apply(&ctx, &WRITER, &*ep, ep.status.as_ref(), &status).await?;
    Ok(Action::requeue(Duration::from_secs(if problem.is_some() { 60 } else { 3600 })))
}

/// Writes the part of an endpoint's status the relays' reports make (see
/// [`crate::render::evaluate::webhooks::fold`]).
pub async fn report_status(ctx: &Context, ep: &WebhookEndpoint, new: &WebhookEndpointStatus) -> Result<(), kube::Error> {
    crate::status::apply(ctx, &REPORTS, ep, ep.status.as_ref(), new).await
}

pub fn error_policy(ep: Arc<WebhookEndpoint>, error: &ReconcileError, ctx: Arc<Context>) -> Action {
    crate::failure::record(&ctx, "WebhookEndpoint", &*ep, error)
}
