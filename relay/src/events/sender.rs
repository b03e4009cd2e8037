//! Sends queued events ([`super::Pending`]) to their endpoints, per Standard Webhooks 1.0: a
//! `POST` of the JSON body with `webhook-id`, `webhook-timestamp` and `webhook-signature`, over
//! HTTPS verified against the public roots (and `webhooks.caFile`), `http://` only to loopback in
//! dev, to addresses the delivery destination filter allows; within `webhooks.timeout`. A `2xx`
//! is success; `410 Gone` disables the endpoint at that URL (its pending events are dropped);
//! anything else is retried on [`SCHEDULE`] (about 3 days, ±20 % jitter), later when the answer
//! carried a longer `Retry-After`. At most [`CONCURRENT`] requests at once, [`PER_TENANT`] of them
//! for one tenant. An endpoint with
//! `batch` gets the events due at once (up to `MAX_BATCH`, oldest first) in one request: a JSON
//! array of the payloads, each with its own `id` (its `webhook-id` when sent alone, stable across
//! retries), the request's `webhook-id` naming the batch as sent; they succeed or retry together.
//! A batching endpoint's new event waits [`BATCH_WINDOW`] for the ones that follow it.

use super::{sign, Pending};
use crate::config::webhooks::Endpoint;
use crate::config::Runtime;
use crate::relay::Relay;
use cascade_core::http_client::{request, Call, Tls};
use cascade_crds::relay_config::MAX_BATCH;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};

/// The delay before each retry (then the event is given up): 5 s, 5 min, 30 min, 2 h, 5 h, then
/// 10 h six times: 2.8 days in all.
pub const SCHEDULE: &[u64] = &[5, 300, 1800, 7200, 18000, 36000, 36000, 36000, 36000, 36000, 36000];
pub const CONCURRENT: usize = 16;
/// At most this many of them for one tenant: a tenant whose endpoint hangs until the timeout
/// delays only its own events.
pub const PER_TENANT: usize = 4;

