//! Runs the controllers: which objects each one watches and owns, and the gauges of managed
//! objects. The controllers themselves ([`crate::dkim_key`], [`crate::api_key`],
//! [`crate::relay_pool`], [`crate::sending_domain`]) import only shared modules, never this one.

use crate::labels::MANAGED_SELECTOR;
use crate::{api_key, dkim_key, relay_pool, Context};
use cascade_crds::v1alpha1::{ApiKey, DkimKey, RelayPool, SendingDomain};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::Api;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{watcher, Controller};
use kube::ResourceExt;
use std::sync::Arc;
use std::time::Duration;

async fn drain<T, E: std::fmt::Display>(stream: impl futures::Stream<Item = Result<T, E>>) {
    stream
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "controller event");
            }
        })
        .await;
}

/// Runs every controller until the task is dropped.
pub async fn run(ctx: Arc<Context>) {
    let c = || ctx.client.clone();
    let managed = || watcher::Config::default().labels(MANAGED_SELECTOR);
    let dkim = Controller::new(Api::<DkimKey>::all(c()), watcher::Config::default());
    let dkim_store = dkim.store();
    let dkim = dkim.owns(Api::<Secret>::all(c()), managed()).run(dkim_key::reconcile, dkim_key::error_policy, ctx.clone());
    let keys = Controller::new(Api::<ApiKey>::all(c()), watcher::Config::default());
    let key_store = keys.store();
    let keys = keys.owns(Api::<Secret>::all(c()), managed()).run(api_key::reconcile, api_key::error_policy, ctx.clone());
    // Pools re-evaluate when anything they could serve changes: every pool, since a namespace or
    // a domain claim elsewhere can change what a pool serves.
    let pools = Controller::new(Api::<RelayPool>::all(c()), watcher::Config::default());
    let store = pools.store();
    let pool_store = store.clone();
    let all_pools = move || store.state().iter().map(|p| ObjectRef::from_obj(&**p)).collect::<Vec<_>>();
    let (a, b, c2) = (all_pools.clone(), all_pools.clone(), all_pools);
    let pools = pools
        .owns(Api::<Secret>::all(c()), managed())
        .owns(Api::<ServiceAccount>::all(c()), managed())
        .owns(Api::<Role>::all(c()), managed())
        .owns(Api::<RoleBinding>::all(c()), managed())
        .owns(Api::<StatefulSet>::all(c()), managed())
        .owns(Api::<Service>::all(c()), managed())
        .owns(Api::<PodDisruptionBudget>::all(c()), managed())
        .owns(Api::<NetworkPolicy>::all(c()), managed())
        .owns(Api::<HorizontalPodAutoscaler>::all(c()), managed())
        .owns(Api::<PersistentVolumeClaim>::all(c()), managed())
        .owns(Api::<Job>::all(c()), managed())
        .watches(Api::<SendingDomain>::all(c()), watcher::Config::default(), move |_| a())
        .watches(Api::<DkimKey>::all(c()), watcher::Config::default(), move |_| b())
        .watches(Api::<ApiKey>::all(c()), watcher::Config::default(), move |_| c2())
        .run(relay_pool::reconcile, relay_pool::error_policy, ctx.clone());
    let metrics = ctx.metrics.clone();
    let gauges = async move {
        loop {
            for (kind, n) in [("DkimKey", dkim_store.state().len()), ("ApiKey", key_store.state().len()), ("RelayPool", pool_store.state().len())] {
                metrics.managed.with_label_values(&[kind]).set(n as i64);
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    };
    // SendingDomains are checked again when a DkimKey of their namespace and domain changes.
    let domains = Controller::new(Api::<SendingDomain>::all(c()), watcher::Config::default());
    let domain_store = domains.store();
    let domains = domains
        .watches(Api::<DkimKey>::all(c()), watcher::Config::default(), move |k: DkimKey| {
            let ns = k.namespace();
            domain_store.state().iter().filter(|d| d.namespace() == ns && d.spec.domain == k.spec.domain).map(|d| ObjectRef::from_obj(&**d)).collect::<Vec<_>>()
        })
        .run(crate::sending_domain::reconcile, crate::sending_domain::error_policy, ctx.clone());
    futures::join!(drain(dkim), drain(keys), drain(pools), drain(domains), gauges);
}
