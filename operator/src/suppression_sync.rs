//! Pool-wide suppression lists (the format and merge rule: [`cascade_core::suppression`]). Every
//! [`INTERVAL`], for each RelayPool: read each relay's unconfirmed changes over the admin
//! channel (`GET /suppressions/changes?after=N`), merge them into the tenant's
//! `SuppressionShard` objects in the pool's namespace (last writer wins), and write the shards
//! that had changes; the relays watch them. A shard records how far it holds each relay's log,
//! so a relay drops a change from its log only once the pool has it: a relay or operator that
//! dies in between loses nothing. A tenant's shards are deleted once no SendingDomain of that
//! namespace is on the pool. Leader only (it runs beside the controllers).

use crate::render::evaluate::key_of;
use crate::Context;
use base64::Engine;
use cascade_core::http_client::Tls;
use cascade_core::seal::KeyRing;
use cascade_core::suppression::{shard_of, Change, Changes, Shard, ShardError, POOL_LABEL};
use cascade_crds::v1alpha1::{RelayPool, SuppressionShard, SuppressionShardSpec};
use futures::StreamExt;
use kube::api::{Api, DeleteParams, ObjectMeta, PartialObjectMeta};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Resource, ResourceExt};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// How often the relays are asked (propagation to every relay: this, one write, one watch event).
pub const INTERVAL: Duration = Duration::from_secs(2);
pub const TENANT_LABEL: &str = "cascade-mail.com/tenant";
/// At most this many pages of changes from one relay per round.
const PAGES: usize = 20;

/// Where each relay's log was read to: by admin address (log, seq) and by log.
#[derive(Default)]
struct Cursors {
    by_addr: HashMap<SocketAddr, (String, u64)>,
    by_log: HashMap<String, u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("reading or writing SuppressionShard {name}: {source}")]
    Kube { name: String, source: kube::Error },
    #[error("SuppressionShard {name}: {source}")]
    Shard { name: String, source: ShardError },
}

/// Runs until the task is dropped.
pub async fn run(ctx: Arc<Context>) {
    let (reader, writer) = reflector::store::<PartialObjectMeta<SuppressionShard>>();
    let streams = ctx
        .pool_namespaces
        .iter()
        .map(|ns| watcher(Api::<PartialObjectMeta<SuppressionShard>>::namespaced(ctx.client.clone(), ns), watcher::Config::default().labels(POOL_LABEL)).default_backoff().boxed());
    let shards = reflector::reflector(writer, futures::stream::select_all(streams)).applied_objects().for_each(|_| futures::future::ready(()));
    let rounds = async {
        let mut cursors: HashMap<(String, String), Cursors> = HashMap::new();
        let mut tick = tokio::time::interval(INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let pools = crate::caches::all(&ctx.caches().await.pools);
            for pool in &pools {
                if let Err(e) = sync_pool(&ctx, pool, cursors.entry(key_of(pool)).or_default(), &reader).await {
                    tracing::warn!(pool = %pool.name_any(), error = %e, "sharing suppression lists; trying again next round");
                }
            }
            cursors.retain(|k, _| pools.iter().any(|p| &key_of(p) == k));
        }
    };
    futures::join!(shards, rounds);
}

/// A relay's log and the changes read from it.
type Read = (String, Vec<Change>);

/// One relay's changes after `after`, page by page: (log, changes); `None` when it does not
/// answer or does not share.
async fn fetch(addr: SocketAddr, tls: Option<&Tls>, cursors: &Cursors) -> Option<Read> {
    let remembered = cursors.by_addr.get(&addr);
    let mut after = remembered.map_or(0, |(_, s)| *s);
    let (mut log, mut out) = (None::<String>, Vec::new());
    for _ in 0..PAGES {
        let page: Changes = crate::relay_admin::get_json(addr, tls, &format!("/suppressions/changes?after={after}")).await?;
        if log.is_none() && remembered.is_some_and(|(l, _)| *l != page.log) {
            // Another log at this address (a new pod or volume): read it from where it is.
            after = cursors.by_log.get(&page.log).copied().unwrap_or(0);
            log = Some(page.log);
            continue;
        }
        after = page.changes.last().map_or(after, |c| c.seq);
        log = Some(page.log);
        out.extend(page.changes);
        if !page.more {
            break;
        }
    }
    log.map(|l| (l, out))
}

