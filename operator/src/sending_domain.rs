//! The SendingDomain controller: checks each domain in DNS (SPF, DKIM, DMARC; see [`crate::dns`])
//! and writes one condition per check with its own field manager, next to the `Ready` and
//! `DomainConflict` conditions the RelayPool controller owns (which reads these to decide
//! `Ready` and whether the relays may send). Re-checks on a schedule: hourly while everything
//! passes, with backoff while something fails, at once when the domain or its DkimKeys change.
//! It also releases deleted domains whose pool is gone.

use crate::dns::checks::{DKIM, DMARC, RETURN_PATH, SPF};
use crate::error::ReconcileError;
use crate::render::evaluate::signing_keys;
use crate::status::Writer;
use crate::Context;
use cascade_crds::conditions;
use cascade_crds::v1alpha1::{DkimKey, SendingDomain};
use kube::api::{Api, ListParams};
use kube::runtime::controller::Action;
use kube::ResourceExt;
use std::sync::Arc;
use std::time::Duration;

/// The DNS checker owns the check conditions of SendingDomain statuses.
pub const DNS_WRITER: Writer = Writer { manager: "cascade-operator-dns", fields: Some(&["conditions"]), conditions: Some(&[SPF, DKIM, DMARC, RETURN_PATH]) };

pub async fn reconcile(d: Arc<SendingDomain>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let _timer = ctx.metrics.reconcile("SendingDomain");
    if d.metadata.deletion_timestamp.is_some() {
        crate::domain_cleanup::release_orphan(&ctx, &d).await?;
        return Ok(Action::await_change());
    }
    let ns = d.namespace().unwrap_or_default();
    let keys = Api::<DkimKey>::namespaced(ctx.client.clone(), &ns).list(&ListParams::default()).await?.items;
    let signing = signing_keys(&d, &keys).unwrap_or_default();
    let checks = crate::dns::domain_checks(&ctx.dns, &d, &signing).await;

    let now_unix = ctx.clock.now();
    let now = cascade_core::time::rfc3339_utc(now_unix);
    let generation = d.metadata.generation.unwrap_or(0);
    let mut st = d.status.clone().unwrap_or_default();
    for c in &checks {
        conditions::set_status(&mut st.conditions, c.type_, c.passed, &c.reason, &c.message, generation, &now);
        let value = match c.passed {
            Some(true) => 1,
            Some(false) => 0,
            None => -1,
        };
        ctx.metrics.dns_checks.with_label_values(&[&ns, &d.spec.domain, c.type_]).set(value);
    }
    if d.spec.return_path.is_none() {
        conditions::remove(&mut st.conditions, RETURN_PATH);
    }
    crate::status::apply(&ctx, &DNS_WRITER, &*d, d.status.as_ref(), &st).await?;
    let failing_since = st
        .conditions
        .iter()
        .filter(|c| [SPF, DKIM, DMARC, RETURN_PATH].contains(&c.type_.as_str()) && c.status != conditions::TRUE)
        .filter_map(|c| cascade_core::time::parse_rfc3339(&c.last_transition_time))
        .min()
        .unwrap_or(now_unix);
    Ok(Action::requeue(ctx.dns_recheck.after(&checks, Duration::from_secs(now_unix.saturating_sub(failing_since)))))
}

pub fn error_policy(d: Arc<SendingDomain>, error: &ReconcileError, ctx: Arc<Context>) -> Action {
    crate::error::record(&ctx.metrics, "SendingDomain", &d.name_any(), error)
}
