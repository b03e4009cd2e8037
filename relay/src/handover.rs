//! Handing queued mail to peer relays, so a relay that goes away (scale-down, rolling update,
//! node drain) strands nothing. At shutdown, after its sessions and deliveries finished, a relay
//! with `handover.peers` sends each spool file as it is on disk — still AES-256-GCM sealed under
//! the pool's spool key, which is also what authenticates it — to a peer's admin listener
//! (`POST /handover?id=ID&from=INSTANCE`); the peer stores it durably, queues it and answers
//! `200`, and only then is the local copy removed. Each request carries a claim
//! (`Authorization: Cascade-Handover <base64>`): the queue id, the sender, the time and the
//! SHA-256 of the file, sealed under the pool's spool key, so only a pool relay can make one, a
//! claim is bound to its file, and one older than [`FRESH_SECS`] is refused. A file whose queue
//! id this relay holds, or finished within the window, is answered `200` and not queued again:
//! a replayed handover never delivers twice. What cannot be handed over in time stays in
//! the spool. `cascade-relay drain` runs the same transfer over a spool directory left behind by
//! a relay that is gone (the operator runs it on orphaned spool volumes).

use crate::relay::Relay;
use crate::spool::Spool;
use cascade_core::http_client::{Call, Tls};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A random name for this process, so a relay that finds itself among its peers skips itself.
pub fn new_instance() -> String {
    crate::spool::new_queue_id()
}

fn query<'a>(q: &'a str, name: &str) -> Option<&'a str> {
    q.split('&').find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
}

/// How old a handover claim may be (either way, for clock skew between pods).
pub const FRESH_SECS: u64 = 300;
const CLAIM_CONTEXT: &str = "cascade-handover-v1";
const SCHEME: &str = "Cascade-Handover ";

fn claim_text(id: &str, from: &str, at: &str, file: &[u8]) -> Vec<u8> {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, file);
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("{id}\n{from}\n{at}\n{hex}").into_bytes()
}

/// Before the body is read: the claim is there and fresh. Returns it for [`receive`].
pub fn authorize(query_string: &str, authorization: Option<&str>) -> Result<String, (u16, String)> {
    let at = query(query_string, "at").and_then(|t| t.parse::<u64>().ok());
    let fresh = at.is_some_and(|t| t.abs_diff(cascade_core::time::now_unix()) <= FRESH_SECS);
    match authorization.and_then(|a| a.strip_prefix(SCHEME)) {
        Some(claim) if fresh => Ok(claim.trim().to_string()),
        Some(_) => Err((401, "the handover claim is stale or has no time\n".into())),
        None => Err((401, "a handover needs a claim sealed under the pool's spool key\n".into())),
    }
}

/// `POST /handover?id=ID&from=INSTANCE&at=UNIX` on the admin listener, with its claim checked
/// against this very file: (status, text).
pub fn receive(relay: &Relay, query_string: &str, claim: &str, body: &[u8]) -> (u16, String) {
    use base64::Engine;
    let (Some(id), Some(from), Some(at)) = (query(query_string, "id"), query(query_string, "from"), query(query_string, "at")) else {
        return (400, "expected /handover?id=QUEUE_ID&from=INSTANCE&at=UNIX\n".into());
    };
    let opened = base64::engine::general_purpose::STANDARD.decode(claim).ok().and_then(|c| relay.spool.open_claim(CLAIM_CONTEXT, &c).ok());
    if opened.as_deref() != Some(claim_text(id, from, at, body).as_slice()) {
        tracing::warn!(queue_id = %id, "handover with a claim that does not open or does not match its file; refused");
        return (401, "the handover claim does not match\n".into());
    }
    if from == relay.instance {
        return (409, "that is this relay\n".into());
    }
    if relay.is_shutting_down() {
        return (503, "this relay is stopping\n".into());
    }
    if relay.spool.holds_or_finished(id) {
        relay.metrics.handed_over.with_label_values(&["replayed"]).inc();
        tracing::warn!(queue_id = %id, "handover of a message this relay holds or finished: not queued again");
        return (200, "already queued or finished here\n".into());
    }
    match relay.spool.import(id, body.to_vec()) {
        Ok(env) => {
            relay.metrics.handed_over.with_label_values(&["received"]).inc();
            tracing::info!(queue_id = %id, recipients = env.pending().count(), "queued message taken over from a peer relay");
            relay.audit.record("message.handover", serde_json::json!({ "queue_id": id, "direction": "received" }));
            relay.queue.submit(env, None);
            (200, "stored\n".into())
        }
        Err(e) => {
            tracing::warn!(queue_id = %id, error = %e, "handover refused");
            (400, format!("refused: {e}\n"))
        }
    }
}

/// The peers' addresses (names resolved now; a headless Service gives one per relay).
pub async fn resolve(peers: &[String]) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for p in peers {
        match tokio::net::lookup_host(p.as_str()).await {
            Ok(addrs) => out.extend(addrs.filter(|a| !out.contains(a)).collect::<Vec<_>>()),
            Err(e) => tracing::warn!(peer = %p, error = %e, "handover peer does not resolve"),
        }
    }
    out
}

enum Sent {
    Stored,
    Myself,
    Failed(String),
}