#[derive(Clone)]
enum Outcome {
    Sent,
    Gone,
    /// Try again; the answer's `Retry-After`, if any.
    Retry(String, Option<u64>),
    /// The endpoint is no longer configured: drop the event.
    Dropped(&'static str),
}

/// When the next attempt after `attempts` failed ones is due, or `None`: give up.
pub fn next_attempt(now: u64, attempts: u32, retry_after: Option<u64>, jitter: f64) -> Option<u64> {
    let base = *SCHEDULE.get(attempts.checked_sub(1)? as usize)?;
    let jittered = (base as f64 * (0.8 + 0.4 * jitter.clamp(0.0, 1.0))).round() as u64;
    Some(now + jittered.max(retry_after.unwrap_or(0).min(86_400)).max(1))
}

fn jitter() -> f64 {
    use aws_lc_rs::rand::{SecureRandom, SystemRandom};
    let mut b = [0u8; 2];
    let _ = SystemRandom::new().fill(&mut b);
    f64::from(u16::from_be_bytes(b)) / f64::from(u16::MAX)
}

pub async fn run(relay: Arc<Relay>, mut rx: mpsc::UnboundedReceiver<Pending>) {
    let mut heap: BinaryHeap<Reverse<(u64, String)>> = BinaryHeap::new();
    let mut waiting: HashMap<String, Pending> = HashMap::new();
    let loaded = {
        let relay = relay.clone();
        tokio::task::spawn_blocking(move || relay.events.load_all(&relay.spool)).await.unwrap_or_default()
    };
    if !loaded.is_empty() {
        tracing::info!(events = loaded.len(), "events found on disk; sending them");
    }
    for p in loaded {
        heap.push(Reverse((p.next_attempt, p.file_name())));
        waiting.insert(p.file_name(), p);
    }
    let permits = Arc::new(Semaphore::new(CONCURRENT));
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(Vec<Pending>, Outcome)>();
    let mut busy: HashMap<String, usize> = HashMap::new();
    loop {
        let now = cascade_core::time::now_unix();
        let mut parked = Vec::new();
        while let Some(Reverse((due, _))) = heap.peek() {
            if *due > now || permits.available_permits() == 0 {
                break;
            }
            let Some(Reverse((due, file))) = heap.pop() else { break };
            let Some(p) = waiting.remove(&file) else { continue };
            if busy.get(&p.tenant).copied().unwrap_or(0) >= PER_TENANT {
                // The tenant has its share in flight: this one waits for a slot of its own.
                parked.push(Reverse((due, file)));
                waiting.insert(p.file_name(), p);
                continue;
            }
            *busy.entry(p.tenant.clone()).or_default() += 1;
            let batch = companions(&relay.runtime(), &mut waiting, p, now);
            let (relay, done, permit) = (relay.clone(), done_tx.clone(), permits.clone().acquire_owned().await.expect("never closed"));
            tokio::spawn(async move {
                let batch = fresh(&relay, batch).await;
                let outcome = attempt(&relay, &batch).await;
                drop(permit);
                let _ = done.send((batch, outcome));
            });
        }
        heap.extend(parked);
        relay.metrics.events_pending.set((waiting.len() + CONCURRENT - permits.available_permits()) as i64);
        let sleep = heap.peek().map_or(Duration::from_secs(3600), |Reverse((due, _))| Duration::from_secs(due.saturating_sub(now).max(1)));
        tokio::select! {
            Some(p) = rx.recv() => {
                // A batching endpoint's new events wait a moment for the ones that follow.
                let due = if p.attempts == 0 && batches(&relay.runtime(), &p) { p.next_attempt.max(now) + BATCH_WINDOW } else { p.next_attempt };
                heap.push(Reverse((due, p.file_name())));
                waiting.insert(p.file_name(), p);
            }
            Some((batch, outcome)) = done_rx.recv() => {
                relay.metrics.webhook_requests.with_label_values(&[outcome.result()]).inc();
                if let Some(n) = batch.first().and_then(|p| busy.get_mut(&p.tenant)) {
                    *n = n.saturating_sub(1);
                }
                busy.retain(|_, n| *n > 0);
                for p in batch {
                    if let Some(p) = settle(&relay, p, outcome.clone()).await {
                        heap.push(Reverse((p.next_attempt, p.file_name())));
                        waiting.insert(p.file_name(), p);
                    }
                }
            }
            _ = tokio::time::sleep(sleep) => {}
        }
    }
}

impl Outcome {
    fn result(&self) -> &'static str {
        match self {
            Outcome::Sent => "sent",
            Outcome::Gone => "gone",
            Outcome::Retry(..) => "failed",
            Outcome::Dropped(_) => "dropped",
        }
    }
}

/// How long (s) a batching endpoint's new event waits for others before its first attempt.
pub const BATCH_WINDOW: u64 = 1;

fn batches(rt: &Runtime, p: &Pending) -> bool {
    rt.webhooks.get(&p.tenant).and_then(|l| l.iter().find(|e| e.name == p.endpoint)).is_some_and(|e| e.batch)
}

/// `first` and, when its endpoint batches, the other events of that endpoint due by `now` (taken
/// out of `waiting`), oldest first, up to `MAX_BATCH`.
fn companions(rt: &Runtime, waiting: &mut HashMap<String, Pending>, first: Pending, now: u64) -> Vec<Pending> {
    if !batches(rt, &first) {
        return vec![first];
    }
    let mut due: Vec<String> = waiting.iter().filter(|(_, p)| p.tenant == first.tenant && p.endpoint == first.endpoint && p.next_attempt <= now).map(|(f, _)| f.clone()).collect();
    due.sort();
    due.truncate(MAX_BATCH - 1);
    let mut batch = vec![first];
    batch.extend(due.iter().filter_map(|f| waiting.remove(f)));
    batch.sort_by(|a, b| a.webhook_id.cmp(&b.webhook_id));
    batch
}

