//! The HTTP send API on the tenant listener, with an API key holding `messages:send` (HTTP Basic
//! or `Bearer <id>:<secret>`, checked before the body is read):
//!
//! - `POST /v1/messages`: a message described in JSON, built into MIME by [`compose`];
//! - `POST /v1/messages/raw`: an envelope and an RFC 5322 message ([`raw`]);
//! - `GET /v1/messages/{id}`: a message's per-recipient state ([`status`]);
//! - `GET /v1/openapi.json`: the API's OpenAPI 3.1 document (`relay/openapi.json`).
//!
//! A message then goes the way SMTP DATA's does — the same sender policy
//! ([`crate::policy::sender`]), DKIM signing and fsynced spool ([`crate::submit`]) — and `202`
//! is answered only once it is on disk. An `Idempotency-Key` makes a send happen once
//! ([`idempotency`]). Refusals are RFC 9457 problems naming the field.

pub mod compose;
pub mod feedback;
pub mod idempotency;
pub mod raw;
pub mod status;
pub mod suppressions;

use crate::config::SCOPE_MESSAGES_SEND;
use crate::http::Answer;
use crate::policy::sender::{self, Refusal};
use crate::relay::Relay;
use crate::smtp::command::{parse_address, Address};
use crate::smtp::message::{added_headers, Trace};
use crate::spool::{Envelope, Recipient};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// The OpenAPI document, served as it is checked in.
pub const OPENAPI: &str = include_str!("../../openapi.json");

/// A send taken apart: the envelope, the message as DATA would carry it, and its tags.
pub struct Submission {
    pub from: Address,
    pub to: Vec<Address>,
    pub message: Vec<u8>,
    pub tags: BTreeMap<String, String>,
}

/// The key id, or the refusal, before the body is read.
pub fn authorize(relay: &Relay, authorization: Option<&str>, peer: IpAddr) -> Result<String, Answer> {
    authorize_for(relay, authorization, peer, SCOPE_MESSAGES_SEND)
}

/// `key` (authorized) within its allowance of API requests other than sends (reads, which may
/// ask every peer, and list changes; sends are metered per message): `limits.apiRequestsPerMinute`
/// per key and relay, else `429` with `Retry-After`.
pub fn metered(relay: &Relay, key: String) -> Result<String, Answer> {
    let per_minute = relay.runtime().config.limits.api_requests_per_minute;
    if relay.rates.allow(&format!("api\0{key}"), per_minute, cascade_core::time::now_unix_ms()) {
        return Ok(key);
    }
    relay.metrics.rejected.with_label_values(&["api_rate"]).inc();
    Err(Answer::problem(429, "Too Many Requests", format!("this API key made more than {per_minute} requests in a minute on this relay; try again later")).retry_after(60))
}

/// A key holding `scope`, or the refusal as a problem (`429` with `Retry-After`).
pub fn authorize_for(relay: &Relay, authorization: Option<&str>, peer: IpAddr, scope: &str) -> Result<String, Answer> {
    crate::policy::auth::http(relay, authorization, peer, scope).map_err(|(status, detail)| {
        let title = match status {
            401 => "Unauthorized",
            403 => "Forbidden",
            _ => "Too Many Requests",
        };
        let answer = Answer::problem(status, title, detail);
        if status == 429 {
            answer.retry_after(60)
        } else {
            answer
        }
    })
}

/// An authorized `POST` to `path` (`/v1/messages` or `/v1/messages/raw`): queued (`202`) or
/// refused; every outcome audited as `api.request` (key, client, status; no content).
pub fn post(relay: &Relay, path: &str, key_id: &str, body: &[u8], idempotency_key: Option<&str>, peer: IpAddr) -> Answer {
    let send = |queue_id: &str| parse(relay, path, queue_id, body, &|reason| sender::rejected(relay, peer, Some(key_id), reason)).and_then(|s| send(relay, key_id, peer, queue_id, s));
    let answer = match idempotency_key {
        Some(k) => idempotency::once(relay, key_id, k, path, body, send),
        None => send(&crate::spool::new_queue_id()),
    }
    .unwrap_or_else(|e| e);
    relay.audit.record("api.request", serde_json::json!({ "path": path, "key": key_id, "client": peer.to_string(), "status": answer.status }));
    answer
}

