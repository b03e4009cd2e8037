//! What the relay does with unusual sending ([`crate::policy::anomaly`] finds it): count it
//! (`cascade_relay_key_anomalies_total{kind}`), log it, audit it (`key.anomaly`) and, where the
//! key's `anomalies.suspend` says so, suspend the key. A suspension holds for the key's current
//! generation: the operator carries the ApiKey's `metadata.generation` into the bundle, so an edit
//! of the resource lifts it. The operator collects suspensions from `GET /anomalies` on the admin
//! listener and makes every relay refuse the key.

use crate::config::{KeyPolicy, Runtime};
use crate::policy::anomaly::{Detector, Finding};
use crate::relay::Relay;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Suspension {
    pub key: String,
    pub generation: i64,
    pub kind: &'static str,
    pub detail: String,
    /// Unix seconds.
    pub since: u64,
}

#[derive(Default)]
pub struct Anomalies {
    detector: Detector,
    suspended: Mutex<BTreeMap<String, Suspension>>,
}

impl Relay {
    /// A message from `key` was accepted.
    pub fn key_accepted(&self, key: &str) {
        let rt = self.runtime();
        let Some(k) = rt.keys.get(key) else { return };
        if let Some(f) = self.anomalies.detector.accepted(key, &k.anomalies, cascade_core::time::now_unix_ms()) {
            self.key_finding(key, k, f);
        }
    }

    /// `key` was refused by policy, or a recipient of its mail bounced.
    pub fn key_failed(&self, key: &str) {
        let rt = self.runtime();
        let Some(k) = rt.keys.get(key) else { return };
        if let Some(f) = self.anomalies.detector.failed(key, &k.anomalies, cascade_core::time::now_unix_ms()) {
            self.key_finding(key, k, f);
        }
    }

    fn key_finding(&self, key: &str, k: &KeyPolicy, f: Finding) {
        let kind = f.kind.as_str();
        self.metrics.anomalies.with_label_values(&[kind]).inc();
        let suspend = k.anomalies.suspend;
        tracing::warn!(key = %key, tenant = %k.tenant, kind, detail = %f.detail, suspended = suspend, "unusual sending for API key");
        self.audit.record("key.anomaly", serde_json::json!({ "key": key, "tenant": k.tenant, "kind": kind, "detail": f.detail, "suspended": suspend }));
        if suspend {
            let mut map = self.anomalies.suspended.lock().unwrap_or_else(|e| e.into_inner());
            let s = Suspension { key: key.to_string(), generation: k.generation, kind, detail: f.detail.clone(), since: cascade_core::time::now_unix() };
            let fresh = !map.contains_key(key);
            map.entry(key.to_string()).or_insert(s);
            self.metrics.suspended_keys.set(map.len() as i64);
            drop(map);
            // Rare (once per suspension), so written here even on an async worker.
            let rt = self.runtime();
            if fresh && crate::events::Events::wanted(&rt, &k.tenant, "key.suspended") {
                let data = serde_json::json!({ "keyId": key, "tenant": k.tenant, "kind": kind, "detail": f.detail, "generation": k.generation });
                self.events.emit(&rt, &self.spool, &k.tenant, "key.suspended", data);
            }
        }
    }

    /// Why `key` is suspended, if it is at its current generation. Suspensions of an earlier
    /// generation (the ApiKey was edited since) are dropped here.
    pub fn suspension(&self, rt: &Runtime, key: &str) -> Option<String> {
        let mut map = self.anomalies.suspended.lock().unwrap_or_else(|e| e.into_inner());
        let generation = rt.keys.get(key)?.generation;
        match map.get(key) {
            Some(s) if s.generation == generation => Some(format!("{}: {}", s.kind, s.detail)),
            Some(_) => {
                map.remove(key);
                self.metrics.suspended_keys.set(map.len() as i64);
                tracing::info!(key = %key, "suspension lifted: the ApiKey was edited");
                self.audit.record("key.resumed", serde_json::json!({ "key": key, "generation": generation }));
                None
            }
            None => None,
        }
    }

    /// The suspensions in force, as JSON (`GET /anomalies` on the admin listener).
    pub fn suspensions_json(&self) -> String {
        let map = self.anomalies.suspended.lock().unwrap_or_else(|e| e.into_inner());
        serde_json::to_string(&map.values().collect::<Vec<_>>()).unwrap_or_else(|_| "[]".into())
    }
}
