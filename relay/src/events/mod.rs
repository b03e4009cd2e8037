//! Delivery events for tenants' webhook endpoints: `message.accepted`, `message.delivered`,
//! `message.deferred`, `message.bounced` (`bounceType` hard or soft), … as Standard Webhooks
//! payloads `{type, timestamp, data}`.
//!
//! **Durable**: [`Events::emit`] writes one file per (event, endpoint) into `spool/events/`,
//! sealed under the spool key ring like a message and fsynced with the directory, *before* the
//! state change it reports is written to the spool; the [`sender`] then delivers it at least
//! once, with the same `webhook-id` on every retry, and removes the file only after a `2xx`.
//! A relay killed with `kill -9` sends what it had on disk when it starts again.
//!
//! **Erasable**: every write applies the active erasures, [`Events::erase`] masks an address in
//! every event on disk, and the sender takes each event's body from disk before an attempt
//! ([`Events::fresh`]), so what it holds in memory never outlives an erasure.

pub mod message;
pub mod sender;
pub mod sign;

use crate::config::webhooks::key_of;
use crate::config::Runtime;
use crate::erase::{Erasure, Erasures};
use crate::spool::Spool;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// One event waiting for one endpoint.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Pending {
    /// The event's id (`webhook-id`), the same for every endpoint and every retry.
    pub webhook_id: String,
    pub tenant: String,
    /// The endpoint's name within the tenant.
    pub endpoint: String,
    /// The exact JSON body sent and signed.
    pub body: String,
    pub created: u64,
    pub attempts: u32,
    pub next_attempt: u64,
}

impl Pending {
    pub fn file_name(&self) -> String {
        format!("{}.{}.evt", self.webhook_id, key_of(&self.tenant, &self.endpoint))
    }
}

pub use cascade_crds::relay_config::EndpointReport as EndpointState;

pub struct Events {
    dir: PathBuf,
    tx: mpsc::UnboundedSender<Pending>,
    states: Mutex<HashMap<String, EndpointState>>,
    /// The relay's recent erasures (shared with it), applied to every write.
    pub erasures: Arc<Erasures>,
    /// Held for every write, so an erasure's rewrite and a sender's write never interleave.
    writing: Mutex<()>,
}

fn context(file: &str) -> String {
    format!("cascade-event-v1:{file}")
}

