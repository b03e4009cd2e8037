//! Runs the controllers: which objects each one watches and owns, and the gauges of managed
//! objects. The controllers themselves ([`crate::dkim_key`], [`crate::api_key`],
//! [`crate::relay_pool`], [`crate::sending_domain`]) import only shared modules, never this one.
//!
//! Memory stays bounded ([`crate::lean`]): one shared watch per custom resource kind fills one
//! cache of stripped objects ([`crate::caches`]) that every controller reads, every watch pages
//! its initial list, and children (Secrets, workloads) are watched as metadata only, never
//! cached. A pool's workloads are watched only in the namespaces relay pools may live in
//! ([`Context::pool_namespaces`]), where the operator's namespaced Role lets it.

use crate::caches::{Caches, Feed};
use crate::labels::MANAGED_SELECTOR;
use crate::lean::watch_config;
use crate::{api_key, dkim_key, relay_pool, Context};
use cascade_crds::v1alpha1::{ApiKey, DkimKey, RelayPool, SendingDomain};
use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{controller, watcher, Controller, WatchStreamExt};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

/// Runs a controller's results: a success after failures turns `Reconciled` True again
/// ([`crate::failure::recovered`]).
async fn drain<K, A, E: std::fmt::Display>(stream: impl Stream<Item = Result<(ObjectRef<K>, A), E>>, kind: &'static str, cache: Store<K>, ctx: Arc<Context>)
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    stream
        .for_each(|result| {
            match result {
                Ok((oref, _)) => {
                    if let Some(obj) = cache.get(&oref) {
                        crate::failure::recovered::<K>(&ctx, kind, obj.meta());
                    }
                }
                Err(e) => tracing::debug!(error = %e, "controller event"),
            }
            futures::future::ready(())
        })
        .await;
}

/// Reconciles of one kind at a time: bounds the lists and Secrets held at once.
const CONCURRENCY: u16 = 4;

type Trigger<K> = std::pin::Pin<Box<dyn Stream<Item = Result<K, watcher::Error>> + Send>>;

/// A controller of `K`s reconciling what `feed` reports, reading `cache`.
fn controller<K>(feed: impl Stream<Item = Result<K, watcher::Error>> + Send + 'static, cache: Store<K>) -> Controller<K>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    Controller::for_stream(feed, cache).with_config(controller::Config::default().concurrency(CONCURRENCY))
}

/// Metadata-only changes of the operator's own `K`s: everywhere, or in these namespaces.
fn owned<K>(client: &kube::Client, namespaces: Option<&[String]>) -> Trigger<PartialObjectMeta<K>>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let cfg = || watch_config().labels(MANAGED_SELECTOR);
    let watch = |api: Api<PartialObjectMeta<K>>| watcher(api, cfg()).default_backoff().touched_objects().boxed();
    match namespaces {
        None => watch(Api::all(client.clone())),
        Some(nss) => futures::stream::select_all(nss.iter().map(|ns| watch(Api::namespaced(client.clone(), ns)))).boxed(),
    }
}

/// A pool that is new or whose spec changed (its generation) may now serve other namespaces, on
/// other ports or under another certificate: the ApiKeys it could serve write their connection
/// Secrets again. Status writes (no new generation) trigger nothing.
fn keys_of_changed_pool(keys: Store<ApiKey>) -> impl Fn(RelayPool) -> Vec<ObjectRef<ApiKey>> + Send + Sync + 'static {
    let seen = std::sync::Mutex::new(std::collections::HashMap::<(Option<String>, String), i64>::new());
    move |pool: RelayPool| {
        let generation = pool.metadata.generation.unwrap_or_default();
        let fresh = seen.lock().unwrap_or_else(|e| e.into_inner()).insert((pool.namespace(), pool.name_any()), generation) != Some(generation);
        let t = &pool.spec.tenants;
        let could_serve = |k: &ApiKey| !t.match_labels.is_empty() || k.namespace().is_some_and(|ns| t.match_names.contains(&ns));
        if !fresh {
            return Vec::new();
        }
        keys.state().iter().filter(|k| could_serve(k)).map(|k| ObjectRef::from_obj(&**k)).collect()
    }
}

