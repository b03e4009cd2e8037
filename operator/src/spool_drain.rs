//! Spool volumes a scale-down leaves behind are drained, never dropped. A relay hands its queue
//! to its peers when it stops (the relay's `handover`); what it could not hand over stays on
//! its PersistentVolumeClaim. Claims whose ordinal is beyond the StatefulSet's desired and running
//! replicas belong to no pod: for each, a Job mounts it and runs `cascade-relay drain` to the
//! pool's relays. A claim back in use (scale-up) has its finished Job removed. [`plan`] is pure.

use crate::error::ReconcileError;
use crate::events::Note;
use crate::workloads::{meta, relay_mounts, restricted_container, restricted_pod, secret_volumes, CONFIG_DIR, SPOOL_DIR};
use crate::Context;
use cascade_crds::conditions::reasons;
use cascade_crds::v1alpha1::RelayPool;
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{Container, PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, PodSpec, PodTemplateSpec, Volume};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams};
use kube::{Resource, ResourceExt};
use std::collections::BTreeSet;

use crate::labels::{drain_pods as labels, DRAIN_OF};

/// What the shell sees: the StatefulSet's desired and running replicas, the pool's spool claims
/// and its drain Jobs.
pub struct Observed {
    pub desired: i32,
    pub running: i32,
    pub claims: Vec<String>,
    pub jobs: BTreeSet<String>,
}

#[derive(Debug, PartialEq)]
pub enum Step {
    /// Create this drain Job for this claim.
    Create { claim: String, job: Box<Job> },
    /// Delete this Job: its claim is in use again.
    Delete(String),
}

fn ordinal(pool: &str, claim: &str) -> Option<i32> {
    claim.strip_prefix(&format!("spool-{pool}-relay-"))?.parse().ok()
}

fn job_name(pool: &str, ordinal: i32) -> String {
    format!("{pool}-drain-{ordinal}")
}

pub fn plan(pool: &RelayPool, image: &str, o: &Observed) -> Vec<Step> {
    let name = pool.name_any();
    let mut steps = Vec::new();
    for claim in &o.claims {
        let Some(n) = ordinal(&name, claim) else { continue };
        let job = job_name(&name, n);
        let orphaned = n >= o.desired && n >= o.running;
        if orphaned && !o.jobs.contains(&job) {
            steps.push(Step::Create { claim: claim.clone(), job: Box::new(drain_job(pool, image, claim, &job)) });
        } else if !orphaned && o.jobs.contains(&job) {
            steps.push(Step::Delete(job));
        }
    }
    steps
}