impl Events {
    /// Opens `spool_dir/events` (created, mode 0700) with the endpoints' states kept there.
    pub fn open(spool_dir: &Path) -> std::io::Result<(Self, mpsc::UnboundedReceiver<Pending>)> {
        let dir = spool_dir.join("events");
        fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir)?;
        let states = fs::read(dir.join("endpoints.json")).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        let (tx, rx) = mpsc::unbounded_channel();
        Ok((Self { dir, tx, states: Mutex::new(states), erasures: Default::default(), writing: Mutex::new(()) }, rx))
    }

    /// Whether `tenant` has an endpoint for `kind` (cheap: callers build the data only then).
    pub fn wanted(rt: &Runtime, tenant: &str, kind: &str) -> bool {
        rt.webhooks.get(tenant).is_some_and(|list| list.iter().any(|e| e.wants(kind)))
    }

    /// Writes `kind` with `data` for every endpoint of `tenant` that wants it, sealed and fsynced
    /// (files, then the directory), then queues them for sending. Blocking. A failed write is
    /// logged: the event is lost, never the mail.
    pub fn emit(&self, rt: &Runtime, spool: &Spool, tenant: &str, kind: &str, data: serde_json::Value) {
        let Some(endpoints) = rt.webhooks.get(tenant) else { return };
        let now = cascade_core::time::now_unix();
        let webhook_id = format!("evt_{}", crate::spool::new_queue_id());
        let body = serde_json::json!({ "type": kind, "timestamp": cascade_core::time::rfc3339_utc(now), "data": data }).to_string();
        let pending: Vec<Pending> = endpoints
            .iter()
            .filter(|e| e.wants(kind))
            .map(|e| Pending { webhook_id: webhook_id.clone(), tenant: tenant.to_string(), endpoint: e.name.clone(), body: body.clone(), created: now, attempts: 0, next_attempt: now })
            .collect();
        if pending.is_empty() {
            return;
        }
        let written: Result<(), std::io::Error> = pending.iter().try_for_each(|p| self.store(spool, p, true)).and_then(|()| fs::File::open(&self.dir)?.sync_all());
        match written {
            Ok(()) => pending.into_iter().for_each(|p| {
                let _ = self.tx.send(p);
            }),
            Err(e) => tracing::error!(event = kind, tenant, error = %e, "event could not be written; it will not be sent"),
        }
    }

    /// Writes `p` (sealed, the active erasures applied) to its file; `sync`: fsynced too.
    pub fn store(&self, spool: &Spool, p: &Pending, sync: bool) -> std::io::Result<()> {
        let _writing = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        let mut p = p.clone();
        self.erasures.scrub(&mut p);
        self.write(spool, &p, sync)
    }

    fn write(&self, spool: &Spool, p: &Pending, sync: bool) -> std::io::Result<()> {
        let name = p.file_name();
        let json = serde_json::to_vec(p).map_err(std::io::Error::other)?;
        let sealed = spool.seal_claim(&context(&name), &json).map_err(|e| std::io::Error::other(e.to_string()))?;
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let mut f = fs::File::create(&tmp)?;
        f.write_all(&sealed)?;
        if sync {
            f.sync_all()?;
        }
        fs::rename(&tmp, self.dir.join(&name))
    }

    pub fn remove(&self, p: &Pending) {
        if let Err(e) = fs::remove_file(self.dir.join(p.file_name())) {
            tracing::warn!(webhook_id = %p.webhook_id, error = %e, "sent event's file not removed; it may be sent again");
        }
    }

    /// The event in file `name`, if it opens and is the one its name says.
    fn read(&self, spool: &Spool, name: &str) -> Option<Pending> {
        let bytes = fs::read(self.dir.join(name)).ok()?;
        let p: Pending = serde_json::from_slice(&spool.open_claim(&context(name), &bytes).ok()?).ok()?;
        (p.file_name() == name).then_some(p)
    }

    /// The names of the event files on disk.
    fn files(&self) -> Vec<String> {
        let names = fs::read_dir(&self.dir).into_iter().flatten().flatten().filter_map(|e| e.file_name().into_string().ok());
        names.filter(|n| n.ends_with(".evt")).collect()
    }

    /// `p` about to be sent: its body as on disk now (an erasure may have rewritten it), with
    /// the active erasures applied. Blocking.
    pub fn fresh(&self, spool: &Spool, mut p: Pending) -> Pending {
        if let Some(disk) = self.read(spool, &p.file_name()) {
            p.body = disk.body;
        }
        self.erasures.scrub(&mut p);
        p
    }

    /// Masks `erasure`'s address in every event on disk; how many were rewritten. Blocking.
    pub fn erase(&self, spool: &Spool, erasure: &Erasure) -> std::io::Result<usize> {
        let _writing = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        let mut masked = 0;
        for name in self.files() {
            let Some(mut p) = self.read(spool, &name) else { continue };
            if erasure.scrub(&mut p) {
                self.write(spool, &p, true)?;
                masked += 1;
            }
        }
        Ok(masked)
    }

    /// Every event on disk (at start); unreadable files are set aside as `*.bad`.
    pub fn load_all(&self, spool: &Spool) -> Vec<Pending> {
        let mut out = Vec::new();
        for name in self.files() {
            let path = self.dir.join(&name);
            match self.read(spool, &name) {
                Some(p) => out.push(p),
                _ => {
                    tracing::error!(file = %path.display(), "event file unreadable; set aside");
                    let _ = fs::rename(&path, path.with_extension("bad"));
                }
            }
        }
        out
    }

    /// Records an attempt's outcome for the endpoint (`gone`: it answered 410 at `url`).
    pub fn note(&self, tenant: &str, name: &str, outcome: Result<(), String>, gone_at: Option<&str>) {
        let now = cascade_core::time::now_unix();
        let mut states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        let s = states.entry(key_of(tenant, name)).or_insert_with(|| EndpointState { tenant: tenant.into(), name: name.into(), ..Default::default() });
        match outcome {
            Ok(()) => s.last_success = Some(now),
            Err(e) => {
                s.last_failure = Some(now);
                s.last_error = Some(e);
            }
        }
        if let Some(url) = gone_at {
            s.disabled_at = Some(now);
            s.disabled_url = Some(url.to_string());
            let json = serde_json::to_vec(&*states).unwrap_or_default();
            if let Err(e) = fs::write(self.dir.join("endpoints.json"), json) {
                tracing::warn!(error = %e, "the disabled endpoint could not be recorded on disk");
            }
        }
    }

    /// Whether the endpoint was disabled (410) at this very URL.
    pub fn disabled(&self, tenant: &str, name: &str, url: &str) -> bool {
        let states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        states.get(&key_of(tenant, name)).is_some_and(|s| s.disabled_url.as_deref() == Some(url))
    }

    /// Every endpoint's state, as JSON (admin `GET /webhooks`).
    pub fn states_json(&self) -> String {
        let states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        let mut list: Vec<&EndpointState> = states.values().collect();
        list.sort_by(|a, b| (&a.tenant, &a.name).cmp(&(&b.tenant, &b.name)));
        serde_json::to_string(&list).unwrap_or_else(|_| "[]".into())
    }
}
