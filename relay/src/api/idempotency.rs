//! `Idempotency-Key` on the send API: the same key (per API key) with the same request within
//! 24 hours answers what the first one was answered and sends nothing again; with a different
//! request it is refused (`422`); while the first is still being handled, `409`.
//!
//! The key is taken, with the queue id the send will use, in one durable write *before* the
//! message is spooled, and marked done after; a failed send forgets it so it may be retried. If
//! the relay stopped between the two writes, a replay finds the queue id in the spool or among
//! the finished messages and answers `202` for it (nothing is sent twice); if the message never
//! reached the spool, the replay sends it under the same id.

use super::{invalid, queued_answer};
use crate::http::Answer;
use crate::relay::Relay;
use crate::store::{hex, idempotency_name, Remembered};

/// A request still unsettled after this long was cut short by a stop; a replay takes it over.
const ABANDONED_SECS: u64 = 120;

fn unavailable(e: impl std::fmt::Display) -> Answer {
    tracing::error!(error = %e, "idempotency record not readable or writable");
    Answer::problem(503, "Service Unavailable", "idempotency keys cannot be recorded just now; retry").retry_after(5)
}

/// Runs `send` (given the queue id to use) at most once for (`key_id`, `idempotency_key`).
pub fn once(relay: &Relay, key_id: &str, idempotency_key: &str, path: &str, body: &[u8], send: impl FnOnce(&str) -> Result<Answer, Answer>) -> Result<Answer, Answer> {
    if idempotency_key.is_empty() || idempotency_key.len() > 255 || !idempotency_key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid("Idempotency-Key: 1 to 255 printable ASCII characters"));
    }
    let name = idempotency_name(key_id, idempotency_key);
    let mut input = path.as_bytes().to_vec();
    input.push(0);
    input.extend_from_slice(body);
    let digest = hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &input).as_ref());
    let now = cascade_core::time::now_unix();
    let fresh = Remembered { digest: digest.clone(), queue_id: crate::spool::new_queue_id(), answer: String::new(), queued: false, started: now };
    let earlier = relay.store.remember(&relay.spool, &name, &fresh, now).map_err(unavailable)?;
    let queue_id = match earlier {
        None => fresh.queue_id,
        Some(e) if e.digest != digest => return Err(invalid("Idempotency-Key: already used with a different request in the last 24 hours")),
        Some(e) if e.queued => return Ok(replayed(Answer { status: 202, content_type: "application/json", body: e.answer, retry_after: None, replayed: false })),
        Some(e) => match reached_spool(relay, &e.queue_id, now) {
            Some(answer) => {
                settle(relay, &name, Some(Remembered { answer: answer.body.clone(), queued: true, ..e }));
                return Ok(replayed(answer));
            }
            None if now.saturating_sub(e.started) < ABANDONED_SECS => {
                return Err(Answer::problem(409, "Conflict", "a request with this Idempotency-Key is still being handled; retry shortly").retry_after(1));
            }
            None => e.queue_id,
        },
    };
    let result = send(&queue_id);
    match &result {
        Ok(a) if a.status == 202 => settle(relay, &name, Some(Remembered { digest, queue_id, answer: a.body.clone(), queued: true, started: now })),
        _ => settle(relay, &name, None),
    }
    result
}

fn replayed(mut answer: Answer) -> Answer {
    answer.replayed = true;
    answer
}

/// The `202` for `queue_id` if a send under it reached the spool (queued there, or finished).
fn reached_spool(relay: &Relay, queue_id: &str, now: u64) -> Option<Answer> {
    if let Ok((env, _)) = relay.spool.load(queue_id) {
        return Some(queued_answer(&env, &[]));
    }
    relay.store.status(&relay.spool, queue_id, now).ok().flatten().map(|env| queued_answer(&env, &[]))
}

fn settle(relay: &Relay, name: &str, outcome: Option<Remembered>) {
    if let Err(e) = relay.store.settle(&relay.spool, name, outcome.as_ref()) {
        tracing::error!(error = %e, "idempotency record could not be settled; a replay may be answered 409 until it is abandoned");
    }
}
