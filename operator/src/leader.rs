//! Leader election on a typed `coordination.k8s.io/v1` Lease, so that of several operator
//! replicas exactly one writes. Every change goes through a replace with the Lease's
//! resourceVersion, so two contenders can never both win the same term (the loser gets 409 and
//! tries again later). The leader renews every third of the lease duration; a leader that fails
//! to renew stops; a leader that is told to stop (SIGTERM) releases the Lease, so its successor
//! takes over at once instead of waiting the lease out.
//!
//! Written here rather than taken from a crate: kube-runtime has no leader election, and the
//! crates that add one pull a second copy of kube or their own TLS stack.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, PostParams};
use kube::core::ObjectMeta;
use std::time::Duration;

pub struct Elector {
    api: Api<Lease>,
    name: String,
    pub identity: String,
    duration: Duration,
}

/// Who holds the lease and until when (unix ms); `None` when nobody does.
fn holder(lease: &Lease) -> Option<(String, i64)> {
    let spec = lease.spec.as_ref()?;
    let who = spec.holder_identity.clone().filter(|w| !w.is_empty())?;
    let renewed = spec.renew_time.as_ref()?.0.as_millisecond();
    Some((who, renewed + i64::from(spec.lease_duration_seconds?) * 1000))
}

impl Elector {
    pub fn new(client: kube::Client, namespace: &str, name: &str, identity: &str, duration: Duration) -> Self {
        Self { api: Api::namespaced(client, namespace), name: name.into(), identity: identity.into(), duration }
    }

    fn lease(&self, holder: Option<&str>, resource_version: Option<String>) -> Lease {
        Lease {
            metadata: ObjectMeta { name: Some(self.name.clone()), resource_version, ..Default::default() },
            spec: Some(LeaseSpec {
                holder_identity: holder.map(String::from),
                lease_duration_seconds: Some(i32::try_from(self.duration.as_secs().max(1)).unwrap_or(i32::MAX)),
                renew_time: Some(MicroTime(jiff::Timestamp::now())),
                ..Default::default()
            }),
        }
    }

    /// One attempt to take or keep the lease; true when we hold it afterwards.
    pub async fn try_acquire(&self) -> Result<bool, kube::Error> {
        let now = jiff::Timestamp::now().as_millisecond();
        let result = match self.api.get_opt(&self.name).await? {
            None => self.api.create(&PostParams::default(), &self.lease(Some(&self.identity), None)).await,
            Some(current) => match holder(&current) {
                Some((who, until)) if who != self.identity && until > now => return Ok(false),
                _ => self.api.replace(&self.name, &PostParams::default(), &self.lease(Some(&self.identity), current.metadata.resource_version.clone())).await,
            },
        };
        match result {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Gives the lease up if we hold it, so another replica can take it at once.
    pub async fn release(&self) -> Result<(), kube::Error> {
        let Some(current) = self.api.get_opt(&self.name).await? else { return Ok(()) };
        if holder(&current).is_some_and(|(who, _)| who == self.identity) {
            self.api.replace(&self.name, &PostParams::default(), &self.lease(None, current.metadata.resource_version.clone())).await?;
        }
        Ok(())
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
    use super::*;

    #[test]
    fn the_holder_and_expiry_come_from_the_typed_lease() {
        let mut lease = Lease {
            spec: Some(LeaseSpec {
                holder_identity: Some("a".into()),
                lease_duration_seconds: Some(15),
                renew_time: Some(MicroTime("2026-11-28T16:30:00.123456Z".parse().unwrap())),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(holder(&lease), Some(("a".into(), 1_795_883_400_123 + 15_000)));
        lease.spec.as_mut().unwrap().holder_identity = None;
        assert_eq!(holder(&lease), None, "a released lease has no holder");
    }
}
