//! Kubernetes Events (`events.k8s.io/v1`) for every change an admin should see in
//! `kubectl describe`: key material created or replaced, credentials issued, a configuration
//! bundle or workload rewritten, and every condition that changes its status or reason.
//!
//! Events are best effort: a failed publish is logged and never fails a reconcile. Event
//! notes never carry secrets. With `--audit-dir`, each one is also an `operator.action` record
//! in the operator's tamper-evident audit trail (the relay's format: `audit verify` checks it).

use cascade_crds::conditions::{types, Condition};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

/// Condition types whose `True` is bad news (a Warning); for the others `False` is.
const TRUE_IS_BAD: &[&str] = &[types::DOMAIN_CONFLICT];

#[derive(Clone)]
pub struct Events {
    recorder: Recorder,
    /// Every published note also goes to the operator's audit trail (when one is configured).
    audit: std::sync::Arc<cascade_core::audit::Audit>,
}

/// One event to publish: Normal or Warning, a CamelCase reason and action, a readable note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub warning: bool,
    pub reason: String,
    pub action: String,
    pub note: String,
}

impl Note {
    pub fn normal(reason: &str, action: &str, note: impl Into<String>) -> Self {
        Self { warning: false, reason: reason.into(), action: action.into(), note: note.into() }
    }

    pub fn warning(reason: &str, action: &str, note: impl Into<String>) -> Self {
        Self { warning: true, reason: reason.into(), action: action.into(), note: note.into() }
    }
}

impl Events {
    pub fn new(client: kube::Client, instance: Option<String>) -> Self {
        Self { recorder: Recorder::new(client, Reporter { controller: crate::labels::FIELD_MANAGER.into(), instance }), audit: Default::default() }
    }

    /// Also writes each note as an `operator.action` record to `audit`.
    pub fn with_audit(mut self, audit: std::sync::Arc<cascade_core::audit::Audit>) -> Self {
        self.audit = audit;
        self
    }

    /// One record in the operator's audit trail only (no Event).
    pub fn record(&self, event: &str, data: serde_json::Value) {
        self.audit.record(event, data);
    }

    pub async fn publish(&self, regarding: &ObjectReference, note: &Note) {
        let record = serde_json::json!({
            "type": if note.warning { "Warning" } else { "Normal" },
            "reason": note.reason,
            "action": note.action,
            "kind": regarding.kind,
            "namespace": regarding.namespace,
            "name": regarding.name,
            "note": note.note,
        });
        self.audit.record("operator.action", record);
        let event = Event {
            type_: if note.warning { EventType::Warning } else { EventType::Normal },
            reason: note.reason.clone(),
            note: Some(note.note.chars().take(1000).collect()),
            action: note.action.clone(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, regarding).await {
            tracing::warn!(error = %e, reason = %note.reason, object = ?regarding.name, "publishing an Event failed");
        }
    }
}

/// The events a status change deserves: one per condition whose status or reason changed
/// (a new condition counts as changed). Pure.
pub fn condition_changes(old: &[Condition], new: &[Condition]) -> Vec<Note> {
    new.iter()
        .filter(|c| !old.iter().any(|o| o.type_ == c.type_ && o.status == c.status && o.reason == c.reason))
        .map(|c| {
            let bad = if TRUE_IS_BAD.contains(&c.type_.as_str()) { c.status == "True" } else { c.status != "True" };
            let note = format!("{}={}: {}", c.type_, c.status, c.message);
            if bad {
                Note::warning(&c.reason, &c.type_, note)
            } else {
                Note::normal(&c.reason, &c.type_, note)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(type_: &str, status: &str, reason: &str) -> Condition {
        Condition { type_: type_.into(), status: status.into(), reason: reason.into(), message: "m".into(), ..Default::default() }
    }

    #[test]
    fn changed_conditions_become_events_with_the_right_severity() {
        let ready = cond("Ready", "True", "Served");
        // Nothing changed: nothing to say (a new lastTransitionTime alone is not news).
        assert!(condition_changes(std::slice::from_ref(&ready), std::slice::from_ref(&ready)).is_empty());
        // New and flipped conditions are announced; a failure is a Warning.
        let notes = condition_changes(std::slice::from_ref(&ready), &[cond("Ready", "False", "DomainConflict"), cond("DomainConflict", "True", "ClaimedElsewhere")]);
        assert_eq!(notes.iter().map(|n| (n.warning, n.reason.as_str())).collect::<Vec<_>>(), [(true, "DomainConflict"), (true, "ClaimedElsewhere")]);
        assert_eq!(notes[0].note, "Ready=False: m");
        // A new reason with the same status is news too; a cleared conflict is good news.
        let notes = condition_changes(&[cond("DomainConflict", "True", "ClaimedElsewhere")], &[cond("DomainConflict", "False", "NoConflict"), cond("Ready", "True", "Revoked")]);
        assert_eq!(notes.iter().map(|n| n.warning).collect::<Vec<_>>(), [false, false]);
    }
}
