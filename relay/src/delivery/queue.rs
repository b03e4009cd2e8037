//! The scheduler: a min-heap of (next attempt, queue id) fed by sessions and by restarts, and a
//! bounded number of concurrent attempts. A new message carries its bytes so the first attempt
//! needs no disk read; retries read the spool again. On shutdown no new attempt starts, running
//! ones finish their transaction (bounded), and everything else stays in the spool.

use super::attempt;
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
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Option<Envelope>>();
    let mut shutdown = relay.shutdown_signal();
    let mut engine = attempt::Engine::new(relay.clone());
    loop {
        relay.metrics.queue_depth.set(waiting.len() as i64 + (concurrency - permits.available_permits()) as i64);
        let now_ms = crate::time::now_unix_ms();
        let next_due = heap.peek().map(|Reverse((t, _))| *t);
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
            Some(result) = done_rx.recv() => {
                if let Some(env) = result {
                    heap.push(Reverse((env.next_attempt * 1000, env.id.clone())));
                    waiting.insert(env.id.clone(), QueueItem { env, message: None });
                }
            }
            _ = tokio::time::sleep(wait), if next_due.is_some() => {
                while let Some(Reverse((due, _))) = heap.peek() {
                    if *due > crate::time::now_unix_ms() {
                        break;
                    }
                    let Ok(permit) = permits.clone().try_acquire_owned() else { break };
                    let Reverse((_, id)) = heap.pop().expect("peeked");
                    let Some(item) = waiting.remove(&id) else { continue };
                    let done = done_tx.clone();
                    let job = engine.job();
                    tokio::spawn(async move {
                        let result = job.attempt(item).await;
                        drop(permit);
                        let _ = done.send(result);
                    });
                }
                if permits.available_permits() == 0 {
                    // Wait for a free slot rather than spinning on a due heap.
                    if let Ok(p) = permits.clone().acquire_owned().await {
                        drop(p);
                    }
                }
            }
            _ = relay.config_changed.notified() => {
                // Heap entries of purged messages find nothing in `waiting` and are skipped.
                waiting.retain(|_, item| !relay.purge_if_retired(&item.env));
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