async fn sync_pool(ctx: &Context, pool: &RelayPool, cursors: &mut Cursors, shards: &Store<PartialObjectMeta<SuppressionShard>>) -> Result<(), SyncError> {
    let (ns, name) = key_of(pool);
    let api: Api<SuppressionShard> = Api::namespaced(ctx.client.clone(), &ns);
    let secret = |s: &str, e: kube::Error| SyncError::Kube { name: format!("(secret {s})"), source: e };
    let keys_name = crate::labels::keys_secret(&name);
    let Some(keys) = ctx.secrets.get(&ns, &keys_name).await.map_err(|e| secret(&keys_name, e))? else { return Ok(()) };
    let Some(ring) = keys.get(crate::bundle::SPOOL_KEY).and_then(|k| KeyRing::parse(&String::from_utf8_lossy(k)).ok()) else { return Ok(()) };
    let admin_name = crate::admin_authority::secret_name(&name);
    let admin = ctx.secrets.get(&ns, &admin_name).await.map_err(|e| secret(&admin_name, e))?;
    let tls = admin.as_ref().and_then(|a| crate::admin_authority::operator_client(a, &ctx.master, &ns, &name, cascade_core::time::now_unix()));
    let addrs = crate::relay_admin::addrs(ctx, pool).await;
    let fetched: Vec<(SocketAddr, Option<Read>)> = futures::future::join_all(addrs.iter().map(|a| async { (*a, fetch(*a, tls.as_ref(), cursors).await) })).await;
    let mut groups: BTreeMap<(String, u8), Vec<(&str, &Change)>> = BTreeMap::new();
    let mut through: HashMap<&str, u64> = HashMap::new();
    for (log, changes) in fetched.iter().filter_map(|(_, f)| f.as_ref()) {
        for c in changes.iter().filter(|c| valid_tenant(&c.tenant)) {
            groups.entry((c.tenant.clone(), shard_of(&c.tenant, &c.address))).or_default().push((log, c));
        }
        let last = changes.last().map_or_else(|| cursors.by_log.get(log).copied().unwrap_or(0), |c| c.seq);
        through.insert(log, last);
    }
    let mut failed = None;
    for ((tenant, index), changes) in &groups {
        if let Err(e) = write_shard(&api, pool, &ring, tenant, *index, changes, &through).await {
            tracing::warn!(pool = %name, tenant, shard = index, error = %e, "a suppression shard was not written; its changes are read again next round");
            failed = Some(e);
        }
    }
    if failed.is_none() {
        for (addr, f) in &fetched {
            if let Some((log, _)) = f {
                let seq = through[log.as_str()];
                cursors.by_addr.insert(*addr, (log.clone(), seq));
                cursors.by_log.insert(log.clone(), seq);
            }
        }
    }
    collect_garbage(ctx, &api, pool, shards).await;
    failed.map_or(Ok(()), Err)
}

/// A tenant name that can be part of an object name and label (a namespace name).
fn valid_tenant(t: &str) -> bool {
    !t.is_empty() && t.len() <= 63 && t.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') && !t.starts_with('-') && !t.ends_with('-')
}

/// Merges `changes` (by log) into the shard and writes it back, every log's cursor at `through`.
async fn write_shard(api: &Api<SuppressionShard>, pool: &RelayPool, ring: &KeyRing, tenant: &str, index: u8, changes: &[(&str, &Change)], through: &HashMap<&str, u64>) -> Result<(), SyncError> {
    let pool_name = pool.name_any();
    let name = cascade_core::suppression::object_name(&pool_name, tenant, index);
    let kube_err = |e| SyncError::Kube { name: name.clone(), source: e };
    let shard_err = |e| SyncError::Shard { name: name.clone(), source: e };
    let mut shard = match api.get_opt(&name).await.map_err(kube_err)? {
        Some(live) => {
            let sealed = base64::engine::general_purpose::STANDARD.decode(&live.spec.sealed).map_err(|e| shard_err(ShardError::Document(e.to_string())))?;
            Shard::open(ring, &pool_name, tenant, index, &sealed).map_err(shard_err)?
        }
        None => Shard::new(tenant, index),
    };
    let now = cascade_core::time::now_unix();
    let logs: BTreeSet<&str> = changes.iter().map(|(l, _)| *l).collect();
    for log in logs {
        let of_log: Vec<&Change> = changes.iter().filter(|(l, _)| *l == log).map(|(_, c)| *c).collect();
        shard.merge(log, &of_log, through.get(log).copied().unwrap_or(0), now);
    }
    shard.prune(now);
    let sealed = shard.seal(ring, &pool_name).map_err(shard_err)?;
    let labels = crate::labels::managed(&[(POOL_LABEL, &pool_name), (TENANT_LABEL, tenant)]);
    let owner = pool.controller_owner_ref(&()).map(|mut o| {
        // Deleted with its pool; not a controller reference (a shard write starts no pool reconcile).
        o.controller = None;
        o
    });
    let spec = SuppressionShardSpec { pool: pool_name.clone(), tenant: tenant.into(), index, entries: shard.entries.len() as u32, sealed: base64::engine::general_purpose::STANDARD.encode(sealed) };
    let metadata = ObjectMeta { name: Some(name.clone()), namespace: pool.namespace(), labels: Some(labels), owner_references: owner.map(|o| vec![o]), ..Default::default() };
    crate::apply::force(api, &SuppressionShard { metadata, spec }).await.map_err(kube_err)?;
    Ok(())
}

/// Deletes the shards of tenants with no SendingDomain on the pool any more.
async fn collect_garbage(ctx: &Context, api: &Api<SuppressionShard>, pool: &RelayPool, shards: &Store<PartialObjectMeta<SuppressionShard>>) {
    let (ns, name) = key_of(pool);
    let domains = crate::caches::all(&ctx.caches().await.domains);
    let served: BTreeSet<String> = domains.iter().filter(|d| d.spec.relay_pool.name == name && d.spec.relay_pool.namespace == ns).filter_map(|d| d.namespace()).collect();
    for s in shards.state().iter().filter(|s| s.namespace().as_deref() == Some(ns.as_str()) && s.labels().get(POOL_LABEL) == Some(&name)) {
        let tenant = s.labels().get(TENANT_LABEL).cloned().unwrap_or_default();
        if !served.contains(&tenant) && s.meta().deletion_timestamp.is_none() {
            match api.delete(&s.name_any(), &DeleteParams::default()).await {
                Ok(_) => tracing::info!(pool = %name, tenant, shard = %s.name_any(), "suppression shard deleted: the tenant has no domain on the pool"),
                Err(e) => tracing::warn!(pool = %name, shard = %s.name_any(), error = %e, "deleting a suppression shard"),
            }
        }
    }
}
