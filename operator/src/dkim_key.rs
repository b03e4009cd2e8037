//! The DkimKey controller. [`gather`]: the key's Secret `<name>-dkim` (one sealed private key per
//! generation, `<selector>.sealed`) and what DNS shows for each pending generation's record.
//! [`evaluate`] (pure, apart from drawing new keys): advance the lifecycle
//! ([`crate::dkim_lifecycle`]), generate or destroy private keys (sealed under the master key,
//! bound to `<namespace>/<name>/<selector>`), the status and an Event for every phase change.
//! [`reconcile`] applies: the Secret when it changed, the status, the Events, and the key age and
//! rotation metrics. Time comes from the context's clock.

use crate::dkim_lifecycle::{self, Schedule};
use crate::error::ReconcileError;
use crate::events::Note;
use crate::secrets::SecretData;
use crate::Context;
use cascade_core::seal::KeyRing;
use cascade_crds::conditions::{self, reasons, types};
use cascade_crds::v1alpha1::{DkimKey, DkimKeyStatus, KeyGeneration, KeyPhase};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use std::collections::BTreeSet;
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

/// What the controller reads: the key's Secret, and which pending generations DNS shows.
struct Observed {
    secret: SecretData,
    verified: BTreeSet<String>,
}

/// What the key should become.
struct Desired {
    /// The Secret's new data, when it changes.
    secret: Option<SecretData>,
    status: DkimKeyStatus,
    notes: Vec<Note>,
    next_rotation: Option<u64>,
    wait: Duration,
}

async fn gather(ctx: &Context, dk: &DkimKey) -> Result<Observed, kube::Error> {
    let secret = ctx.secrets.get(&dk.namespace().unwrap_or_default(), &secret_name(&dk.name_any())).await?.unwrap_or_default();
    let mut verified = BTreeSet::new();
    let gens = dk.status.as_ref().map(|s| s.generations.as_slice()).unwrap_or_default();
    for g in gens.iter().filter(|g| g.phase == KeyPhase::Pending) {
        let check = crate::dns::checks::dkim_key(&g.dns_name, Some(&g.txt_value), &ctx.dns.txt(&g.dns_name).await);
        if check.passed == Some(true) {
            verified.insert(g.selector.clone());
        }
    }
    Ok(Observed { secret, verified })
}

/// A generation whose private key is gone (the Secret was deleted or damaged) cannot sign
/// again: it is retired at once and a replacement follows. Returns the lost selectors.
fn retire_lost(master: &KeyRing, data: &SecretData, dk: &DkimKey, gens: &mut [KeyGeneration], now: &str) -> Vec<String> {
    let (ns, name) = (dk.namespace().unwrap_or_default(), dk.name_any());
    let mut lost = Vec::new();
    for g in gens.iter_mut().filter(|g| g.phase != KeyPhase::Retired) {
        if private_key(master, data, &ns, &name, &g.selector).is_none() {
            g.phase = KeyPhase::Retired;
            g.retired_at = Some(now.to_string());
            g.txt_value.clear();
            lost.push(g.selector.clone());
        }
    }
    lost
}

/// A new generation: its private key sealed into `data`, the Event that says so.
fn generate(master: &KeyRing, dk: &DkimKey, next: (u32, String, bool), lost: &[String], data: &mut SecretData, now: u64) -> Result<(KeyGeneration, Note), ReconcileError> {
    let (ns, name) = (dk.namespace().unwrap_or_default(), dk.name_any());
    let (pem, public) = cascade_core::dkim_key::generate(dk.spec.algorithm)?;
    let sealed = crate::master_key::seal(master, &seal_context(&ns, &name, &next.1), pem.as_bytes()).map_err(|source| ReconcileError::Seal { what: format!("DkimKey {ns}/{name}"), source })?;
    data.insert(sealed_entry(&next.1), sealed);
    let g = dkim_lifecycle::pending(&dk.spec, next, cascade_core::dkim_key::txt_record(dk.spec.algorithm, &public), now);
    let note = if lost.is_empty() {
        let text = format!("{:?} key {} generated (sealed in Secret {}); publish {:?} at {}", dk.spec.algorithm, g.selector, secret_name(&name), g.txt_value, g.dns_name);
        Note::normal(reasons::KEY_GENERATED, "GenerateKey", text)
    } else {
        let text = format!("the private key of {} was lost; new key {} generated: publish {:?} at {}", lost.join(", "), g.selector, g.txt_value, g.dns_name);
        Note::warning(reasons::KEY_REGENERATED, "GenerateKey", text)
    };
    Ok((g, note))
}

fn transition_note(selector: &str, phase: KeyPhase) -> Note {
    let (reason, text) = match phase {
        KeyPhase::Active => (reasons::KEY_ACTIVATED, "its record is verified; the relays sign with it"),
        KeyPhase::Retiring => (reasons::KEY_RETIRING, "replaced by a newer key; keep its record published until it retires"),
        KeyPhase::Retired => (reasons::KEY_RETIRED, "private key destroyed; its record may be removed"),
        KeyPhase::Pending => (reasons::KEY_PENDING, "waiting for its record"),
    };
    Note::normal(reason, "RotateKey", format!("{selector}: {text}"))
}

