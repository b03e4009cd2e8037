//! Kubernetes-convention status conditions, and the one helper that sets them: it keeps
//! `lastTransitionTime` unless the status flips, and always records `observedGeneration`
//! (the cert-manager and API-conventions way, so Flux and Argo CD can gate on `Ready`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One aspect of a resource's state.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type, e.g. `Ready`, `DomainConflict`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// Machine-readable reason in CamelCase.
    pub reason: String,
    /// Human-readable explanation: what is wrong and what to change.
    pub message: String,
    /// RFC 3339 time of the last change of `status`.
    pub last_transition_time: String,
    /// The `metadata.generation` this condition was computed for.
    pub observed_generation: i64,
}

pub const TRUE: &str = "True";
pub const FALSE: &str = "False";
pub const UNKNOWN: &str = "Unknown";

/// Condition types. Each has one writer: `Ready` of a RelayPool, DkimKey and ApiKey is their
/// controller's; a SendingDomain's `Ready` and `DomainConflict` are its RelayPool's, its DNS
/// verdicts the SendingDomain controller's; `ExternalDNS` is the RelayPool's.
pub mod types {
    pub const READY: &str = "Ready";
    /// Whether the last reconcile of the object succeeded (every kind; its own writer, the error
    /// policy).
    pub const RECONCILED: &str = "Reconciled";
    pub const DOMAIN_CONFLICT: &str = "DomainConflict";
    pub const EXTERNAL_DNS: &str = "ExternalDNS";
    pub const SPF_VERIFIED: &str = "SPFVerified";
    pub const DKIM_VERIFIED: &str = "DKIMVerified";
    pub const DMARC_VERIFIED: &str = "DMARCVerified";
    pub const RETURN_PATH_VERIFIED: &str = "ReturnPathVerified";
    /// The SendingDomain's namespace proved it controls the domain (the ownership challenge),
    /// or the serving pool assigns the domain to it.
    pub const DOMAIN_VERIFIED: &str = "DomainVerified";
    /// A RelayPool's rollout (new pods or a new configuration) is under way.
    pub const PROGRESSING: &str = "Progressing";
    /// A relay of the pool refused the configuration it was given.
    pub const DEGRADED: &str = "Degraded";
}

