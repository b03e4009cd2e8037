//! The scheduler: a min-heap of (next attempt, queue id) fed by sessions and by restarts, and a
//! bounded number of concurrent attempts, shared fairly ([`super::shares`]): a due message whose
//! tenant or destination holds its share of the slots is parked until one of those attempts
//! ends, and the next due message is looked at instead. A new message carries its bytes so the
//! first attempt needs no disk read; retries read the spool again. A due message of a tenant in
//! lockdown is set aside, still in the spool and in `waiting`, until the next configuration
//! change looks at it again (neither attempted nor expired meanwhile). On shutdown no new attempt
//! starts, running ones finish their transaction (bounded), and everything else stays in the
//! spool.

use super::attempt;
use super::shares::{Claim, Parked, Running};
use crate::relay::Relay;
use crate::spool::Envelope;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};

pub struct QueueItem {
    pub env: Envelope,
    pub message: Option<Arc<Vec<u8>>>,
}

#[derive(Clone)]
pub struct QueueHandle {
    tx: mpsc::UnboundedSender<QueueItem>,
}

impl QueueHandle {
    pub fn channel() -> (Self, mpsc::UnboundedReceiver<QueueItem>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { tx }, rx)
    }

    pub fn submit(&self, env: Envelope, message: Option<Arc<Vec<u8>>>) {
        // If the scheduler is gone the relay is stopping; the message is safe in the spool.
        let _ = self.tx.send(QueueItem { env, message });
    }
}

/// Bodies kept in memory for messages waiting to be sent; beyond this they are re-read from disk.
const MAX_BODIES_IN_MEMORY: usize = 2048;

pub async fn run(relay: Arc<Relay>, mut rx: mpsc::UnboundedReceiver<QueueItem>, grace: Duration) {
    let concurrency = relay.runtime().config.delivery.concurrency;
    let permits = Arc::new(Semaphore::new(concurrency));
    let mut heap: BinaryHeap<Reverse<(u64, String)>> = BinaryHeap::new();
    let mut waiting: HashMap<String, QueueItem> = HashMap::new();
    // Due messages held back by their tenant's or destination's share, until an attempt ends.
    let mut parked: Parked<Reverse<(u64, String)>> = Parked::default();
    // Due messages of tenants in lockdown.
    let mut held: Vec<Reverse<(u64, String)>> = Vec::new();
    let mut running = Running::default();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(Claim, Option<Envelope>)>();
    let mut shutdown = relay.shutdown_signal();
    let mut engine = attempt::Engine::new(relay.clone());
    let mut ages_at = 0u64;
    loop {
        // Before due messages leave `waiting` for their attempt.
        ages_at = oldest_by_tenant(&relay, &waiting, ages_at);
        start_due(&relay, &engine, &permits, &mut heap, &mut waiting, &mut parked, &mut held, &mut running, &done_tx);
        relay.metrics.queue_depth.set(waiting.len() as i64 + (concurrency - permits.available_permits()) as i64);
        let now_ms = cascade_core::time::now_unix_ms();
        // With every slot busy nothing can start before an attempt ends: no timer until then.
        let next_due = heap.peek().map(|Reverse((t, _))| *t).filter(|_| permits.available_permits() > 0);
        let wait = next_due.map(|t| Duration::from_millis(t.saturating_sub(now_ms))).unwrap_or(Duration::from_secs(3600));
        tokio::select! {
            item = rx.recv() => match item {
                Some(mut item) => {
                    if waiting.len() >= MAX_BODIES_IN_MEMORY {
                        item.message = None;
                    }
                    heap.push(Reverse((item.env.next_attempt * 1000, item.env.id.clone())));
                    waiting.insert(item.env.id.clone(), item);
                }
                None => break,
            },
            Some((claim, result)) = done_rx.recv() => {
                running.finish(&claim);
                heap.extend(parked.release(&claim));
                // An erasure while it ran is applied again to what the attempt left.
                if let Some(env) = result.and_then(|env| crate::erase::Erasures::reapply(&relay, env)) {
                    heap.push(Reverse((env.next_attempt * 1000, env.id.clone())));
                    waiting.insert(env.id.clone(), QueueItem { env, message: None });
                }
            }
            _ = tokio::time::sleep(wait), if next_due.is_some() => {}
            _ = relay.config_changed.notified() => {
                // Heap entries of purged messages find nothing in `waiting` and are skipped.
                waiting.retain(|_, item| !relay.purge_if_retired(&item.env));
                // Messages an erasure touched: what the spool now holds, or gone.
                waiting.retain(|_, item| match relay.erasures.matching(&item.env).is_empty() {
                    true => true,
                    false => match relay.spool.load(&item.env.id) {
                        Ok((env, _)) => {
                            *item = QueueItem { env, message: None };
                            true
                        }
                        Err(_) => false,
                    },
                });
                heap.extend(parked.drain());
                heap.extend(held.drain(..));
            }
            _ = crate::relay::Relay::stopped(&mut shutdown) => break,
        }
        engine.refresh();
    }
    // Let running attempts finish their transaction, within the grace period.
    let all = u32::try_from(concurrency).unwrap_or(u32::MAX);
    if tokio::time::timeout(grace, permits.acquire_many(all)).await.is_err() {
        tracing::warn!("shutdown grace period over with deliveries still running; they stay queued");
    }
}

