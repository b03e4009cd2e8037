//! Suspensions the relays imposed after unusual sending (`GET /anomalies` on each relay's admin
//! listener) become `status.suspension` of the ApiKeys; the evaluation then refuses the key in
//! every relay's bundle and sets `Ready=False` (`Suspended`). A suspension holds for the
//! generation it happened at: once the spec is edited it is dropped here, and the relays, which
//! get the new generation in their bundle, drop theirs. [`desired`] is pure; [`record`] writes the
//! one status field this writer owns.

use crate::events::Note;
use crate::status::Writer;
use crate::Context;
use cascade_crds::conditions::reasons;
use cascade_crds::v1alpha1::{ApiKey, ApiKeySuspension};
use kube::{Resource, ResourceExt};
use serde::Deserialize;

/// Owns `status.suspension` of ApiKeys and nothing else (the ApiKey controller owns the rest).
pub const WRITER: Writer = Writer { manager: "cascade-operator-anomalies", fields: Some(&["suspension"]), conditions: Some(&[]) };

/// One suspension as a relay reports it.
#[derive(Deserialize, Clone, Debug, PartialEq)]
pub struct Reported {
    pub key: String,
    pub generation: i64,
    pub kind: String,
    pub detail: String,
    /// Unix seconds.
    pub since: u64,
}

/// For each `(ApiKey, key id)`, the `status.suspension` it should have when that differs from
/// what it has: the recorded one while its generation is current, else the earliest reported
/// at the current generation, else none.
pub fn desired<'a>(keys: &[(&'a ApiKey, &str)], reported: &[Reported]) -> Vec<(&'a ApiKey, Option<ApiKeySuspension>)> {
    let mut changes = Vec::new();
    for &(key, id) in keys {
        let generation = key.metadata.generation.unwrap_or(0);
        let recorded = key.status.as_ref().and_then(|s| s.suspension.clone());
        let want = recorded.clone().filter(|s| s.generation == generation).or_else(|| {
            let first = reported.iter().filter(|r| r.key == id && r.generation == generation).min_by_key(|r| r.since)?;
            Some(ApiKeySuspension { generation, kind: first.kind.clone(), detail: first.detail.clone(), since: cascade_core::time::rfc3339_utc(first.since) })
        });
        if want != recorded {
            changes.push((key, want));
        }
    }
    changes
}

/// Records a new suspension or drops a lifted one, and says so in an Event.
pub async fn record(ctx: &Context, key: &ApiKey, suspension: Option<ApiKeySuspension>) -> Result<(), kube::Error> {
    let mut status = key.status.clone().unwrap_or_default();
    status.suspension = suspension.clone();
    crate::status::apply(ctx, &WRITER, key, key.status.as_ref(), &status).await?;
    let note = match &suspension {
        Some(s) => Note::warning(reasons::KEY_SUSPENDED, "SuspendKey", format!("suspended after unusual sending ({}: {}); edit the ApiKey to lift it", s.kind, s.detail)),
        None => Note::normal(reasons::KEY_RESUMED, "ResumeKey", "suspension lifted: the ApiKey was edited"),
    };
    tracing::warn!(namespace = %key.namespace().unwrap_or_default(), api_key = %key.name_any(), suspended = suspension.is_some(), "API key suspension changed");
    ctx.events.publish(&key.object_ref(&()), &note).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cascade_crds::v1alpha1::{ApiKeySpec, ApiKeyStatus};

    fn key(generation: i64, suspension: Option<ApiKeySuspension>) -> ApiKey {
        let mut k = ApiKey::new("web", serde_json::from_value::<ApiKeySpec>(serde_json::json!({})).unwrap());
        k.metadata.namespace = Some("shop".into());
        k.metadata.generation = Some(generation);
        k.status = Some(ApiKeyStatus { suspension, ..Default::default() });
        k
    }

    fn reported(generation: i64, since: u64) -> Reported {
        Reported { key: "ck_1".into(), generation, kind: "rate".into(), detail: "500 messages this minute".into(), since }
    }

    #[test]
    fn a_reported_suspension_at_the_current_generation_is_recorded_once() {
        let k = key(3, None);
        let changes = desired(&[(&k, "ck_1")], &[reported(3, 2_000), reported(3, 1_000), reported(2, 500)]);
        let s = changes[0].1.clone().unwrap();
        assert_eq!((s.generation, s.kind.as_str(), s.since.as_str()), (3, "rate", "1970-01-01T00:16:40Z"), "the earliest at this generation");
        let recorded = key(3, Some(s));
        assert!(desired(&[(&recorded, "ck_1")], &[reported(3, 1_000)]).is_empty(), "nothing to write");
        assert!(desired(&[(&recorded, "ck_1")], &[]).is_empty(), "kept after a relay restarts");
        assert!(desired(&[(&k, "ck_other")], &[reported(3, 1_000)]).is_empty(), "another key's");
    }

    #[test]
    fn an_edit_of_the_spec_lifts_it() {
        let old = ApiKeySuspension { generation: 3, kind: "rate".into(), detail: "x".into(), since: "2026-01-01T00:00:00Z".into() };
        let edited = key(4, Some(old));
        // A relay that has not loaded the new bundle yet still reports generation 3: ignored.
        let changes = desired(&[(&edited, "ck_1")], &[reported(3, 1_000)]);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].1, None);
    }
}
