//! The SendingDomain controller: checks each domain in DNS (its ownership challenge, SPF, DKIM,
//! DMARC; see [`crate::dns`]) and writes one condition per check, and `status.ownership`, with
//! its own field manager, next to the `Ready` and
//! `DomainConflict` conditions the RelayPool controller owns (which reads these to decide
//! `Ready` and whether the relays may send). Re-checks on a schedule: hourly while everything
//! passes, with backoff while something fails, at once when the domain or its DkimKeys change.
//! It also releases deleted domains whose pool is gone.

use crate::dns::checks::{Check, DKIM, DMARC, OWNERSHIP, RETURN_PATH, SPF};
use crate::error::ReconcileError;
use crate::render::evaluate::signing_keys;
use crate::status::Writer;
use crate::Context;
use cascade_crds::conditions;
use cascade_crds::v1alpha1::{DkimKey, SendingDomain, SendingDomainStatus};
use kube::api::{Api, ListParams};
use kube::runtime::controller::Action;
use kube::ResourceExt;
use std::sync::Arc;
use std::time::Duration;

/// The DNS checker owns the check conditions of SendingDomain statuses.
pub const DNS_WRITER: Writer = Writer { manager: "cascade-operator-dns", fields: Some(&["conditions", "ownership"]), conditions: Some(&[OWNERSHIP, SPF, DKIM, DMARC, RETURN_PATH]) };

/// The check conditions from this round of checks, and when to check again. Pure.
fn evaluate(d: &SendingDomain, checks: &[Check], recheck: &crate::dns::Recheck, now_unix: u64) -> (SendingDomainStatus, Duration) {
    let now = cascade_core::time::rfc3339_utc(now_unix);
    let generation = d.metadata.generation.unwrap_or(0);
    let mut st = d.status.clone().unwrap_or_default();
    let verified_at = ownership_verified_at(d, checks, &now);
    for c in checks {
        // A DNS failure says nothing about ownership: a proven claim stays proven.
        if c.type_ == OWNERSHIP && c.passed.is_none() && verified_at.is_some() {
            continue;
        }
        conditions::set_status(&mut st.conditions, c.type_, c.passed, &c.reason, &c.message, generation, &now);
    }
    st.ownership = Some(cascade_crds::v1alpha1::DomainOwnership { verified_at, ..crate::render::evaluate::ownership::challenge(d) });
    if d.spec.return_path.is_none() {
        conditions::remove(&mut st.conditions, RETURN_PATH);
    }
    let failing_since = st
        .conditions
        .iter()
        .filter(|c| [SPF, DKIM, DMARC, RETURN_PATH].contains(&c.type_.as_str()) && c.status != conditions::TRUE)
        .filter_map(|c| cascade_core::time::parse_rfc3339(&c.last_transition_time))
        .min()
        .unwrap_or(now_unix);
    let wait = recheck.after(checks, Duration::from_secs(now_unix.saturating_sub(failing_since)));
    (st, wait)
}

/// When the claim's challenge was first seen: kept while it passes (or DNS does not answer),
/// now when it first passes, gone once a check finds the record missing.
fn ownership_verified_at(d: &SendingDomain, checks: &[Check], now: &str) -> Option<String> {
    let current = crate::render::evaluate::ownership::challenge(d);
    let before = d.status.as_ref().and_then(|s| s.ownership.as_ref()).filter(|o| o.value == current.value).and_then(|o| o.verified_at.clone());
    match checks.iter().find(|c| c.type_ == OWNERSHIP).map(|c| c.passed) {
        Some(Some(true)) => Some(before.unwrap_or_else(|| now.to_string())),
        Some(Some(false)) => None,
        _ => before,
    }
}

/// gather (the namespace's DkimKeys, DNS) → evaluate → apply (the check conditions, metrics).
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
    let (st, wait) = evaluate(&d, &checks, &ctx.dns_recheck, ctx.clock.now());
    crate::status::apply(&ctx, &DNS_WRITER, &*d, d.status.as_ref(), &st).await?;
    for c in &checks {
        let value = match c.passed {
            Some(true) => 1,
            Some(false) => 0,
            None => -1,
        };
        ctx.metrics.dns_checks.with_label_values(&[&ns, &d.spec.domain, c.type_]).set(value);
    }
    Ok(Action::requeue(wait))
}

pub fn error_policy(d: Arc<SendingDomain>, error: &ReconcileError, ctx: Arc<Context>) -> Action {
    crate::failure::record(&ctx, "SendingDomain", &*d, error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(type_: &'static str, passed: Option<bool>) -> Check {
        Check { type_, passed, reason: "r".into(), message: "m".into() }
    }

    #[test]
    fn checks_become_conditions_and_failures_are_checked_again_sooner() {
        let mut d: SendingDomain = serde_json::from_value(serde_json::json!({"apiVersion": "cascade-mail.com/v1alpha1", "kind": "SendingDomain",
            "metadata": {"name": "shop", "namespace": "shop", "generation": 3}, "spec": {"domain": "shop.example", "relayPool": {"name": "main", "namespace": "cascade-system"}}}))
        .unwrap();
        let mut stale = SendingDomainStatus::default();
        conditions::set(&mut stale.conditions, RETURN_PATH, true, "r", "m", 1, "2026-01-01T00:00:00Z");
        d.status = Some(stale);
        let recheck = crate::dns::Recheck::default();
        let (st, wait) = evaluate(&d, &[check(SPF, Some(true)), check(DKIM, Some(true)), check(DMARC, Some(true))], &recheck, 1_800_000_000);
        assert_eq!(wait, recheck.passing);
        assert!(st.conditions.iter().all(|c| c.type_ != RETURN_PATH), "no return path: its condition goes");
        assert!(st.conditions.iter().all(|c| c.observed_generation == 3 && c.status == conditions::TRUE));
        let (st, wait) = evaluate(&d, &[check(SPF, Some(false)), check(DKIM, None)], &recheck, 1_800_000_000);
        assert_eq!(wait, recheck.min);
        assert!(st.conditions.iter().any(|c| c.type_ == DKIM && c.status == conditions::UNKNOWN));
    }
}