/// The request body and its `webhook-id`: the event's own, or for a batched endpoint the array
/// of payloads (each with its `id`) and an id naming the batch.
fn body_of(endpoint: &Endpoint, batch: &[Pending]) -> (String, String) {
    match (endpoint.batch, batch) {
        (false, [p, ..]) => (p.body.clone(), p.webhook_id.clone()),
        _ => {
            let items: Vec<serde_json::Value> = batch
                .iter()
                .map(|p| {
                    let mut v: serde_json::Value = serde_json::from_str(&p.body).unwrap_or_default();
                    if let Some(o) = v.as_object_mut() {
                        o.insert("id".into(), p.webhook_id.clone().into());
                    }
                    v
                })
                .collect();
            let ids: Vec<&str> = batch.iter().map(|p| p.webhook_id.as_str()).collect();
            let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, ids.join(",").as_bytes());
            let id = format!("batch_{}", digest.as_ref()[..10].iter().map(|b| format!("{b:02x}")).collect::<String>());
            (serde_json::Value::Array(items).to_string(), id)
        }
    }
}

/// The batch with each body as on disk now, erasures applied ([`super::Events::fresh`]).
async fn fresh(relay: &Arc<Relay>, batch: Vec<Pending>) -> Vec<Pending> {
    let relay = relay.clone();
    let copy = batch.clone();
    let fresh = tokio::task::spawn_blocking(move || batch.into_iter().map(|p| relay.events.fresh(&relay.spool, p)).collect());
    fresh.await.unwrap_or(copy)
}

/// Records the outcome; returns the event when it is to be tried again.
async fn settle(relay: &Arc<Relay>, mut p: Pending, outcome: Outcome) -> Option<Pending> {
    let keep = match outcome {
        Outcome::Retry(why, retry_after) => {
            tracing::info!(webhook_id = %p.webhook_id, tenant = %p.tenant, endpoint = %p.endpoint, attempts = p.attempts + 1, error = %why, "webhook attempt failed; will retry");
            relay.events.note(&p.tenant, &p.endpoint, Err(why), None);
            p.attempts += 1;
            match next_attempt(cascade_core::time::now_unix(), p.attempts, retry_after, jitter()) {
                Some(t) => {
                    p.next_attempt = t;
                    true
                }
                None => {
                    tracing::warn!(webhook_id = %p.webhook_id, tenant = %p.tenant, endpoint = %p.endpoint, "webhook event given up after every retry");
                    relay.audit.record("webhook.given_up", serde_json::json!({ "webhook_id": p.webhook_id, "tenant": p.tenant, "endpoint": p.endpoint, "attempts": p.attempts }));
                    false
                }
            }
        }
        Outcome::Sent => {
            relay.events.note(&p.tenant, &p.endpoint, Ok(()), None);
            false
        }
        Outcome::Gone => false,
        Outcome::Dropped(why) => {
            tracing::info!(webhook_id = %p.webhook_id, tenant = %p.tenant, endpoint = %p.endpoint, reason = why, "webhook event dropped");
            false
        }
    };
    let relay = relay.clone();
    let (p, keep) = tokio::task::spawn_blocking(move || {
        match keep {
            true => {
                let _ = relay.events.store(&relay.spool, &p, false);
            }
            false => relay.events.remove(&p),
        }
        (p, keep)
    })
    .await
    .ok()?;
    keep.then_some(p)
}