/// A Job that mounts `claim` and hands its messages to the pool's relays.
pub fn drain_job(pool: &RelayPool, image: &str, claim: &str, job: &str) -> Job {
    let name = pool.name_any();
    let mut container = Container {
        name: "drain".into(),
        image: Some(image.into()),
        args: Some(["drain", "--config", &format!("{CONFIG_DIR}/relay.yaml"), "--spool", SPOOL_DIR, "--timeout", "10m"].map(String::from).to_vec()),
        security_context: Some(restricted_container()),
        volume_mounts: Some(relay_mounts()),
        ..Default::default()
    };
    let mut volumes = secret_volumes(&name);
    volumes.push(Volume { name: "spool".into(), persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource { claim_name: claim.into(), read_only: Some(false) }), ..Default::default() });
    let mut pod = PodSpec {
        restart_policy: Some("OnFailure".into()),
        // The drain talks to its peers only; it needs no API access.
        automount_service_account_token: Some(false),
        security_context: Some(restricted_pod()),
        volumes: Some(volumes),
        ..Default::default()
    };
    crate::pod_shape::common(pool, &mut pod, &mut container);
    pod.containers = vec![container];
    let mut metadata = meta(pool, job.to_string());
    let mut job_labels = labels(&name);
    job_labels.insert(crate::labels::MANAGED_BY.into(), crate::labels::FIELD_MANAGER.into());
    metadata.labels = Some(job_labels);
    Job {
        metadata,
        spec: Some(JobSpec {
            backoff_limit: Some(6),
            template: PodTemplateSpec { metadata: Some(ObjectMeta { labels: Some(labels(&name)), ..Default::default() }), spec: Some(pod) },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Whether a drain Job has finished (succeeded; a failed one is retried by its backoff and then
/// left for a person, and counts as draining until then).
fn finished(job: &Job) -> bool {
    job.status.as_ref().is_some_and(|s| s.succeeded.unwrap_or(0) > 0 || s.conditions.iter().flatten().any(|c| c.type_ == "Complete" && c.status == "True"))
}

/// Lists the pool's spool claims and drain Jobs, then creates and deletes Jobs as [`plan`] says.
/// Returns how many drain Jobs are still at work (the `Progressing` condition's `draining`).
pub async fn apply(ctx: &Context, pool: &RelayPool, desired: i32, running: i32) -> Result<i32, ReconcileError> {
    let (ns, name) = (pool.namespace().unwrap_or_default(), pool.name_any());
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let claims = claims.list(&ListParams::default().labels(&format!("{}={name}", crate::labels::RELAY_POOL))).await?.items.iter().map(|c| c.name_any()).collect();
    let listed = jobs.list(&ListParams::default().labels(&format!("{DRAIN_OF}={name}"))).await?;
    let observed = Observed { desired, running, claims, jobs: listed.items.iter().map(|j| j.name_any()).collect() };
    let mut draining: BTreeSet<String> = listed.items.iter().filter(|j| !finished(j)).map(|j| j.name_any()).collect();
    for step in plan(pool, &ctx.relay_image, &observed) {
        match step {
            Step::Create { claim, job } => {
                let job_name = job.name_any();
                crate::apply::force(&jobs, &job).await?;
                draining.insert(job_name.clone());
                tracing::info!(namespace = %ns, relay_pool = %name, job = %job_name, claim = %claim, "draining a spool volume no relay uses");
                let note = format!("spool volume {claim} belongs to no relay: Job {job_name} hands its queued mail to the pool's relays");
                ctx.events.publish(&pool.object_ref(&()), &Note::normal(reasons::SPOOL_DRAIN, "DrainSpool", note)).await;
            }
            Step::Delete(job_name) => {
                jobs.delete(&job_name, &DeleteParams::background()).await?;
                draining.remove(&job_name);
                tracing::info!(namespace = %ns, relay_pool = %name, job = %job_name, "spool volume in use again; drain Job removed");
            }
        }
    }
    Ok(i32::try_from(draining.len()).unwrap_or(i32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> RelayPool {
        let mut p = RelayPool::new("main", serde_json::from_value(serde_json::json!({})).unwrap());
        p.metadata.namespace = Some("cascade-system".into());
        p
    }

    fn observed(desired: i32, running: i32, claims: &[&str], jobs: &[&str]) -> Observed {
        Observed { desired, running, claims: claims.iter().map(|s| s.to_string()).collect(), jobs: jobs.iter().map(|s| s.to_string()).collect() }
    }

    #[test]
    fn claims_beyond_the_replicas_get_a_drain_job_once_their_pod_is_gone() {
        let claims = ["spool-main-relay-0", "spool-main-relay-1", "spool-main-relay-2", "spool-other-relay-5", "data-x"];
        // Scaling 3 -> 1 while relay-2 and relay-1 are still stopping: nothing yet.
        assert!(plan(&pool(), "img", &observed(1, 3, &claims, &[])).is_empty());
        // relay-2 is gone: its claim is drained; relay-1's pod is still there.
        let steps = plan(&pool(), "img", &observed(1, 2, &claims, &[]));
        assert_eq!(steps.len(), 1);
        let Step::Create { claim, job } = &steps[0] else { panic!("{steps:?}") };
        assert_eq!(claim, "spool-main-relay-2");
        assert_eq!(job.metadata.name.as_deref(), Some("main-drain-2"));
        // Both gone; relay-2's Job exists already.
        let steps = plan(&pool(), "img", &observed(1, 1, &claims, &["main-drain-2"]));
        assert!(matches!(&steps[..], [Step::Create { claim, job }] if claim == "spool-main-relay-1" && job.metadata.name.as_deref() == Some("main-drain-1")));
        // Scaled back up to 3: the claims are in use, their finished Jobs go.
        let steps = plan(&pool(), "img", &observed(3, 3, &claims, &["main-drain-1", "main-drain-2"]));
        assert_eq!(steps, vec![Step::Delete("main-drain-1".into()), Step::Delete("main-drain-2".into())]);
    }

    #[test]
    fn the_drain_job_mounts_the_claim_runs_drain_restricted_and_is_no_relay() {
        let job = drain_job(&pool(), "cascade-relay:1", "spool-main-relay-2", "main-drain-2");
        let spec = job.spec.unwrap().template.spec.unwrap();
        let c = &spec.containers[0];
        assert_eq!(c.args.clone().unwrap(), ["drain", "--config", "/etc/cascade/relay.yaml", "--spool", "/var/spool/cascade", "--timeout", "10m"]);
        let claim = spec.volumes.unwrap().into_iter().find_map(|v| v.persistent_volume_claim).unwrap();
        assert_eq!(claim.claim_name, "spool-main-relay-2");
        let sc = c.security_context.clone().unwrap();
        assert_eq!((sc.read_only_root_filesystem, sc.allow_privilege_escalation), (Some(true), Some(false)));
        assert_eq!(spec.automount_service_account_token, Some(false));
        assert!(!job.metadata.labels.unwrap().contains_key("cascade-mail.com/relay-pool"), "never selected by the relays' Service");
    }
}
