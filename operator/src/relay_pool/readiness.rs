//! Whether a RelayPool is serving, for `kubectl wait`, Flux and Argo CD: `Ready=True` only when
//! every desired relay is ready **and** runs the configuration generation just rendered (each
//! relay reports the one it loaded, `GET /config` on the admin channel); `Progressing` while
//! pods start, update or load it, with the counts; `Degraded` when a relay refused the
//! configuration it was given (it keeps serving its last good one). Pure.

use cascade_crds::conditions::{self, reasons, types, Condition};
use k8s_openapi::api::apps::v1::StatefulSetStatus;
use serde::Deserialize;

/// What one relay reports of its configuration.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ConfigReport {
    pub config_hash: String,
    #[serde(default)]
    pub refused: Option<Refused>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Refused {
    #[serde(default)]
    pub config_hash: Option<String>,
    #[serde(default)]
    pub problems: usize,
    /// The first problem: a field and why.
    #[serde(default)]
    pub first: String,
}

/// The rollout as counted: replicas wanted, ready and updated (the StatefulSet's), relays on the
/// current configuration (those that answer), drain Jobs still at work.
#[derive(Debug, PartialEq)]
pub struct Rollout {
    pub desired: i32,
    pub ready: i32,
    pub updated: i32,
    pub current: i32,
    pub draining: i32,
}

impl Rollout {
    pub fn of(desired: i32, sts: Option<&StatefulSetStatus>, reports: &[ConfigReport], config_hash: &str, draining: i32) -> Self {
        let ready = sts.and_then(|s| s.ready_replicas).unwrap_or(0);
        let updated = sts.and_then(|s| s.updated_replicas).unwrap_or(0);
        let current = reports.iter().filter(|r| r.config_hash == config_hash).count() as i32;
        Self { desired, ready, updated, current, draining }
    }

    pub fn complete(&self) -> bool {
        self.ready >= self.desired && self.updated >= self.desired && self.current >= self.desired
    }
}

/// Sets `Ready`, `Progressing` and `Degraded`. A drain under way keeps `Progressing` (reason
/// `Draining`) but not `Ready` from being set: the pool serves while volumes drain.
pub fn set(conds: &mut Vec<Condition>, r: &Rollout, reports: &[ConfigReport], config_hash: &str, generation: i64, now: &str) {
    let counts = format!("{} desired, {} ready, {} updated, {} on configuration {config_hash}, {} draining", r.desired, r.ready, r.updated, r.current, r.draining);
    if r.complete() {
        conditions::set(conds, types::READY, true, reasons::SERVING, &format!("every relay is ready on the current configuration ({counts})"), generation, now);
        match r.draining {
            0 => conditions::set(conds, types::PROGRESSING, false, reasons::ROLLOUT_COMPLETE, &counts, generation, now),
            _ => conditions::set(conds, types::PROGRESSING, true, reasons::DRAINING, &format!("spool volumes left by a scale-down are draining to the relays: {counts}"), generation, now),
        }
    } else {
        conditions::set(conds, types::READY, false, reasons::ROLLING_OUT, &format!("not every relay is ready on the current configuration yet: {counts}"), generation, now);
        conditions::set(conds, types::PROGRESSING, true, reasons::ROLLING_OUT, &counts, generation, now);
    }
    match reports.iter().find_map(|rep| rep.refused.as_ref()) {
        Some(refused) => {
            let which = refused.config_hash.as_deref().unwrap_or("(unknown)");
            let msg = format!("a relay refused configuration {which} ({} problem(s); first: {}) and keeps serving its last good one", refused.problems, refused.first);
            conditions::set(conds, types::DEGRADED, true, reasons::CONFIG_REFUSED, &msg, generation, now);
        }
        None => conditions::set(conds, types::DEGRADED, false, reasons::CONFIG_ACCEPTED, "no relay refused its configuration", generation, now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(hash: &str) -> ConfigReport {
        ConfigReport { config_hash: hash.into(), refused: None }
    }

    fn sts(ready: i32, updated: i32) -> StatefulSetStatus {
        StatefulSetStatus { ready_replicas: Some(ready), updated_replicas: Some(updated), ..Default::default() }
    }

    fn status(conds: &[Condition], t: &str) -> (String, String) {
        let c = conds.iter().find(|c| c.type_ == t).unwrap();
        (c.status.clone(), c.reason.clone())
    }

    #[test]
    fn ready_only_with_every_replica_ready_on_the_current_configuration() {
        let mut conds = Vec::new();
        let cases = [
            (None, vec![], false),
            (Some(sts(2, 2)), vec![report("new")], false),
            (Some(sts(2, 2)), vec![report("new"), report("old")], false),
            (Some(sts(1, 2)), vec![report("new"), report("new")], false),
            (Some(sts(2, 1)), vec![report("new"), report("new")], false),
            (Some(sts(2, 2)), vec![report("new"), report("new")], true),
        ];
        for (s, reports, ready) in cases {
            let r = Rollout::of(2, s.as_ref(), &reports, "new", 0);
            set(&mut conds, &r, &reports, "new", 3, "2026-12-03T00:00:00Z");
            assert_eq!(status(&conds, types::READY).0 == "True", ready, "{r:?}");
            assert_eq!(status(&conds, types::PROGRESSING).0 == "True", !ready, "{r:?}");
        }
        let msg = &conds.iter().find(|c| c.type_ == types::PROGRESSING).unwrap().message;
        assert_eq!(msg, "2 desired, 2 ready, 2 updated, 2 on configuration new, 0 draining");
        let zero = Rollout::of(0, None, &[], "new", 0);
        assert!(zero.complete(), "a pool scaled to zero has nothing to wait for");
        // A drain under way: still Ready (the pool serves), Progressing with the count.
        let reports = [report("new"), report("new")];
        set(&mut conds, &Rollout::of(2, Some(&sts(2, 2)), &reports, "new", 1), &reports, "new", 3, "2026-12-03T00:00:00Z");
        assert_eq!(status(&conds, types::READY).0, "True");
        assert_eq!(status(&conds, types::PROGRESSING), ("True".into(), reasons::DRAINING.into()));
        let msg = &conds.iter().find(|c| c.type_ == types::PROGRESSING).unwrap().message;
        assert!(msg.ends_with("1 draining"), "{msg}");
    }

    #[test]
    fn a_refused_configuration_degrades_the_pool_with_its_first_problem() {
        let mut conds = Vec::new();
        let refused = ConfigReport { config_hash: "old".into(), refused: Some(Refused { config_hash: Some("new".into()), problems: 2, first: "tls.keyFile: cannot read".into() }) };
        let reports = vec![refused, report("new")];
        set(&mut conds, &Rollout::of(2, Some(&sts(2, 2)), &reports, "new", 0), &reports, "new", 3, "2026-12-03T00:00:00Z");
        assert_eq!(status(&conds, types::DEGRADED), ("True".into(), reasons::CONFIG_REFUSED.into()));
        assert_eq!(status(&conds, types::READY).0, "False", "the refusing relay runs the old one");
        let c = conds.iter().find(|c| c.type_ == types::DEGRADED).unwrap();
        assert!(c.message.contains("configuration new (2 problem(s); first: tls.keyFile: cannot read)"), "{}", c.message);
    }
}