fn parse(relay: &Relay, path: &str, queue_id: &str, body: &[u8], reject: &dyn Fn(&'static str)) -> Result<Submission, Answer> {
    let rt = relay.runtime();
    let limits = &rt.config.limits;
    match path {
        "/v1/messages/raw" => raw::parse(body, limits, reject),
        _ => compose::parse(body, limits, queue_id, &rt.config.hostname),
    }
}

pub fn invalid(detail: impl Into<String>) -> Answer {
    Answer::problem(422, "Unprocessable Content", detail)
}

pub fn too_large(max: u64) -> Answer {
    Answer::problem(413, "Content Too Large", format!("/content: the message is larger than the limit of {max} bytes"))
}

/// Checks the sender policy, signs and spools `s` under `queue_id`: `202` once it is on disk.
fn send(relay: &Relay, key_id: &str, peer: IpAddr, queue_id: &str, s: Submission) -> Result<Answer, Answer> {
    let rt = relay.runtime();
    if s.message.len() as u64 > rt.config.limits.max_message_size.0 {
        return Err(refused(relay, key_id, peer, "size", too_large(rt.config.limits.max_message_size.0)));
    }
    sender::check(relay, &rt, key_id, SCOPE_MESSAGES_SEND, peer, &s.from, Some(s.message.len() as u64)).map_err(|r| refusal(relay, key_id, peer, r, "/from"))?;
    for _ in &s.to {
        sender::recipient(relay, &rt, key_id).map_err(|r| refusal(relay, key_id, peer, r, "/to"))?;
    }
    let now = cascade_core::time::now_unix();
    let trace = Trace { helo: "api", client_ip: peer, hostname: &rt.config.hostname, queue_id, tls: true, unix_time: now };
    let added = added_headers(&s.message, &trace);
    let tenant = rt.keys.get(key_id).map(|k| k.tenant.clone()).unwrap_or_default();
    let (suppressed, to): (Vec<String>, Vec<String>) = s.to.iter().map(|a| a.to_string()).partition(|a| relay.suppressed(&tenant, a, "http").is_some());
    if to.is_empty() {
        return Err(invalid(format!("/to: every recipient is suppressed ({})", suppressed.join(", "))));
    }
    let env = Envelope {
        id: queue_id.to_string(),
        sender: s.from.to_string(),
        recipients: to.iter().map(|a| Recipient::pending(a)).collect(),
        tenant,
        key: key_id.to_string(),
        created: now,
        next_attempt: 0,
        attempts: 0,
        tags: s.tags,
    };
    drop(rt);
    let (env, stored) = crate::submit::accept(relay, key_id, env, added, s.message).map_err(|reply| reply_answer(&reply, "/content"))?;
    let answer = queued_answer(&env, &suppressed);
    crate::submit::queued(relay, env, stored, peer, "http");
    Ok(answer)
}

/// The `202` for a queued envelope, and the recipients left out as suppressed.
pub fn queued_answer(env: &Envelope, suppressed: &[String]) -> Answer {
    let mut listed: Vec<_> = env.recipients.iter().map(|r| serde_json::json!({ "address": r.address, "status": "queued" })).collect();
    listed.extend(suppressed.iter().map(|a| serde_json::json!({ "address": a, "status": "suppressed" })));
    Answer::json(202, &serde_json::json!({ "id": env.id, "recipients": listed }))
}

/// An address the API was given (`field` names it in a refusal): not the null path.
pub fn address(text: &str, field: &str) -> Result<Address, Answer> {
    match parse_address(text) {
        Ok(a) if !a.is_null() => Ok(a),
        _ => Err(invalid(format!("{field}: not an address (local-part@domain)"))),
    }
}

/// The envelope recipients: at least one, at most `max`, each an address, duplicates once.
/// `fields` pairs each with the JSON pointer that names it.
pub fn recipients<'a>(fields: impl IntoIterator<Item = (String, &'a str)>, max: usize) -> Result<Vec<Address>, Answer> {
    let mut out: Vec<Address> = Vec::new();
    let mut given = 0usize;
    for (field, text) in fields {
        given += 1;
        if given > max {
            return Err(invalid(format!("/to: more recipients than the limit of {max}")));
        }
        let a = address(text, &field)?;
        if !out.contains(&a) {
            out.push(a);
        }
    }
    if out.is_empty() {
        return Err(invalid("/to: at least one recipient is required"));
    }
    Ok(out)
}

/// Counts and audits a refusal (as SMTP does) and returns its answer.
fn refused(relay: &Relay, key_id: &str, peer: IpAddr, reason: &str, answer: Answer) -> Answer {
    sender::rejected(relay, peer, Some(key_id), reason);
    answer
}

fn refusal(relay: &Relay, key_id: &str, peer: IpAddr, (reason, reply): Refusal, field: &str) -> Answer {
    let answer = match reason {
        "size" => Answer::problem(413, "Content Too Large", format!("/content: {}", reply_text(&reply))),
        "rate_limit" | "tenant_rate_limit" | "recipient_rate_limit" | "tenant_queue" => Answer::problem(429, "Too Many Requests", reply_text(&reply)).retry_after(60),
        "sender_domain" | "domain_refused" | "suspended" => Answer::problem(403, "Forbidden", format!("{field}: {}", reply_text(&reply))),
        _ => Answer::problem(403, "Forbidden", reply_text(&reply)),
    };
    refused(relay, key_id, peer, reason, answer)
}

fn reply_text(reply: &crate::smtp::reply::Reply) -> String {
    reply.lines.join(" ")
}

/// A refusal from [`crate::submit::accept`] (already counted there): a permanent one is the
/// message's fault (`422`), a temporary one the relay's (`503`, retry).
fn reply_answer(reply: &crate::smtp::reply::Reply, field: &str) -> Answer {
    match reply.code {
        500..=599 => invalid(format!("{field}: {}", reply_text(reply))),
        _ => Answer::problem(503, "Service Unavailable", reply_text(reply)).retry_after(30),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients_name_the_bad_entry_and_the_limit() {
        let to = |list: &[&'static str]| list.iter().enumerate().map(|(i, s)| (format!("/to/{i}"), *s)).collect::<Vec<_>>();
        assert_eq!(recipients(to(&["a@b.test", "A@B.test", "c@d.test"]), 5).unwrap().len(), 3, "domains fold, local parts do not");
        assert!(recipients(to(&["a@b.test", "a@b.test"]), 5).unwrap().len() == 1);
        assert!(recipients(to(&["a@b.test", "nope"]), 5).unwrap_err().body.contains("/to/1: not an address"));
        assert!(recipients(to(&["a@b.test", ""]), 5).unwrap_err().body.contains("/to/1: not an address"), "not the null path");
        assert!(recipients(to(&[]), 5).unwrap_err().body.contains("/to: at least one"));
        assert!(recipients(to(&["a@b.test"; 6]), 5).unwrap_err().body.contains("more recipients than the limit of 5"));
    }

    #[test]
    fn the_openapi_document_is_json_and_names_every_path() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        for path in ["/v1/messages", "/v1/messages/raw", "/v1/messages/{id}"] {
            assert!(doc["paths"].get(path).is_some(), "{path} documented");
        }
    }
}
