//! One watch per custom resource kind (and per kind of Secret the operator issues to tenants),
//! shared by every controller that needs it: the watch feeds
//! a cache of stripped objects ([`crate::lean::strip`]) and, only after the cache has the change,
//! tells each consumer. A reconcile therefore reads the caches instead of listing every object
//! from the API server each time (memory: one stripped copy of each object, not one list per
//! reconcile), and a reconcile triggered by a change always sees that change.
//!
//! Why not kube's shared reflector (`store_shared`): it does not pass deletions on, and a
//! deleted ApiKey must leave the bundle. Why a re-list tells consumers of every object again: a
//! watch restarted after a gap swaps in the new list only at its end, so a change made during
//! the gap must trigger reconciles that read the swapped cache.

use crate::lean::{strip, watch_config};
use cascade_crds::v1alpha1::{ApiKey, DkimKey, RelayPool, SendingDomain, WebhookEndpoint};
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::runtime::reflector::{self, store::Writer, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::Resource;
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use tokio::sync::{mpsc, watch};

/// What one consumer may lag behind before the watch waits for it.
const BUFFER: usize = 1024;

/// The caches of the four custom resource kinds and of the Secrets the controllers issue to
/// tenants (credentials and sealed DKIM keys, data kept only for those shaped like the
/// operator's: see [`crate::lean::lean_secret`]), filled by [`Feed::run`].
#[derive(Clone)]
pub struct Caches {
    pub pools: Store<RelayPool>,
    pub domains: Store<SendingDomain>,
    pub dkim_keys: Store<DkimKey>,
    pub api_keys: Store<ApiKey>,
    pub webhooks: Store<WebhookEndpoint>,
    pub credentials: Store<Secret>,
    pub dkim_secrets: Store<Secret>,
    /// One per feed: true once its cache holds a complete list. (Not `Store::wait_until_ready`:
    /// with several waiters at once, it wakes only the last one.)
    pub ready: Vec<watch::Receiver<bool>>,
}

impl Caches {
    /// Waits until every cache holds its first complete list.
    pub async fn ready(&self) {
        for r in &self.ready {
            let _ = r.clone().wait_for(|ready| *ready).await;
        }
    }
}

/// A feed of the Secrets carrying `label` (any value), shaped by [`crate::lean::lean_secret`].
pub fn secrets(label: &str) -> Feed<Secret> {
    Feed::with(watcher::Config::default().page_size(crate::lean::SECRET_PAGE).labels(label), crate::lean::lean_secret)
}

/// Every object of a cache, cloned out.
pub fn all<K: Resource<DynamicType = ()> + Clone>(store: &Store<K>) -> Vec<K> {
    store.state().iter().map(|o| (**o).clone()).collect()
}

/// A watch of `K` feeding a cache, and the consumers it tells.
pub struct Feed<K: Resource<DynamicType = ()> + Clone + 'static> {
    writer: Writer<K>,
    reader: Store<K>,
    consumers: Vec<mpsc::Sender<K>>,
    ready: watch::Sender<bool>,
    config: watcher::Config,
    /// What of each object is kept (applied before the cache sees it).
    shape: fn(&mut K),
}

impl<K> Feed<K>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    /// Every `K`, [`strip`]ped.
    pub fn new() -> Self {
        Self::with(watch_config(), strip)
    }

    /// The `K`s `config` selects, shaped by `shape`.
    pub fn with(config: watcher::Config, shape: fn(&mut K)) -> Self {
        let (reader, writer) = reflector::store();
        Self { writer, reader, consumers: Vec::new(), ready: watch::channel(false).0, config, shape }
    }

    pub fn cache(&self) -> Store<K> {
        self.reader.clone()
    }

    /// Turns true once the cache holds a complete list.
    pub fn ready(&self) -> watch::Receiver<bool> {
        self.ready.subscribe()
    }

    /// A new consumer: every object the cache changed, after it changed (a trigger stream for
    /// a controller).
    pub fn subscribe(&mut self) -> impl Stream<Item = Result<K, watcher::Error>> + Send + 'static {
        let (tx, rx) = mpsc::channel(BUFFER);
        self.consumers.push(tx);
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|k| (Ok(k), rx)) })
    }

    /// Watches every `K` in the cluster until the task is dropped.
    pub async fn run(self, client: kube::Client) {
        let Self { mut writer, reader, consumers, ready, config, shape } = self;
        let mut events = watcher::watcher(Api::<K>::all(client), config).default_backoff().modify(shape).boxed();
        while let Some(event) = events.next().await {
            let event = match event {
                Ok(e) => e,
                Err(e) => {
                    tracing::debug!(error = %e, kind = %K::kind(&()), "watch");
                    continue;
                }
            };
            writer.apply_watcher_event(&event);
            let changed: Vec<K> = match event {
                Event::Apply(k) | Event::Delete(k) => vec![k],
                Event::InitDone => {
                    ready.send_replace(true);
                    all(&reader)
                }
                Event::Init | Event::InitApply(_) => continue,
            };
            for k in changed {
                for tx in &consumers {
                    let _ = tx.send(k.clone()).await;
                }
            }
        }
    }
}

impl<K> Default for Feed<K>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    fn default() -> Self {
        Self::new()
    }
}