/// Runs every controller until the task is dropped.
pub async fn run(ctx: Arc<Context>) {
    let c = &ctx.client;
    let pool_nss = Some(ctx.pool_namespaces.as_slice());
    let (mut pool_feed, mut domain_feed, mut dkim_feed, mut key_feed) = (Feed::<RelayPool>::new(), Feed::<SendingDomain>::new(), Feed::<DkimKey>::new(), Feed::<ApiKey>::new());
    let (credentials, dkim_secrets) = (crate::caches::secrets(api_key::SECRET_LABEL), crate::caches::secrets(dkim_key::SECRET_LABEL));
    let mut hook_feed = Feed::<cascade_crds::v1alpha1::WebhookEndpoint>::new();
    let caches = Caches {
        pools: pool_feed.cache(),
        domains: domain_feed.cache(),
        dkim_keys: dkim_feed.cache(),
        api_keys: key_feed.cache(),
        webhooks: hook_feed.cache(),
        credentials: credentials.cache(),
        dkim_secrets: dkim_secrets.cache(),
        ready: vec![pool_feed.ready(), domain_feed.ready(), dkim_feed.ready(), key_feed.ready(), hook_feed.ready(), credentials.ready(), dkim_secrets.ready()],
    };
    let _ = ctx.caches.set(caches.clone());
    let dkim = controller(dkim_feed.subscribe(), caches.dkim_keys.clone()).owns_stream(owned::<Secret>(c, None)).run(dkim_key::reconcile, dkim_key::error_policy, ctx.clone());
    let keys = controller(key_feed.subscribe(), caches.api_keys.clone())
        .owns_stream(owned::<Secret>(c, None))
        .watches_stream(pool_feed.subscribe(), keys_of_changed_pool(caches.api_keys.clone()))
        .run(api_key::reconcile, api_key::error_policy, ctx.clone());
    let hooks =
        controller(hook_feed.subscribe(), caches.webhooks.clone()).owns_stream(owned::<Secret>(c, None)).run(crate::webhook_endpoint::reconcile, crate::webhook_endpoint::error_policy, ctx.clone());
    // Pools re-evaluate when anything they could serve changes: every pool, since a namespace or
    // a domain claim elsewhere can change what a pool serves.
    let store = caches.pools.clone();
    let all_pools = move || store.state().iter().map(|p| ObjectRef::from_obj(&**p)).collect::<Vec<_>>();
    let (a, b, c2, d) = (all_pools.clone(), all_pools.clone(), all_pools.clone(), all_pools);
    let pools = controller(pool_feed.subscribe(), caches.pools.clone())
        .owns_stream(owned::<Secret>(c, pool_nss))
        .owns_stream(owned::<ServiceAccount>(c, pool_nss))
        .owns_stream(owned::<Role>(c, pool_nss))
        .owns_stream(owned::<RoleBinding>(c, pool_nss))
        .owns_stream(owned::<StatefulSet>(c, pool_nss))
        .owns_stream(owned::<Service>(c, pool_nss))
        .owns_stream(owned::<PodDisruptionBudget>(c, pool_nss))
        .owns_stream(owned::<NetworkPolicy>(c, pool_nss))
        .owns_stream(owned::<HorizontalPodAutoscaler>(c, pool_nss))
        .owns_stream(owned::<PersistentVolumeClaim>(c, pool_nss))
        .owns_stream(owned::<Job>(c, pool_nss))
        .watches_stream(domain_feed.subscribe(), move |_| a())
        .watches_stream(dkim_feed.subscribe(), move |_| b())
        .watches_stream(key_feed.subscribe(), move |_| c2())
        .watches_stream(hook_feed.subscribe(), move |_| d())
        .run(relay_pool::reconcile, relay_pool::error_policy, ctx.clone());
    let metrics = ctx.metrics.clone();
    let counted = caches.clone();
    let gauges = async move {
        loop {
            for (kind, n) in [("DkimKey", counted.dkim_keys.state().len()), ("ApiKey", counted.api_keys.state().len()), ("RelayPool", counted.pools.state().len())] {
                metrics.managed.with_label_values(&[kind]).set(n as i64);
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    };
    // SendingDomains are checked again when a DkimKey of their namespace and domain changes.
    let domain_store = caches.domains.clone();
    let domains = controller(domain_feed.subscribe(), caches.domains.clone())
        .watches_stream(dkim_feed.subscribe(), move |k: DkimKey| {
            let ns = k.namespace();
            domain_store.state().iter().filter(|d| d.namespace() == ns && d.spec.domain == k.spec.domain).map(|d| ObjectRef::from_obj(&**d)).collect::<Vec<_>>()
        })
        .run(crate::sending_domain::reconcile, crate::sending_domain::error_policy, ctx.clone());
    let feeds = futures::future::join4(pool_feed.run(c.clone()), domain_feed.run(c.clone()), dkim_feed.run(c.clone()), key_feed.run(c.clone()));
    let secret_feeds = futures::future::join3(credentials.run(c.clone()), dkim_secrets.run(c.clone()), hook_feed.run(c.clone()));
    let suppressions = crate::suppression_sync::run(ctx.clone());
    // Erasure requests: rare, reconciled straight from their own watch.
    let erasures = Controller::new(Api::<cascade_crds::v1alpha1::ErasureRequest>::all(c.clone()), watch_config())
        .run(crate::erasure::reconcile, crate::erasure::error_policy, ctx.clone())
        .for_each(|_| futures::future::ready(()));
    let (k, p, d) = (caches.api_keys.clone(), caches.pools.clone(), caches.domains.clone());
    let admin_records = crate::admin_records::run(ctx.clone());
    futures::join!(
        drain(dkim, "DkimKey", caches.dkim_keys.clone(), ctx.clone()),
        drain(keys, "ApiKey", k, ctx.clone()),
        drain(hooks, "WebhookEndpoint", caches.webhooks.clone(), ctx.clone()),
        drain(pools, "RelayPool", p, ctx.clone()),
        drain(domains, "SendingDomain", d, ctx.clone()),
        gauges,
        feeds,
        secret_feeds,
        suppressions,
        erasures,
        admin_records
    );
}
