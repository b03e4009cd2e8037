//! The relay's half of pool-wide suppression lists (the format and merge rule:
//! [`cascade_core::suppression`]): its own changes numbered in a durable log the operator reads
//! (`GET /suppressions/changes?after=N` on the admin listener), and the pool's
//! `SuppressionShard` objects watched through the Kubernetes API. A shard as served is the
//! operator's document with this relay's changes it does not yet show applied on top; once it
//! shows them (its cursor for this log), they leave the log.

use super::{empty, Entry, Suppressions};
use crate::relay::Relay;
use cascade_core::suppression::{shard_of, Change, Changes, Shard, LOG_SECS, POOL_LABEL, SHARDS};
use futures::StreamExt;
use kube::api::{Api, ObjectMeta};
use kube::runtime::{watcher, WatchStreamExt};
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A `SuppressionShard` as the relay reads it (the CRD's own type, in `cascade_crds::v1alpha1`,
/// needs the CRD machinery the relay does without).
#[derive(Clone, Debug, serde::Deserialize, serde::Serialize)]
pub struct ShardObject {
    pub metadata: ObjectMeta,
    pub spec: ShardSpec,
}

#[derive(Clone, Debug, serde::Deserialize, serde::Serialize)]
pub struct ShardSpec {
    pub pool: String,
    pub tenant: String,
    pub index: u8,
    pub sealed: String,
}

impl kube::Resource for ShardObject {
    type DynamicType = ();
    type Scope = kube::core::NamespaceResourceScope;
    fn kind(_: &()) -> std::borrow::Cow<'_, str> {
        "SuppressionShard".into()
    }
    fn group(_: &()) -> std::borrow::Cow<'_, str> {
        "cascade-mail.com".into()
    }
    fn version(_: &()) -> std::borrow::Cow<'_, str> {
        "v1alpha1".into()
    }
    fn plural(_: &()) -> std::borrow::Cow<'_, str> {
        "suppressionshards".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// At most this many changes per answer.
const PAGE: usize = 5000;

pub struct Log {
    pub id: String,
    pub pool: String,
    next: AtomicU64,
}

impl Log {
    pub fn new(id: String, pool: &str, last: u64) -> Self {
        Self { id, pool: pool.into(), next: AtomicU64::new(last + 1) }
    }

    /// Numbers changes of `tenant` (address, entry or `None` for a release); call with the
    /// pending lock held, so numbers are logged in order.
    pub fn changes(&self, tenant: &str, items: impl IntoIterator<Item = (String, Option<Entry>)>) -> Vec<Change> {
        let time = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        items.into_iter().map(|(address, entry)| Change { seq: self.next.fetch_add(1, Ordering::SeqCst), time, tenant: tenant.into(), address, entry }).collect()
    }
}

impl Suppressions {
    /// This relay's unconfirmed changes after `after`, as the operator reads them; `None` when
    /// the lists are not shared.
    pub fn changes_json(&self, after: u64) -> Option<String> {
        let log = self.log.as_ref()?;
        let pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let mut changes: Vec<Change> = pending.range(after + 1..).take(PAGE + 1).map(|(_, c)| c.clone()).collect();
        let more = changes.len() > PAGE;
        changes.truncate(PAGE);
        serde_json::to_string(&Changes { log: log.id.clone(), changes, more }).ok()
    }

    /// Installs the pool's version of one shard of `tenant` (`None`: it has none): the list
    /// becomes its entries with this relay's unconfirmed changes applied; the changes it shows
    /// merged leave the log. Durable before it is served. Blocking.
    pub fn install(&self, relay: &Relay, tenant: &str, index: u8, shard: Option<Shard>) -> Result<(), String> {
        let Some(log) = &self.log else { return Ok(()) };
        let now = cascade_core::time::now_unix();
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let shard = shard.unwrap_or_else(|| Shard::new(tenant, index));
        let cursor = shard.cursor(&log.id);
        let horizon = now.saturating_sub(LOG_SECS) * 1000;
        let mine: Vec<&Change> = pending.values().filter(|c| c.tenant == tenant && shard_of(tenant, &c.address) == index).collect();
        let confirmed: Vec<u64> = mine.iter().filter(|c| c.seq <= cursor || c.time < horizon).map(|c| c.seq).collect();
        let mut view: HashMap<String, Entry> = shard.entries.into_values().filter(|s| s.entry.live(now)).map(|s| (s.entry.address.clone(), s.entry)).collect();
        for c in mine.iter().filter(|c| !confirmed.contains(&c.seq)) {
            match &c.entry {
                Some(e) => view.insert(c.address.clone(), e.clone()),
                None => view.remove(&c.address),
            };
        }
        let lists = self.lists.read().unwrap_or_else(|e| e.into_inner());
        let current = lists.get(tenant).map(|l| &l[usize::from(index)]);
        let puts: Vec<&Entry> = view.values().filter(|e| current.and_then(|c| c.get(&e.address)) != Some(e)).collect();
        let removes: Vec<&str> = current.map(|c| c.keys().filter(|a| !view.contains_key(*a)).map(String::as_str).collect()).unwrap_or_default();
        let rows: Vec<(&str, Option<u64>, Vec<u8>)> = puts.iter().map(|e| (e.address.as_str(), e.expires, serde_json::to_vec(e).unwrap_or_default())).collect();
        if !rows.is_empty() || !removes.is_empty() {
            relay.store.suppress(&relay.spool, tenant, &rows, &removes, &[]).map_err(|e| e.to_string())?;
        }
        drop(lists);
        if !confirmed.is_empty() {
            relay.store.confirm(&confirmed).map_err(|e| e.to_string())?;
            for seq in &confirmed {
                pending.remove(seq);
            }
        }
        self.lists.write().unwrap_or_else(|e| e.into_inner()).entry(tenant.to_string()).or_insert_with(empty)[usize::from(index)] = view;
        Ok(())
    }

