//! The whole lifecycle, driven by an injected clock: days pass in microseconds.

use super::*;
use std::collections::BTreeSet;

const DAY: u64 = 86_400;
const T0: u64 = 1_800_000_000;

fn spec() -> DkimKeySpec {
    serde_json::from_value(serde_json::json!({ "domain": "shop.example", "selector": "cascade1" })).unwrap()
}

/// Runs `advance` and does what the shell does: generate what it asks for.
fn step(gens: &mut Vec<KeyGeneration>, published: &BTreeSet<String>, force: bool, now: u64) -> Steps {
    let spec = spec();
    let steps = advance(&spec, Schedule::of(&spec).unwrap(), gens, |s| published.contains(s), force, now);
    if let Some(g) = steps.generate.clone() {
        gens.push(pending(&spec, g, "v=DKIM1; p=KEY".into(), now));
    }
    steps
}

fn phases(gens: &[KeyGeneration]) -> Vec<(&str, KeyPhase)> {
    gens.iter().map(|g| (g.selector.as_str(), g.phase)).collect()
}

#[test]
fn defaults_rotate_every_90_days_with_2_days_lead_and_7_days_retirement() {
    assert_eq!(Schedule::of(&spec()).unwrap(), Schedule { rotate_every: 90 * DAY, lead: 2 * DAY, retire_after: 7 * DAY });
    let mut bad = spec();
    bad.rotation.publish_lead_time = "100d".into();
    assert!(Schedule::of(&bad).unwrap_err().contains("publishLeadTime must be shorter"));
    bad.rotation.rotate_every = "soon".into();
    assert!(Schedule::of(&bad).unwrap_err().starts_with("rotation.rotateEvery"));
}

#[test]
fn a_key_lives_pending_active_retiring_retired() {
    use KeyPhase::*;
    let mut gens = vec![];
    let mut dns = BTreeSet::new();
    // Day 0: the first key is generated and waits for its record.
    step(&mut gens, &dns, false, T0);
    assert_eq!(phases(&gens), [("cascade1", Pending)]);
    assert_eq!(signing(&gens).unwrap().selector, "cascade1");
    step(&mut gens, &dns, false, T0 + 60);
    assert_eq!(phases(&gens), [("cascade1", Pending)], "never Active before its record is verified");
    // Its record appears: Active; the next rotation is 90 days away.
    dns.insert("cascade1".to_string());
    let s = step(&mut gens, &dns, false, T0 + 120);
    assert_eq!((phases(&gens), s.next_rotation), (vec![("cascade1", Active)], Some(T0 + 120 + 90 * DAY)));
    assert_eq!(s.transitions, [("cascade1".to_string(), Active)]);
    assert_eq!(s.next_event, Some(T0 + 120 + 88 * DAY));
    // Day 88: the next key is made, published in status, not used yet.
    let s = step(&mut gens, &dns, false, T0 + 120 + 88 * DAY);
    assert_eq!(s.generate, Some((2, "cascade1-2".into(), false)));
    assert_eq!(phases(&gens), [("cascade1", Active), ("cascade1-2", Pending)]);
    assert_eq!(gens[1].dns_name, "cascade1-2._domainkey.shop.example.");
    // Its record is verified on day 89, but the current key is not due: nothing changes.
    dns.insert("cascade1-2".to_string());
    step(&mut gens, &dns, false, T0 + 120 + 89 * DAY);
    assert_eq!(phases(&gens), [("cascade1", Active), ("cascade1-2", Pending)]);
    // Day 90: switch. The old key's record stays (Retiring) for in-flight mail.
    let switch = T0 + 120 + 90 * DAY;
    let s = step(&mut gens, &dns, false, switch);
    assert_eq!(phases(&gens), [("cascade1", Retiring), ("cascade1-2", Active)]);
    assert_eq!(s.transitions, [("cascade1".to_string(), Retiring), ("cascade1-2".to_string(), Active)]);
    assert_eq!(signing(&gens).unwrap().selector, "cascade1-2");
    // Day 97: the old key retires; its private key is destroyed.
    let s = step(&mut gens, &dns, false, switch + 7 * DAY);
    assert_eq!(phases(&gens), [("cascade1", Retired), ("cascade1-2", Active)]);
    assert_eq!((s.destroy, gens[0].txt_value.as_str()), (vec!["cascade1".to_string()], ""));
}

#[test]
fn a_rotation_waits_for_the_new_record_however_late() {
    use KeyPhase::*;
    let dns: BTreeSet<String> = ["cascade1".to_string()].into();
    let mut gens = vec![];
    step(&mut gens, &dns, false, T0);
    step(&mut gens, &dns, false, T0);
    step(&mut gens, &dns, false, T0 + 88 * DAY);
    // Day 120, the new record was never published: the old key keeps signing.
    step(&mut gens, &dns, false, T0 + 120 * DAY);
    assert_eq!(phases(&gens), [("cascade1", Active), ("cascade1-2", Pending)]);
    assert_eq!(signing(&gens).unwrap().selector, "cascade1");
}

#[test]
fn a_forced_rotation_makes_a_key_now_and_activates_it_once_verified() {
    use KeyPhase::*;
    let mut dns: BTreeSet<String> = ["cascade1".to_string()].into();
    let mut gens = vec![];
    step(&mut gens, &dns, false, T0);
    step(&mut gens, &dns, false, T0 + 10);
    let s = step(&mut gens, &dns, true, T0 + DAY);
    assert_eq!(s.generate, Some((2, "cascade1-2".into(), true)));
    step(&mut gens, &dns, false, T0 + DAY + 60);
    assert_eq!(phases(&gens), [("cascade1", Active), ("cascade1-2", Pending)], "not before its record is verified");
    dns.insert("cascade1-2".to_string());
    step(&mut gens, &dns, false, T0 + DAY + 120);
    assert_eq!(phases(&gens), [("cascade1", Retiring), ("cascade1-2", Active)]);
}