/// Every 10 s: each tenant's waiting messages and the age of its oldest (a scan of the queue),
/// as gauges and for `GET /queue`. Returns when it last looked.
fn oldest_by_tenant(relay: &Relay, waiting: &HashMap<String, QueueItem>, last: u64) -> u64 {
    let now = cascade_core::time::now_unix();
    if now < last + 10 {
        return last;
    }
    // Keyed by reference: one String per tenant, not one per waiting message.
    let mut by_tenant: std::collections::BTreeMap<&str, (u64, u64)> = Default::default();
    for item in waiting.values() {
        let e = by_tenant.entry(item.env.tenant.as_str()).or_insert((0, item.env.created));
        *e = (e.0 + 1, e.1.min(item.env.created));
    }
    let summary: std::collections::BTreeMap<String, (u64, u64)> = by_tenant.into_iter().map(|(t, v)| (t.to_string(), v)).collect();
    let gauge = &relay.metrics.queue_oldest;
    gauge.reset();
    for (tenant, (_, created)) in &summary {
        gauge.with_label_values(&[tenant]).set(i64::try_from(now.saturating_sub(*created)).unwrap_or(i64::MAX));
    }
    *relay.queue_summary.lock().unwrap_or_else(|e| e.into_inner()) = summary;
    now
}

/// Starts every due message a free slot and its shares allow; parks the due ones they do not.
#[allow(clippy::too_many_arguments)]
fn start_due(
    relay: &Arc<Relay>,
    engine: &attempt::Engine,
    permits: &Arc<Semaphore>,
    heap: &mut BinaryHeap<Reverse<(u64, String)>>,
    waiting: &mut HashMap<String, QueueItem>,
    parked: &mut Parked<Reverse<(u64, String)>>,
    held: &mut Vec<Reverse<(u64, String)>>,
    running: &mut Running,
    done_tx: &mpsc::UnboundedSender<(Claim, Option<Envelope>)>,
) {
    let rt = relay.runtime();
    let d = &rt.config.delivery;
    let per_destination = d.mode == cascade_crds::relay_config::DeliveryMode::Mx;
    let now_ms = cascade_core::time::now_unix_ms();
    while let Some(Reverse((due, _))) = heap.peek() {
        if *due > now_ms || permits.available_permits() == 0 {
            break;
        }
        let Reverse((due, id)) = heap.pop().expect("peeked");
        let Some(item) = waiting.get(&id) else { continue };
        if rt.held.contains(&item.env.tenant) {
            held.push(Reverse((due, id)));
            continue;
        }
        let claim = Claim::of(&item.env, per_destination);
        if let Some(share) = running.blocked_by(&claim, d.concurrency_per_tenant, d.concurrency_per_destination) {
            parked.park(share, Reverse((due, id)));
            continue;
        }
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            heap.push(Reverse((due, id)));
            break;
        };
        let item = waiting.remove(&id).expect("looked up");
        running.start(&claim);
        let done = done_tx.clone();
        let job = engine.job();
        tokio::spawn(async move {
            let result = job.attempt(item).await;
            drop(permit);
            let _ = done.send((claim, result));
        });
    }
}