    /// The (tenant, shard) pairs this relay holds entries of.
    fn held(&self) -> BTreeSet<(String, u8)> {
        let lists = self.lists.read().unwrap_or_else(|e| e.into_inner());
        lists.iter().flat_map(|(t, l)| (0..SHARDS).filter(|i| !l[usize::from(*i)].is_empty()).map(move |i| (t.clone(), i))).collect()
    }
}

/// Opens and installs one `SuppressionShard` (`deleted`: as empty). Logs what it refuses.
fn install_object(relay: &Relay, pool: &str, object: &ShardObject, deleted: bool) -> Option<(String, u8)> {
    use base64::Engine;
    let name = object.metadata.name.as_deref().unwrap_or_default();
    let s = &object.spec;
    if s.pool != pool || s.index >= SHARDS {
        tracing::warn!(shard = name, "a SuppressionShard for another pool or out of range; ignored");
        return None;
    }
    let shard = if deleted {
        None
    } else {
        let opened = base64::engine::general_purpose::STANDARD
            .decode(&s.sealed)
            .map_err(|e| e.to_string())
            .and_then(|b| Shard::open(&relay.spool.keys(), pool, &s.tenant, s.index, &b).map_err(|e| e.to_string()));
        match opened {
            Ok(shard) => Some(shard),
            Err(e) => {
                tracing::error!(shard = name, error = %e, "a SuppressionShard does not open under the spool key ring; keeping what this relay has");
                return None;
            }
        }
    };
    if let Err(e) = relay.suppressions.install(relay, &s.tenant, s.index, shard) {
        tracing::error!(shard = name, error = %e, "installing a suppression shard");
    }
    Some((s.tenant.clone(), s.index))
}

/// Watches the pool's `SuppressionShard` objects in `namespace` until shutdown, installing each
/// version; after each complete listing, the shards no object holds any more are emptied.
pub async fn watch(client: kube::Client, namespace: String, relay: Arc<Relay>) {
    let Some(pool) = relay.suppressions.log.as_ref().map(|l| l.pool.clone()) else { return };
    let api: Api<ShardObject> = Api::namespaced(client, &namespace);
    let config = watcher::Config::default().labels(&format!("{POOL_LABEL}={pool}"));
    let mut events = watcher(api, config).default_backoff().boxed();
    let mut shutdown = relay.shutdown_signal();
    let mut listed: BTreeSet<(String, u8)> = BTreeSet::new();
    loop {
        let next = tokio::select! {
            n = events.next() => n,
            _ = Relay::stopped(&mut shutdown) => return,
        };
        let (r, p) = (relay.clone(), pool.clone());
        match next {
            None => return,
            Some(Err(e)) => tracing::warn!(error = %e, "watching the pool's suppression shards; retrying"),
            Some(Ok(watcher::Event::Init)) => listed.clear(),
            Some(Ok(watcher::Event::InitApply(o))) => listed.extend(tokio::task::spawn_blocking(move || install_object(&r, &p, &o, false)).await.ok().flatten()),
            Some(Ok(watcher::Event::Apply(o))) => drop(tokio::task::spawn_blocking(move || install_object(&r, &p, &o, false)).await),
            Some(Ok(watcher::Event::Delete(o))) => drop(tokio::task::spawn_blocking(move || install_object(&r, &p, &o, true)).await),
            Some(Ok(watcher::Event::InitDone)) => {
                let gone: Vec<(String, u8)> = relay.suppressions.held().difference(&listed).cloned().collect();
                let _ = tokio::task::spawn_blocking(move || {
                    for (tenant, index) in gone {
                        if let Err(e) = r.suppressions.install(&r, &tenant, index, None) {
                            tracing::error!(error = %e, "emptying a suppression shard the pool no longer has");
                        }
                    }
                })
                .await;
                tracing::info!(shards = listed.len(), "suppression shards listed");
            }
        }
    }
}