async fn attempt(relay: &Relay, batch: &[Pending]) -> Outcome {
    let rt = relay.runtime();
    let Some(p) = batch.first() else { return Outcome::Dropped("nothing to send") };
    let Some(endpoint) = rt.webhooks.get(&p.tenant).and_then(|l| l.iter().find(|e| e.name == p.endpoint)).cloned() else {
        return Outcome::Dropped("the endpoint is no longer configured");
    };
    if relay.events.disabled(&p.tenant, &p.endpoint, &endpoint.url) {
        return Outcome::Dropped("the endpoint was disabled by a 410 answer");
    }
    let addr = match address(&rt, &endpoint).await {
        Ok(a) => a,
        Err(why) => return Outcome::Retry(why, None),
    };
    let timestamp = cascade_core::time::now_unix();
    let (body, webhook_id) = body_of(&endpoint, batch);
    let signature = sign::signature(&endpoint.secrets, &webhook_id, timestamp, body.as_bytes());
    let (ts, host) = (timestamp.to_string(), host_header(&endpoint));
    let headers = [
        ("host", host.as_str()),
        ("content-type", "application/json"),
        ("user-agent", "Cascade-Webhooks/1"),
        ("webhook-id", webhook_id.as_str()),
        ("webhook-timestamp", ts.as_str()),
        ("webhook-signature", signature.as_str()),
    ];
    let tls = match endpoint.https {
        true => match rustls::pki_types::ServerName::try_from(endpoint.host.clone()) {
            Ok(name) => Some(Tls { config: rt.webhook_tls.clone(), server_name: name }),
            Err(_) => return Outcome::Retry("the endpoint's host is not a valid server name".into(), None),
        },
        false => None,
    };
    let call = Call { addr, tls: tls.as_ref(), method: hyper::Method::POST, path: &endpoint.path, headers: &headers, body: body.into() };
    match request(call, 64 * 1024, rt.config.webhooks.timeout.0).await {
        Ok(a) if (200..300).contains(&a.status) => Outcome::Sent,
        Ok(a) if a.status == 410 => {
            tracing::warn!(tenant = %p.tenant, endpoint = %p.endpoint, "webhook endpoint answered 410 Gone; disabled");
            relay.events.note(&p.tenant, &p.endpoint, Err("410 Gone".into()), Some(&endpoint.url));
            relay.audit.record("webhook.disabled", serde_json::json!({ "tenant": p.tenant, "endpoint": p.endpoint }));
            Outcome::Gone
        }
        Ok(a) => Outcome::Retry(format!("answered {}", a.status), a.retry_after),
        Err(e) => Outcome::Retry(e.to_string(), None),
    }
}

fn host_header(e: &Endpoint) -> String {
    let host = if e.host.contains(':') { format!("[{}]", e.host) } else { e.host.clone() };
    match (e.https, e.port) {
        (true, 443) | (false, 80) => host,
        (_, port) => format!("{host}:{port}"),
    }
}

/// The endpoint's address: an IP literal, or the host resolved with the delivery resolver; only
/// an address the destination filter allows (loopback too where plain loopback is allowed).
async fn address(rt: &Runtime, e: &Endpoint) -> Result<SocketAddr, String> {
    let ips: Vec<IpAddr> = match e.host.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => {
            let resolver = crate::delivery::route::resolver(&rt.nameservers)?;
            resolver.lookup_ip(e.host.as_str()).await.map_err(|err| format!("resolving the endpoint's host: {err}"))?.iter().collect()
        }
    };
    let allowed = |ip: &IpAddr| rt.destinations.allows(*ip) || (rt.config.webhooks.allow_plain_loopback && ip.is_loopback());
    ips.into_iter().find(allowed).map(|ip| SocketAddr::new(ip, e.port)).ok_or_else(|| crate::delivery::destination::NOT_ALLOWED.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_follow_the_schedule_with_jitter_and_retry_after_then_stop() {
        assert_eq!(next_attempt(1000, 1, None, 0.5), Some(1005));
        assert_eq!(next_attempt(1000, 1, None, 0.0), Some(1004));
        assert_eq!(next_attempt(1000, 1, None, 1.0), Some(1006));
        assert_eq!(next_attempt(1000, 2, None, 0.5), Some(1300));
        assert_eq!(next_attempt(1000, 1, Some(60), 0.5), Some(1060), "a longer Retry-After wins");
        assert_eq!(next_attempt(1000, 1, Some(10_000_000), 0.5), Some(1000 + 86_400), "at most a day");
        let total: u64 = SCHEDULE.iter().sum();
        assert!((2 * 86_400..3 * 86_400).contains(&total), "about three days: {total}");
        assert_eq!(next_attempt(1000, SCHEDULE.len() as u32 + 1, None, 0.5), None, "given up");
        assert_eq!(next_attempt(1000, 0, None, 0.5), None);
    }
}
