//! The access review: when each API key was last used and from which network, as the relays
//! report it (`GET /keys/usage` on each admin listener), folded into `status.lastUsedAt` and
//! `status.lastSourceNetwork` of the ApiKeys. A key's status is written only when its newest use
//! is at least [`RESOLUTION`] later than the recorded one (or its network changed): at most one
//! write per key a minute however busy it is. [`desired`] is pure; [`record`] writes the two
//! fields this writer owns.

use crate::status::Writer;
use crate::Context;
use cascade_crds::v1alpha1::ApiKey;
use serde::Deserialize;

/// Owns `status.lastUsedAt` and `status.lastSourceNetwork` of ApiKeys and nothing else.
pub const WRITER: Writer = Writer { manager: "cascade-operator-usage", fields: Some(&["lastUsedAt", "lastSourceNetwork"]), conditions: Some(&[]) };

/// A newer use within this many seconds of the recorded one is not written.
pub const RESOLUTION: u64 = 60;

/// One key's last use as a relay reports it.
#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Reported {
    pub key: String,
    /// Unix seconds.
    pub last_used: u64,
    pub network: String,
}

/// For each `(ApiKey, key id)` whose newest reported use should be recorded: (last used, network).
pub fn desired<'a>(keys: &[(&'a ApiKey, &str)], reported: &[Reported]) -> Vec<(&'a ApiKey, u64, String)> {
    let mut out = Vec::new();
    for &(key, id) in keys {
        let Some(newest) = reported.iter().filter(|r| r.key == id).max_by_key(|r| r.last_used) else { continue };
        let status = key.status.as_ref();
        let recorded = status.and_then(|s| s.last_used_at.as_deref()).and_then(cascade_core::time::parse_rfc3339);
        let same_network = status.and_then(|s| s.last_source_network.as_deref()) == Some(newest.network.as_str());
        if recorded.is_none_or(|t| newest.last_used >= t + RESOLUTION || (!same_network && newest.last_used > t)) {
            out.push((key, newest.last_used, newest.network.clone()));
        }
    }
    out
}

pub async fn record(ctx: &Context, key: &ApiKey, last_used: u64, network: &str) -> Result<(), kube::Error> {
    let mut status = key.status.clone().unwrap_or_default();
    status.last_used_at = Some(cascade_core::time::rfc3339_utc(last_used));
    status.last_source_network = Some(network.to_string());
    crate::status::apply(ctx, &WRITER, key, key.status.as_ref(), &status).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use cascade_crds::v1alpha1::{ApiKeySpec, ApiKeyStatus};

    fn key(last: Option<u64>, network: &str) -> ApiKey {
        let mut k = ApiKey::new("web", serde_json::from_value::<ApiKeySpec>(serde_json::json!({})).unwrap());
        k.metadata.namespace = Some("shop".into());
        k.status = Some(ApiKeyStatus { last_used_at: last.map(cascade_core::time::rfc3339_utc), last_source_network: Some(network.into()), ..Default::default() });
        k
    }

    fn used(relay_time: u64, network: &str) -> Reported {
        Reported { key: "ck_1".into(), last_used: relay_time, network: network.into() }
    }

    #[test]
    fn the_newest_use_of_any_relay_is_recorded_at_most_once_a_minute() {
        let fresh = key(None, "");
        let reports = [used(1_800_000_100, "10.0.0.0/24"), used(1_800_000_050, "10.1.0.0/24"), Reported { key: "ck_other".into(), ..used(1_900_000_000, "x") }];
        assert_eq!(desired(&[(&fresh, "ck_1")], &reports).iter().map(|(_, t, n)| (*t, n.as_str())).collect::<Vec<_>>(), [(1_800_000_100, "10.0.0.0/24")]);
        let recorded = key(Some(1_800_000_100), "10.0.0.0/24");
        assert!(desired(&[(&recorded, "ck_1")], &[used(1_800_000_159, "10.0.0.0/24")]).is_empty(), "within the minute: no write");
        assert_eq!(desired(&[(&recorded, "ck_1")], &[used(1_800_000_160, "10.0.0.0/24")]).len(), 1, "a minute later");
        assert_eq!(desired(&[(&recorded, "ck_1")], &[used(1_800_000_101, "192.0.2.0/24")]).len(), 1, "another network at once");
        assert!(desired(&[(&recorded, "ck_1")], &[]).is_empty(), "no report: nothing changes");
    }
}