async fn post(spool: &Spool, addr: SocketAddr, tls: Option<&Tls>, id: &str, instance: &str, file: &[u8]) -> Sent {
    use base64::Engine;
    let at = cascade_core::time::now_unix().to_string();
    let claim = match spool.seal_claim(CLAIM_CONTEXT, &claim_text(id, instance, &at, file)) {
        Ok(c) => base64::engine::general_purpose::STANDARD.encode(c),
        Err(e) => return Sent::Failed(format!("sealing the claim: {e}")),
    };
    let path = format!("/handover?id={id}&from={instance}&at={at}");
    let authorization = format!("{SCHEME}{claim}");
    let call = Call { addr, tls, method: hyper::Method::POST, path: &path, headers: &[("authorization", &authorization)], body: file.to_vec().into() };
    let answer = cascade_core::http_client::request(call, 4096, Duration::from_secs(30)).await;
    match answer {
        Ok(a) if a.status == 200 => Sent::Stored,
        Ok(a) if a.status == 409 => Sent::Myself,
        Ok(a) => Sent::Failed(format!("{}: {}", a.status, String::from_utf8_lossy(&a.body).trim())),
        Err(e) => Sent::Failed(e.to_string()),
    }
}

/// Hands every message of `spool` to a peer within `timeout` (over the pool's mutual TLS when
/// `tls` is given); returns the queue ids handed over and the number left behind.
pub async fn send_all(spool: &Arc<Spool>, peers: &[String], tls: Option<&Tls>, instance: &str, timeout: Duration) -> (Vec<String>, usize) {
    let deadline = Instant::now() + timeout;
    let mut addrs = resolve(peers).await;
    let envelopes = match crate::spool::blocking(spool, |s| s.recover()).await {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(error = %e, "reading the spool for the handover failed");
            return (Vec::new(), 0);
        }
    };
    let mut handed = Vec::new();
    let mut left = 0;
    for (n, env) in envelopes.iter().enumerate() {
        let id = env.id.clone();
        let file = match crate::spool::blocking(spool, move |s| s.export(&id)).await {
            Ok(f) => f,
            Err(_) => continue, // delivered or purged meanwhile
        };
        let mut done = false;
        let mut tries = 0;
        while !done && !addrs.is_empty() && tries < addrs.len() && Instant::now() < deadline {
            let addr = addrs[(n + tries) % addrs.len()];
            match post(spool, addr, tls, &env.id, instance, &file).await {
                Sent::Stored => done = true,
                Sent::Myself => addrs.retain(|a| *a != addr),
                Sent::Failed(why) => {
                    tracing::warn!(peer = %addr, queue_id = %env.id, error = %why, "handover to a peer failed; trying the next");
                    tries += 1;
                }
            }
        }
        if done {
            let id = env.id.clone();
            if let Err(e) = crate::spool::blocking(spool, move |s| s.remove(&id)).await {
                tracing::error!(queue_id = %env.id, error = %e, "handed over but not removed here; it may be delivered twice");
            }
            handed.push(env.id.clone());
        } else {
            left += 1;
        }
    }
    (handed, left)
}

/// At shutdown: hands the relay's queue over when `handover` is configured.
pub async fn at_shutdown(relay: &Relay) {
    let rt = relay.runtime();
    let Some(h) = &rt.config.handover else {
        tracing::info!("stopped; queued messages stay in the spool");
        return;
    };
    let (handed, left) = send_all(&relay.spool, &h.peers, rt.admin_tls.as_ref().map(|a| &a.client), &relay.instance, h.timeout.0).await;
    for id in &handed {
        relay.metrics.handed_over.with_label_values(&["sent"]).inc();
        relay.audit.record("message.handover", serde_json::json!({ "queue_id": id, "direction": "sent" }));
    }
    if left == 0 {
        tracing::info!(handed_over = handed.len(), "stopped; the queue was handed to peer relays");
    } else {
        tracing::warn!(handed_over = handed.len(), left, "stopped; messages not handed over stay in the spool");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters() {
        assert_eq!(query("id=abc&from=xyz", "id"), Some("abc"));
        assert_eq!(query("id=abc&from=xyz", "from"), Some("xyz"));
        assert_eq!(query("idx=abc", "id"), None);
    }

    #[test]
    fn a_spool_file_is_taken_only_under_the_same_key_and_id() {
        let dir = crate::spool::tests::temp_dir("handover");
        let keys = crate::spool::tests::keys();
        let a = Spool::open(&dir.join("a"), keys.clone()).unwrap();
        let b = Spool::open(&dir.join("b"), keys).unwrap();
        let env = crate::spool::tests::envelope("q1");
        a.store(&env, &[b"Subject: x\r\n\r\nhi\r\n"]).unwrap();
        let file = a.export("q1").unwrap();
        assert_eq!(b.import("q1", file.clone()).unwrap().id, "q1");
        assert_eq!(b.load("q1").unwrap().1, b"Subject: x\r\n\r\nhi\r\n");
        assert!(b.import("q2", file.clone()).is_err(), "bound to its queue id");
        assert!(b.import("../x", file.clone()).is_err());
        let other = Spool::open(&dir.join("c"), crate::spool::tests::keys()).unwrap();
        assert!(other.import("q1", file).is_err(), "another pool's key");
        let _ = std::fs::remove_dir_all(dir);
    }
}