/// Condition and Event reasons: the machine-readable half of the status contract.
pub mod reasons {
    // RelayPool
    pub const CONFIG_RENDERED: &str = "ConfigRendered";
    /// Every desired relay is ready and runs the current configuration.
    pub const SERVING: &str = "Serving";
    /// Relays are starting, updating or loading the current configuration.
    pub const ROLLING_OUT: &str = "RollingOut";
    pub const ROLLOUT_COMPLETE: &str = "RolloutComplete";
    /// Drain Jobs are handing a scale-down's spool volumes to the relays.
    pub const DRAINING: &str = "Draining";
    pub const CONFIG_REFUSED: &str = "ConfigRefused";
    pub const CONFIG_ACCEPTED: &str = "ConfigAccepted";
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// A RelayPool outside the namespaces the operator may write workloads in.
    pub const NAMESPACE_NOT_MANAGED: &str = "NamespaceNotManaged";
    pub const PUBLISHED: &str = "Published";
    pub const CRD_NOT_INSTALLED: &str = "CRDNotInstalled";
    // SendingDomain
    pub const DOMAIN_CONFLICT: &str = "DomainConflict";
    pub const DKIM_KEY_PENDING: &str = "DkimKeyPending";
    pub const DNS_NOT_VERIFIED: &str = "DNSNotVerified";
    pub const SERVED: &str = "Served";
    pub const NAMESPACE_NOT_SERVED: &str = "NamespaceNotServed";
    pub const DKIM_KEY_MISSING: &str = "DkimKeyMissing";
    /// A claim whose ownership challenge has not passed: not served, blocks no one.
    pub const OWNERSHIP_UNVERIFIED: &str = "OwnershipUnverified";
    /// Beyond the pool's per-tenant quota (`limits.tenantMaxDomains`, `tenantMaxApiKeys`).
    pub const QUOTA_EXCEEDED: &str = "QuotaExceeded";
    // DkimKey
    pub const KEY_GENERATED: &str = "KeyGenerated";
    /// WebhookEndpoint: its signing secret is in place.
    pub const SECRET_READY: &str = "SecretReady";
    pub const SECRET_ISSUED: &str = "SecretIssued";
    // ApiKey
    pub const ACTIVE: &str = "Active";
    pub const SUSPENDED: &str = "Suspended";
    pub const PENDING: &str = "Pending";
    // Events
    pub const CONFIG_UPDATED: &str = "ConfigUpdated";
    pub const CREDENTIALS_ISSUED: &str = "CredentialsIssued";
    pub const DKIM_KEY_CREATED: &str = "DkimKeyCreated";
    pub const DOMAIN_RETIRED: &str = "DomainRetired";
    pub const KEY_SUSPENDED: &str = "KeySuspended";
    pub const KEY_RESUMED: &str = "KeyResumed";
    pub const KEY_REGENERATED: &str = "KeyRegenerated";
    pub const KEY_ACTIVATED: &str = "KeyActivated";
    pub const KEY_RETIRING: &str = "KeyRetiring";
    pub const KEY_RETIRED: &str = "KeyRetired";
    pub const KEY_PENDING: &str = "KeyPending";
    /// The Active DkimKey is due for rotation and its successor's record is not in DNS.
    pub const ROTATION_STALLED: &str = "RotationStalled";
    /// A reconcile failed (a Warning Event naming the failed operation; retried with backoff).
    pub const RECONCILE_FAILED: &str = "ReconcileFailed";
    /// The reconcile after a failure succeeded.
    pub const RECONCILED: &str = "Reconciled";
    pub const SPOOL_DRAIN: &str = "SpoolDrain";
    pub const SPOOL_KEY_ROTATED: &str = "SpoolKeyRotated";
    pub const WORKLOAD_APPLIED: &str = "WorkloadApplied";
    pub const WORKLOAD_RECREATED: &str = "WorkloadRecreated";
}

/// Sets (adds or updates) condition `type_`. `now` is an RFC 3339 time, used only when the
/// condition is new or its status changes.
pub fn set(conditions: &mut Vec<Condition>, type_: &str, status: bool, reason: &str, message: &str, generation: i64, now: &str) {
    set_status(conditions, type_, Some(status), reason, message, generation, now)
}

/// Like [`set`], with `None` for `Unknown` (for example: DNS did not answer).
pub fn set_status(conditions: &mut Vec<Condition>, type_: &str, status: Option<bool>, reason: &str, message: &str, generation: i64, now: &str) {
    let status = match status {
        Some(true) => TRUE,
        Some(false) => FALSE,
        None => UNKNOWN,
    };
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => {
            if c.status != status {
                c.status = status.into();
                c.last_transition_time = now.into();
            }
            c.reason = reason.into();
            c.message = message.into();
            c.observed_generation = generation;
        }
        None => {
            conditions.push(Condition { type_: type_.into(), status: status.into(), reason: reason.into(), message: message.into(), last_transition_time: now.into(), observed_generation: generation })
        }
    }
}

/// Removes condition `type_` if present.
pub fn remove(conditions: &mut Vec<Condition>, type_: &str) {
    conditions.retain(|c| c.type_ != type_);
}

pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions.iter().any(|c| c.type_ == type_ && c.status == TRUE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_changes_only_when_status_flips() {
        let mut c = vec![];
        set(&mut c, "Ready", false, "Pending", "waiting", 1, "t1");
        set(&mut c, "Ready", false, "StillPending", "still waiting", 2, "t2");
        assert_eq!((c[0].last_transition_time.as_str(), c[0].reason.as_str(), c[0].observed_generation), ("t1", "StillPending", 2));
        set(&mut c, "Ready", true, "Ok", "ready", 3, "t3");
        assert_eq!((c[0].status.as_str(), c[0].last_transition_time.as_str()), ("True", "t3"));
        assert!(is_true(&c, "Ready"));
        remove(&mut c, "Ready");
        assert!(c.is_empty());
    }
}
