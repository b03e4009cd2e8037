//! The life of a DkimKey's key generations, as a pure function of the generations so far, which
//! records DNS shows, and the time (injected, so the whole lifecycle is tested in seconds):
//!
//! Pending (generated; record in status; waiting for DNS) → Active (record verified; the relays
//! sign with it) → Retiring (a newer key is Active; its record stays so mail in flight still
//! verifies) → Retired (record may go; private key destroyed).
//!
//! A new generation is made `publishLeadTime` before the Active one is `rotateEvery` old (or at
//! once for a forced rotation); it becomes Active when its record is verified and the Active one
//! is due (a forced one: as soon as it is verified). Generation 1 uses `spec.selector`, generation
//! n > 1 `<spec.selector>-<n>`.

use cascade_core::time::{parse_rfc3339, rfc3339_utc};
use cascade_crds::v1alpha1::{DkimKeySpec, KeyGeneration, KeyPhase};
use cascade_crds::HumanDuration;

/// The rotation settings, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub rotate_every: u64,
    pub lead: u64,
    pub retire_after: u64,
}

impl Schedule {
    pub fn of(spec: &DkimKeySpec) -> Result<Self, String> {
        let r = &spec.rotation;
        let secs = |field: &str, v: &str| v.parse::<HumanDuration>().map(|d| d.0.as_secs()).map_err(|e| format!("rotation.{field}: {e}"));
        let s = Self { rotate_every: secs("rotateEvery", &r.rotate_every)?, lead: secs("publishLeadTime", &r.publish_lead_time)?, retire_after: secs("retireAfter", &r.retire_after)? };
        if s.rotate_every == 0 || s.lead >= s.rotate_every {
            return Err("rotation.publishLeadTime must be shorter than rotation.rotateEvery (and rotateEvery above zero)".into());
        }
        Ok(s)
    }
}

pub fn selector(spec: &DkimKeySpec, generation: u32) -> String {
    if generation <= 1 {
        spec.selector.clone()
    } else {
        format!("{}-{generation}", spec.selector)
    }
}

/// What the shell must do after [`advance`].
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Steps {
    /// Generate this generation (number, selector, forced) and add it as Pending.
    pub generate: Option<(u32, String, bool)>,
    /// Destroy these selectors' private keys (they just retired).
    pub destroy: Vec<String>,
    /// Phase changes, for Events: (selector, new phase).
    pub transitions: Vec<(String, KeyPhase)>,
    /// When the Active key is due to be replaced.
    pub next_rotation: Option<u64>,
    /// The next time something is due (unix), for the requeue.
    pub next_event: Option<u64>,
}

fn at(t: &Option<String>) -> Option<u64> {
    t.as_deref().and_then(parse_rfc3339)
}

/// Moves the generations forward at `now`. `verified(selector)` says whether DNS shows that
/// generation's record; `force` asks for a rotation now.
pub fn advance(spec: &DkimKeySpec, s: Schedule, gens: &mut [KeyGeneration], verified: impl Fn(&str) -> bool, force: bool, now: u64) -> Steps {
    let now_s = rfc3339_utc(now);
    let mut steps = Steps::default();
    // Retiring keys whose time is up retire; their private keys go.
    for g in gens.iter_mut().filter(|g| g.phase == KeyPhase::Retiring) {
        if at(&g.retiring_at).is_some_and(|t| now >= t + s.retire_after) {
            g.phase = KeyPhase::Retired;
            g.retired_at = Some(now_s.clone());
            g.txt_value.clear();
            steps.destroy.push(g.selector.clone());
            steps.transitions.push((g.selector.clone(), KeyPhase::Retired));
        }
    }
    // A verified Pending key activates when there is no Active key, when the Active one is
    // due, or at once when it came from a forced rotation.
    let active_due = gens.iter().find(|g| g.phase == KeyPhase::Active).map(|a| at(&a.activated_at).is_none_or(|t| now >= t + s.rotate_every));
    if let Some(p) = gens.iter().rposition(|g| g.phase == KeyPhase::Pending) {
        if verified(&gens[p].selector) && (active_due.unwrap_or(true) || gens[p].forced) {
            for g in gens.iter_mut().filter(|g| g.phase == KeyPhase::Active) {
                g.phase = KeyPhase::Retiring;
                g.retiring_at = Some(now_s.clone());
                steps.transitions.push((g.selector.clone(), KeyPhase::Retiring));
            }
            gens[p].phase = KeyPhase::Active;
            gens[p].activated_at = Some(now_s.clone());
            steps.transitions.push((gens[p].selector.clone(), KeyPhase::Active));
        }
    }
    let active_since = gens.iter().find(|g| g.phase == KeyPhase::Active).and_then(|a| at(&a.activated_at));
    let pending = gens.iter().any(|g| g.phase == KeyPhase::Pending);
    // The next generation: the first one, the next one a lead time before rotation, or now.
    let next_due = active_since.map(|t| t + s.rotate_every - s.lead);
    let make_next = !pending && (force || active_since.is_none() || next_due.is_some_and(|t| now >= t));
    if make_next {
        let n = gens.iter().map(|g| g.generation).max().unwrap_or(0) + 1;
        steps.generate = Some((n, selector(spec, n), force && active_since.is_some()));
    }
    steps.next_rotation = active_since.map(|t| t + s.rotate_every);
    let retire_due = gens.iter().filter(|g| g.phase == KeyPhase::Retiring).filter_map(|g| at(&g.retiring_at)).map(|t| t + s.retire_after).min();
    steps.next_event = [next_due.filter(|t| *t > now), steps.next_rotation.filter(|t| *t > now), retire_due].into_iter().flatten().min();
    steps
}

/// A new Pending generation.
pub fn pending(spec: &DkimKeySpec, (generation, selector, forced): (u32, String, bool), txt_value: String, now: u64) -> KeyGeneration {
    KeyGeneration {
        generation,
        dns_name: format!("{selector}._domainkey.{}.", spec.domain),
        selector,
        phase: KeyPhase::Pending,
        txt_value,
        created_at: rfc3339_utc(now),
        activated_at: None,
        retiring_at: None,
        retired_at: None,
        forced,
    }
}

/// The generation the relays sign with: the Active one, else (before the first activation) the
/// newest Pending one, which only a pool with `dnsVerification: warn` uses.
pub fn signing(gens: &[KeyGeneration]) -> Option<&KeyGeneration> {
    gens.iter().find(|g| g.phase == KeyPhase::Active).or_else(|| gens.iter().rev().find(|g| g.phase == KeyPhase::Pending))
}

#[cfg(test)]
mod tests;
