//! The DkimKey controller: gather the key's Secret `<name>-dkim` (one sealed private key per
//! generation, `<selector>.sealed`) and what DNS shows for each generation's record → advance the
//! lifecycle ([`crate::dkim_lifecycle`]) → apply: generate or destroy private keys (sealed under
//! the master key, bound to `<namespace>/<name>/<selector>`), then the status, Events for every
//! phase change, and the key age and rotation metrics. Time comes from the context's clock.

use crate::dkim_lifecycle::{self, Schedule};
use crate::error::ReconcileError;
use crate::events::Note;
use crate::secrets::SecretData;
use crate::Context;
use cascade_crds::conditions::{self, reasons, types};
use cascade_crds::v1alpha1::{DkimKey, KeyGeneration, KeyPhase};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use std::sync::Arc;
use std::time::Duration;

/// The label on the Secrets this controller writes (value: the owner's name).
pub const SECRET_LABEL: &str = "cascade-mail.com/dkim-key";
/// Annotate a DkimKey with a new value of this to rotate its key now.
pub const ROTATE_ANNOTATION: &str = "cascade-mail.com/rotate";

pub fn secret_name(key_name: &str) -> String {
    format!("{key_name}-dkim")
}

/// The Secret entry holding a generation's sealed private key.
pub fn sealed_entry(selector: &str) -> String {
    format!("{selector}.sealed")
}

/// What a generation's private key is sealed to: a copy under another name does not open.
pub fn seal_context(ns: &str, name: &str, selector: &str) -> String {
    format!("{ns}/{name}/{selector}")
}

/// A generation's private key (PEM), if its Secret entry opens.
pub fn private_key(master: &cascade_core::seal::KeyRing, data: &SecretData, ns: &str, name: &str, selector: &str) -> Option<Vec<u8>> {
    crate::master_key::open(master, &seal_context(ns, name, selector), data.get(&sealed_entry(selector))?).ok()
}

fn phase_value(p: KeyPhase) -> i64 {
    match p {
        KeyPhase::Pending => 0,
        KeyPhase::Active => 1,
        KeyPhase::Retiring => 2,
        KeyPhase::Retired => 3,
    }
}

