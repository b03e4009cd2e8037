//! Runs the controllers. Each is gather → evaluate (pure) → apply, with one field manager.

use crate::{dkim_key, Context};
use cascade_crds::v1alpha1::DkimKey;
use futures::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::runtime::{watcher, Controller};
use std::sync::Arc;

/// Runs until the stream ends (never, in practice) or the task is dropped.
pub async fn run(ctx: Arc<Context>) {
    let keys: Api<DkimKey> = Api::all(ctx.client.clone());
    let secrets: Api<DynamicObject> = Api::all_with(ctx.client.clone(), &ctx.secrets.resource);
    let managed = watcher::Config::default().labels("app.kubernetes.io/managed-by=cascade-operator");
    Controller::new(keys, watcher::Config::default())
        .owns_with(secrets, ctx.secrets.resource.clone(), managed)
        .run(dkim_key::reconcile, dkim_key::error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "controller event");
            }
        })
        .await;
}
