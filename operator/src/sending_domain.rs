//! The SendingDomain controller: checks each domain in DNS (SPF, DKIM, DMARC; see [`crate::dns`])
//! and writes one condition per check with its own field manager, next to the `Ready` and
//! `DomainConflict` conditions the RelayPool controller owns (which reads these to decide
//! `Ready` and whether the relays may send). Re-checks on a schedule: hourly while everything
//! passes, with backoff while something fails, at once when the domain or its DkimKeys change.
//! It also releases deleted domains whose pool is gone.

use crate::controller::{apply_status, ReconcileError, Writer};
use crate::dns::checks::{Check, DKIM, DMARC, RETURN_PATH, SPF};
use crate::render::evaluate::signing_keys;
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

/// When to check again.
#[derive(Clone, Copy, Debug)]
pub struct Recheck {
    /// While every check passes.
    pub passing: Duration,
    /// Backoff bounds while a check fails or DNS does not answer.
    pub min: Duration,
    pub max: Duration,
}

impl Default for Recheck {
    fn default() -> Self {
        Self { passing: Duration::from_secs(3600), min: Duration::from_secs(30), max: Duration::from_secs(3600) }
    }
}

impl Recheck {
    /// The delay after these checks: `passing`, or half the time the oldest failure has lasted
    /// (so a fix is seen soon after a change, and a long-broken domain is not hammered), within
    /// `min`..`max`. Pure.
    pub fn after(&self, checks: &[Check], failing_for: Duration) -> Duration {
        if checks.iter().all(|c| c.passed == Some(true)) {
            return self.passing;
        }
        (failing_for / 2).clamp(self.min, self.max)
    }
}

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

    let now_unix = cascade_relay::time::now_unix();
    let now = cascade_relay::time::rfc3339_utc(now_unix);
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
    apply_status(&ctx, &DNS_WRITER, &*d, "SendingDomain", d.status.as_ref(), &st).await?;
    let failing_since = st
        .conditions
        .iter()
        .filter(|c| [SPF, DKIM, DMARC, RETURN_PATH].contains(&c.type_.as_str()) && c.status != conditions::TRUE)
        .filter_map(|c| cascade_relay::time::parse_rfc3339_utc(&c.last_transition_time))
        .min()
        .unwrap_or(now_unix);
    Ok(Action::requeue(ctx.dns_recheck.after(&checks, Duration::from_secs(now_unix.saturating_sub(failing_since)))))
}

pub fn error_policy(d: Arc<SendingDomain>, error: &ReconcileError, ctx: Arc<Context>) -> Action {
    crate::controller::record_error(&ctx, "SendingDomain", &d.name_any(), error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(passed: Option<bool>) -> Check {
        Check { type_: SPF, passed, reason: "r".into(), message: "m".into() }
    }

    #[test]
    fn rechecks_back_off_while_failing() {
        let r = Recheck::default();
        let s = Duration::from_secs;
        assert_eq!(r.after(&[check(Some(true)), check(Some(true))], s(0)), s(3600));
        assert_eq!(r.after(&[check(Some(true)), check(Some(false))], s(0)), s(30));
        assert_eq!(r.after(&[check(Some(false))], s(600)), s(300));
        assert_eq!(r.after(&[check(None)], s(86_400)), s(3600));
    }
}
