//! Leader election on a `coordination.k8s.io/v1` Lease, so that of several operator replicas
//! exactly one writes. Every change goes through a replace with the Lease's resourceVersion, so
//! two contenders can never both win the same term (the loser gets 409 and tries again later).
//! The leader renews every third of the lease duration; a leader that fails to renew stops.

use kube::api::{Api, DynamicObject, PostParams};
use kube::core::ApiResource;
use std::time::Duration;

pub struct Elector {
    api: Api<DynamicObject>,
    resource: ApiResource,
    name: String,
    pub identity: String,
    duration: Duration,
}

fn micro_time(unix_ms: u64) -> String {
    let base = cascade_relay::time::rfc3339_utc(unix_ms / 1000);
    format!("{}.{:06}Z", base.trim_end_matches('Z'), (unix_ms % 1000) * 1000)
}

fn parse_micro_time(s: &str) -> Option<u64> {
    let (secs, frac) = s.trim_end_matches('Z').split_once('.').unwrap_or((s.trim_end_matches('Z'), "0"));
    let ms: u64 = format!("{:0<3}", &frac[..frac.len().min(3)]).parse().ok()?;
    Some(cascade_relay::time::parse_rfc3339_utc(&format!("{secs}Z"))? * 1000 + ms)
}

/// Who holds the lease and until when (unix ms), from a Lease object.
fn holder(obj: &DynamicObject) -> Option<(String, u64)> {
    let spec = obj.data.get("spec")?;
    let who = spec.get("holderIdentity")?.as_str()?.to_string();
    let renewed = parse_micro_time(spec.get("renewTime")?.as_str()?)?;
    let secs = spec.get("leaseDurationSeconds")?.as_u64()?;
    Some((who, renewed + secs * 1000))
}

impl Elector {
    pub fn new(client: kube::Client, resource: ApiResource, namespace: &str, name: &str, identity: &str, duration: Duration) -> Self {
        Self { api: Api::namespaced_with(client, namespace, &resource), resource, name: name.into(), identity: identity.into(), duration }
    }

    fn lease(&self, resource_version: Option<String>) -> DynamicObject {
        let mut obj = DynamicObject::new(&self.name, &self.resource).data(serde_json::json!({
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": self.duration.as_secs().max(1),
                "renewTime": micro_time(cascade_relay::time::now_unix_ms()),
            }
        }));
        obj.metadata.resource_version = resource_version;
        obj
    }

    /// One attempt to take or keep the lease; true when we hold it afterwards.
    pub async fn try_acquire(&self) -> Result<bool, kube::Error> {
        let now = cascade_relay::time::now_unix_ms();
        let result = match self.api.get_opt(&self.name).await? {
            None => self.api.create(&PostParams::default(), &self.lease(None)).await,
            Some(current) => match holder(&current) {
                Some((who, until)) if who != self.identity && until > now => return Ok(false),
                _ => self.api.replace(&self.name, &PostParams::default(), &self.lease(current.metadata.resource_version.clone())).await,
            },
        };
        match result {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Waits until this replica leads.
    pub async fn acquire(&self) {
        loop {
            match self.try_acquire().await {
                Ok(true) => return,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "leader election"),
            }
            tokio::time::sleep(self.duration / 3).await;
        }
    }

    /// Renews for as long as we lead; returns when leadership is lost, including when renewals
    /// have failed for a whole lease duration (another replica may have taken over by then).
    pub async fn hold(&self) {
        let mut last_renewed = std::time::Instant::now();
        loop {
            tokio::time::sleep(self.duration / 3).await;
            match self.try_acquire().await {
                Ok(true) => last_renewed = std::time::Instant::now(),
                Ok(false) => return,
                Err(e) => tracing::warn!(error = %e, "renewing the lease failed"),
            }
            if last_renewed.elapsed() >= self.duration {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn micro_times_round_trip() {
        let t = super::micro_time(1_795_883_400_123);
        assert_eq!(t, "2026-11-28T16:30:00.123000Z");
        assert_eq!(super::parse_micro_time(&t), Some(1_795_883_400_123));
        assert_eq!(super::parse_micro_time("2026-11-28T16:30:00Z"), Some(1_795_883_400_000));
    }
}
