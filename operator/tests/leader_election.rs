//! Leader election on a Lease against a real API server: one leader at a time, and a takeover
//! only after the leader stops renewing and its lease expires, or at once when it releases it.

mod support;

use cascade_operator::leader::Elector;
use std::time::{Duration, Instant};

#[tokio::test]
async fn one_leader_at_a_time_and_takeover_after_expiry() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let Some(server) = support::apiserver::ApiServer::start().await else { return };
    support::crds::install_stand_ins(&server.client).await;
    let client = support::calls::recording_client(&server.kubeconfig()).await;
    let elector = |id: &str| Elector::new(client.clone(), "cascade-system", "cascade-operator", id, Duration::from_secs(3));
    let (a, b) = (elector("a"), elector("b"));
    assert!(a.try_acquire().await.unwrap(), "the first contender leads");
    assert!(!b.try_acquire().await.unwrap(), "a second contender must not lead while the lease is live");
    assert!(a.try_acquire().await.unwrap(), "the leader renews");

    // While a renews, b stays out.
    let holding = tokio::spawn(async move { a.hold().await });
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(!b.try_acquire().await.unwrap(), "the lease was renewed; no takeover");

    // a stops renewing (crashed): b takes over once the lease expires, not before.
    holding.abort();
    let stopped = Instant::now();
    b.acquire().await;
    let waited = stopped.elapsed();
    assert!(waited <= Duration::from_secs(6), "takeover took {waited:?}");
    assert!(!elector("a").try_acquire().await.unwrap(), "the old leader cannot take it back while b renews");

    // b is told to stop (SIGTERM in `cascade-operator run`): it releases, and c leads at once,
    // without waiting the lease out.
    let c = elector("c");
    assert!(!c.try_acquire().await.unwrap());
    b.release().await.unwrap();
    assert!(c.try_acquire().await.unwrap(), "a released lease is taken at once");
    elector("a").release().await.unwrap();
    assert!(c.try_acquire().await.unwrap(), "only the holder's release gives the lease up");
}
