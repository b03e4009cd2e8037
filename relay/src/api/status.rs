//! `GET /v1/messages/{id}`: a message's per-recipient state — `queued`, `deferred` (with the
//! last reply), `delivered`, `bounced` — for a key of the tenant that sent it; any other id,
//! another tenant's included, is `404`. A queued message is read from its spool file, a finished
//! one from the state database ([`crate::store`]). Any relay of a pool answers for any id: what
//! it does not hold it asks its peers for, over the admin listener's mutual TLS
//! (`GET /messages/{id}`, answered with the envelope to pool certificates only).

use crate::http::Answer;
use crate::relay::Relay;
use crate::spool::{Envelope, RcptStatus};
use cascade_core::http_client::{request, Call};
use std::sync::Arc;
use std::time::Duration;

fn not_found() -> Answer {
    Answer::problem(404, "Not Found", "no message with this id for this tenant")
}

/// This relay's copy of `id`: queued in the spool, or finished within the retention. Blocking.
pub fn local(relay: &Relay, id: &str) -> Option<Envelope> {
    if !crate::spool::valid_id(id) {
        return None;
    }
    if relay.spool.path_of(id).exists() {
        if let Ok((env, _)) = relay.spool.load(id) {
            return Some(env);
        }
    }
    relay.store.status(&relay.spool, id, cascade_core::time::now_unix()).unwrap_or_else(|e| {
        tracing::warn!(queue_id = %id, error = %e, "finished message's state unreadable");
        None
    })
}

/// The admin listener's `GET /messages/{id}` for peer relays: the envelope, or `404`.
pub async fn for_peer(relay: Arc<Relay>, id: String) -> Answer {
    match tokio::task::spawn_blocking(move || local(&relay, &id)).await.ok().flatten() {
        Some(env) => Answer::json(200, &serde_json::to_value(env).unwrap_or_default()),
        None => Answer::text(404, "not found\n"),
    }
}

/// `GET /v1/messages/{id}` for `key_id` (already authorized).
pub async fn get(relay: Arc<Relay>, id: String, key_id: String) -> Answer {
    let tenant = relay.runtime().keys.get(&key_id).map(|k| k.tenant.clone());
    let here = relay.clone();
    let id_here = id.clone();
    let mut found = tokio::task::spawn_blocking(move || local(&here, &id_here)).await.ok().flatten();
    if found.is_none() && crate::spool::valid_id(&id) {
        found = ask_peers(&relay, &id).await;
    }
    match found {
        Some(env) if !env.key.is_empty() && Some(&env.tenant) == tenant.as_ref() => Answer::json(200, &view(&env)),
        _ => not_found(),
    }
}

/// Asks every peer relay at once; the first that holds `id` answers.
pub(crate) async fn ask_peers(relay: &Relay, id: &str) -> Option<Envelope> {
    let rt = relay.runtime();
    let Some(handover) = &rt.config.handover else { return None };
    // Mutual TLS in a pool; plaintext only where the admin listener may speak it (loopback).
    let tls = rt.admin_tls.as_ref().map(|c| &c.client);
    let path = format!("/messages/{id}");
    let asks = crate::handover::resolve(&handover.peers).await.into_iter().map(|addr| {
        let call = Call { addr, tls, method: hyper::Method::GET, path: &path, headers: &[], body: Default::default() };
        request(call, 1 << 20, Duration::from_secs(5))
    });
    futures::future::join_all(asks).await.into_iter().flatten().filter(|a| a.status == 200).find_map(|a| serde_json::from_slice(&a.body).ok())
}

/// What the tenant is shown.
pub fn view(env: &Envelope) -> serde_json::Value {
    let recipients: Vec<_> = env
        .recipients
        .iter()
        .map(|r| {
            let status = match r.status {
                RcptStatus::Pending if r.last_reply.is_some() => "deferred",
                RcptStatus::Pending => "queued",
                RcptStatus::Delivered => "delivered",
                RcptStatus::Failed => "bounced",
            };
            serde_json::json!({ "address": r.address, "status": status, "lastReply": r.last_reply })
        })
        .collect();
    serde_json::json!({
        "id": env.id,
        "createdAt": cascade_core::time::rfc3339_utc(env.created),
        "attempts": env.attempts,
        "tags": env.tags,
        "recipients": recipients,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::Recipient;

    #[test]
    fn each_recipient_state_is_named() {
        let mut env = crate::spool::tests::envelope("abc");
        env.recipients = vec![
            Recipient::pending("a@x.test"),
            Recipient { last_reply: Some("451 4.7.1 later".into()), ..Recipient::pending("b@x.test") },
            Recipient { status: RcptStatus::Delivered, ..Recipient::pending("c@x.test") },
            Recipient { status: RcptStatus::Failed, last_reply: Some("550 5.1.1 no".into()), ..Recipient::pending("d@x.test") },
        ];
        let v = view(&env);
        let states: Vec<_> = v["recipients"].as_array().unwrap().iter().map(|r| r["status"].as_str().unwrap()).collect();
        assert_eq!(states, ["queued", "deferred", "delivered", "bounced"]);
        assert_eq!(v["recipients"][3]["lastReply"], "550 5.1.1 no");
    }
}