/// The status fields that follow from the generations, and `Ready`.
fn describe(st: &mut DkimKeyStatus, gens: Vec<KeyGeneration>, next_rotation: Option<u64>, generation: i64, now: &str, now_unix: u64) {
    let signing = dkim_lifecycle::signing(&gens).cloned();
    st.current_selector = signing.as_ref().map(|g| g.selector.clone());
    st.dns_name = signing.as_ref().map(|g| g.dns_name.clone());
    st.txt_value = signing.as_ref().map(|g| g.txt_value.clone());
    let has_active = gens.iter().any(|g| g.phase == KeyPhase::Active);
    st.next_selector = gens.iter().rev().find(|g| g.phase == KeyPhase::Pending && has_active).map(|g| g.selector.clone());
    st.next_rotation = next_rotation.map(cascade_core::time::rfc3339_utc);
    // The Active key is due and its successor's record has still not shown up in DNS.
    let stalled = next_rotation.filter(|due| now_unix >= *due).and_then(|_| gens.iter().rev().find(|g| g.phase == KeyPhase::Pending && has_active));
    match signing.as_ref().filter(|g| g.phase == KeyPhase::Active) {
        Some(g) if stalled.is_some() => {
            let next = stalled.expect("checked");
            let due = next_rotation.map(cascade_core::time::rfc3339_utc).unwrap_or_default();
            let msg =
                format!("rotation overdue since {due}: the record of {} ({}) is not in DNS yet; publish its txtValue there. Mail is still signed with {}", next.selector, next.dns_name, g.selector);
            conditions::set(&mut st.conditions, types::READY, false, reasons::ROTATION_STALLED, &msg, generation, now)
        }
        Some(g) => conditions::set(&mut st.conditions, types::READY, true, reasons::ACTIVE, &format!("signing with {}; its record is verified", g.selector), generation, now),
        None => {
            let msg = match &signing {
                Some(g) => format!("publish txtValue at dnsName ({}); the key becomes Active once DNS shows it", g.dns_name),
                None => "no key yet".to_string(),
            };
            conditions::set(&mut st.conditions, types::READY, false, reasons::PENDING, &msg, generation, now)
        }
    }
    st.generations = gens;
}

/// Advances the lifecycle. Pure, apart from drawing a new key when one is due.
fn evaluate(dk: &DkimKey, observed: Observed, master: &KeyRing, recheck: Duration, now: u64) -> Result<Desired, ReconcileError> {
    let now_s = cascade_core::time::rfc3339_utc(now);
    let generation = dk.metadata.generation.unwrap_or(0);
    let mut st = dk.status.clone().unwrap_or_default();
    st.observed_generation = generation;
    let schedule = match Schedule::of(&dk.spec) {
        Ok(s) => s,
        Err(e) => {
            conditions::set(&mut st.conditions, types::READY, false, reasons::INVALID_SPEC, &e, generation, &now_s);
            return Ok(Desired { secret: None, status: st, notes: vec![], next_rotation: None, wait: Duration::from_secs(300) });
        }
    };
    let mut data = observed.secret.clone();
    let mut gens = st.generations.clone();
    let lost = retire_lost(master, &data, dk, &mut gens, &now_s);
    let requested = dk.annotations().get(ROTATE_ANNOTATION).cloned();
    let force = requested.is_some() && requested != st.last_forced_rotation;
    let steps = dkim_lifecycle::advance(&dk.spec, schedule, &mut gens, |s| observed.verified.contains(s), force, now);
    if force {
        st.last_forced_rotation = requested;
    }
    let mut notes = Vec::new();
    if let Some(next) = steps.generate.clone() {
        let (g, note) = generate(master, dk, next, &lost, &mut data, now)?;
        notes.push(note);
        gens.push(g);
    }
    for s in steps.destroy.iter().chain(&lost) {
        data.remove(&sealed_entry(s));
    }
    notes.extend(steps.transitions.iter().map(|(selector, phase)| transition_note(selector, *phase)));
    describe(&mut st, gens, steps.next_rotation, generation, &now_s, now);
    // Pending records are looked for again soon; otherwise wake for the next due step.
    let wait = if st.generations.iter().any(|g| g.phase == KeyPhase::Pending) { recheck } else { Duration::from_secs(steps.next_event.map_or(3600, |t| t.saturating_sub(now)).clamp(1, 3600)) };
    let secret = (data != observed.secret).then_some(data);
    Ok(Desired { secret, status: st, notes, next_rotation: steps.next_rotation, wait })
}

/// gather → evaluate → apply: the Secret when it changed, the status, the Events, the metrics.
pub async fn reconcile(dk: Arc<DkimKey>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let _timer = ctx.metrics.reconcile("DkimKey");
    let (ns, name) = (dk.namespace().unwrap_or_default(), dk.name_any());
    let now = ctx.clock.now();
    let observed = gather(&ctx, &dk).await?;
    let desired = evaluate(&dk, observed, &ctx.master, ctx.dns_recheck.min, now)?;
    if let Some(data) = &desired.secret {
        let labels = crate::labels::managed(&[(SECRET_LABEL, &name)]);
        ctx.secrets.apply(&ns, &secret_name(&name), data, labels, dk.controller_owner_ref(&())).await?;
    }
    crate::status::apply(&ctx, &crate::status::WHOLE, &*dk, dk.status.as_ref(), &desired.status).await?;
    for note in &desired.notes {
        ctx.events.publish(&dk.object_ref(&()), note).await;
    }
    record_metrics(&ctx, &ns, &name, &desired.status.generations, desired.next_rotation, now);
    Ok(Action::requeue(desired.wait))
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
    crate::failure::record(&ctx, "DkimKey", &*dk, error)
}