pub async fn reconcile(dk: Arc<DkimKey>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let _timer = ctx.metrics.reconcile("DkimKey");
    let (ns, name) = (dk.namespace().unwrap_or_default(), dk.name_any());
    let now = ctx.clock.now();
    let now_s = cascade_core::time::rfc3339_utc(now);
    let generation = dk.metadata.generation.unwrap_or(0);
    let mut st = dk.status.clone().unwrap_or_default();
    st.observed_generation = generation;
    let schedule = match Schedule::of(&dk.spec) {
        Ok(s) => s,
        Err(e) => {
            conditions::set(&mut st.conditions, types::READY, false, reasons::INVALID_SPEC, &e, generation, &now_s);
            crate::status::apply(&ctx, &crate::status::WHOLE, &*dk, dk.status.as_ref(), &st).await?;
            return Ok(Action::requeue(Duration::from_secs(300)));
        }
    };
    let existing = ctx.secrets.get(&ns, &secret_name(&name)).await?.unwrap_or_default();
    let mut data = existing.clone();
    let mut gens = st.generations.clone();

    // A generation whose private key is gone (the Secret was deleted or damaged) cannot sign
    // again: it is retired at once and a replacement follows.
    let mut lost = Vec::new();
    for g in gens.iter_mut().filter(|g| g.phase != KeyPhase::Retired) {
        if private_key(&ctx.master, &data, &ns, &name, &g.selector).is_none() {
            g.phase = KeyPhase::Retired;
            g.retired_at = Some(now_s.clone());
            g.txt_value.clear();
            lost.push(g.selector.clone());
        }
    }

    // What DNS shows for the generations that wait for their record.
    let mut verified = std::collections::BTreeSet::new();
    for g in gens.iter().filter(|g| g.phase == KeyPhase::Pending) {
        let check = crate::dns::checks::dkim_key(&g.dns_name, Some(&g.txt_value), &ctx.dns.txt(&g.dns_name).await);
        if check.passed == Some(true) {
            verified.insert(g.selector.clone());
        }
    }
    let requested = dk.annotations().get(ROTATE_ANNOTATION).cloned();
    let force = requested.is_some() && requested != st.last_forced_rotation;
    let steps = dkim_lifecycle::advance(&dk.spec, schedule, &mut gens, |s| verified.contains(s), force, now);
    if force {
        st.last_forced_rotation = requested;
    }
    let mut notes = Vec::new();
    if let Some(next) = steps.generate.clone() {
        let (pem, public) = cascade_core::dkim_key::generate(dk.spec.algorithm)?;
        let sealed =
            crate::master_key::seal(&ctx.master, &seal_context(&ns, &name, &next.1), pem.as_bytes()).map_err(|source| ReconcileError::Seal { what: format!("DkimKey {ns}/{name}"), source })?;
        data.insert(sealed_entry(&next.1), sealed);
        let g = dkim_lifecycle::pending(&dk.spec, next, cascade_core::dkim_key::txt_record(dk.spec.algorithm, &public), now);
        notes.push(if lost.is_empty() {
            Note::normal(
                reasons::KEY_GENERATED,
                "GenerateKey",
                format!("{:?} key {} generated (sealed in Secret {}); publish {:?} at {}", dk.spec.algorithm, g.selector, secret_name(&name), g.txt_value, g.dns_name),
            )
        } else {
            Note::warning(
                reasons::KEY_REGENERATED,
                "GenerateKey",
                format!("the private key of {} was lost; new key {} generated: publish {:?} at {}", lost.join(", "), g.selector, g.txt_value, g.dns_name),
            )
        });
        gens.push(g);
    }
    for s in steps.destroy.iter().chain(&lost) {
        data.remove(&sealed_entry(s));
    }
    if data != existing {
        let labels = [(crate::labels::MANAGED_BY.to_string(), crate::labels::FIELD_MANAGER.to_string()), (SECRET_LABEL.to_string(), name.clone())].into();
        ctx.secrets.apply(&ns, &secret_name(&name), &data, labels, dk.controller_owner_ref(&())).await?;
    }
    for (selector, phase) in &steps.transitions {
        let (reason, text) = match phase {
            KeyPhase::Active => ("KeyActivated", "its record is verified; the relays sign with it"),
            KeyPhase::Retiring => ("KeyRetiring", "replaced by a newer key; keep its record published until it retires"),
            KeyPhase::Retired => ("KeyRetired", "private key destroyed; its record may be removed"),
            KeyPhase::Pending => ("KeyPending", "waiting for its record"),
        };
        notes.push(Note::normal(reason, "RotateKey", format!("{selector}: {text}")));
    }

    let signing = dkim_lifecycle::signing(&gens).cloned();
    st.current_selector = signing.as_ref().map(|g| g.selector.clone());
    st.dns_name = signing.as_ref().map(|g| g.dns_name.clone());
    st.txt_value = signing.as_ref().map(|g| g.txt_value.clone());
    let has_active = gens.iter().any(|g| g.phase == KeyPhase::Active);
    st.next_selector = gens.iter().rev().find(|g| g.phase == KeyPhase::Pending && has_active).map(|g| g.selector.clone());
    st.next_rotation = steps.next_rotation.map(cascade_core::time::rfc3339_utc);
    match signing.as_ref().filter(|g| g.phase == KeyPhase::Active) {
        Some(g) => conditions::set(&mut st.conditions, types::READY, true, reasons::ACTIVE, &format!("signing with {}; its record is verified", g.selector), generation, &now_s),
        None => {
            let msg = match &signing {
                Some(g) => format!("publish txtValue at dnsName ({}); the key becomes Active once DNS shows it", g.dns_name),
                None => "no key yet".to_string(),
            };
            conditions::set(&mut st.conditions, types::READY, false, reasons::PENDING, &msg, generation, &now_s)
        }
    }
    st.generations = gens;
    crate::status::apply(&ctx, &crate::status::WHOLE, &*dk, dk.status.as_ref(), &st).await?;
    for note in &notes {
        ctx.events.publish(&dk.object_ref(&()), note).await;
    }
    record_metrics(&ctx, &ns, &name, &st.generations, steps.next_rotation, now);

    // Pending records are looked for again soon; otherwise wake for the next due step.
    let wait = if st.generations.iter().any(|g: &KeyGeneration| g.phase == KeyPhase::Pending) {
        ctx.dns_recheck.min
    } else {
        Duration::from_secs(steps.next_event.map_or(3600, |t| t.saturating_sub(now)).clamp(1, 3600))
    };
    Ok(Action::requeue(wait))
}

fn record_metrics(ctx: &Context, ns: &str, name: &str, gens: &[KeyGeneration], next_rotation: Option<u64>, now: u64) {
    let m = &ctx.metrics;
    for g in gens {
        let labels = [ns, name, g.selector.as_str()];
        m.dkim_phase.with_label_values(&labels).set(phase_value(g.phase));
        let created = cascade_core::time::parse_rfc3339(&g.created_at).unwrap_or(now);
        m.dkim_age.with_label_values(&labels).set(now.saturating_sub(created) as i64);
    }
    if let Some(t) = next_rotation {
        m.dkim_next_rotation.with_label_values(&[ns, name]).set(t as i64);
    }
}

pub fn error_policy(dk: Arc<DkimKey>, error: &ReconcileError, ctx: Arc<Context>) -> Action {
    crate::error::record(&ctx.metrics, "DkimKey", &dk.name_any(), error)
}
