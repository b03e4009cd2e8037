//! The HTTP send API on the tenant listener: `POST /v1/messages/raw` takes an envelope and an
//! RFC 5322 message (`{"from", "to": [...], "content": base64}`) with an API key holding
//! `messages:send` (HTTP Basic or `Bearer <id>:<secret>`, checked before the body is read). The
//! message then goes the way SMTP DATA's does — the same sender policy
//! ([`crate::policy::sender`]), DKIM signing and fsynced spool ([`crate::submit`]) — and `202`
//! is answered only once it is on disk. Refusals are RFC 9457 problems naming the field.

use crate::config::SCOPE_MESSAGES_SEND;
use crate::http::Answer;
use crate::policy::sender::{self, Refusal};
use crate::relay::Relay;
use crate::smtp::command::{parse_address, Address};
use crate::smtp::message::{added_headers, Trace};
use crate::spool::{Envelope, Recipient};
use serde::Deserialize;
use std::net::IpAddr;

/// `POST /v1/messages/raw`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    /// The envelope sender.
    from: String,
    /// The envelope recipients.
    to: Vec<String>,
    /// The message, base64.
    content: String,
}

/// The key id, or the refusal, before the body is read.
pub fn authorize(relay: &Relay, authorization: Option<&str>, peer: IpAddr) -> Result<String, Answer> {
    crate::policy::auth::http(relay, authorization, peer, SCOPE_MESSAGES_SEND).map_err(|(status, detail)| {
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

/// An authorized raw send: queued (`202`) or refused; every outcome audited as `api.request`.
pub fn raw(relay: &Relay, key_id: &str, body: &[u8], peer: IpAddr) -> Answer {
    let answer = send_raw(relay, key_id, body, peer).unwrap_or_else(|e| e);
    relay.audit.record("api.request", serde_json::json!({ "path": "/v1/messages/raw", "key": key_id, "client": peer.to_string(), "status": answer.status }));
    answer
}

fn invalid(detail: impl Into<String>) -> Answer {
    Answer::problem(422, "Unprocessable Content", detail)
}

fn send_raw(relay: &Relay, key_id: &str, body: &[u8], peer: IpAddr) -> Result<Answer, Answer> {
    use base64::Engine;
    let raw: Raw = serde_json::from_slice(body).map_err(|e| invalid(format!("/: {e}")))?;
    let from = parse_address(&raw.from).map_err(|_| invalid("/from: not an address (local-part@domain)"))?;
    let rt = relay.runtime();
    let to = recipients(&raw.to, rt.config.limits.max_recipients)?;
    let compact: String = raw.content.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let message = base64::engine::general_purpose::STANDARD.decode(compact).map_err(|_| invalid("/content: not base64"))?;
    let max = rt.config.limits.max_message_size.0;
    if message.len() as u64 > max {
        return Err(refused(relay, key_id, peer, "size", Answer::problem(413, "Content Too Large", format!("/content: the message is larger than the limit of {max} bytes"))));
    }
    let message = normalized(message, rt.config.limits.max_line_length).map_err(|why| refused(relay, key_id, peer, why.0, invalid(format!("/content: {}", why.1))))?;
    sender::check(relay, &rt, key_id, SCOPE_MESSAGES_SEND, peer, &from, Some(message.len() as u64)).map_err(|r| refusal(relay, key_id, peer, r, "/from"))?;
    for _ in &to {
        sender::recipient(relay, &rt, key_id).map_err(|r| refusal(relay, key_id, peer, r, "/to"))?;
    }
    let queue_id = crate::spool::new_queue_id();
    let now = cascade_core::time::now_unix();
    let trace = Trace { helo: "api", client_ip: peer, hostname: &rt.config.hostname, queue_id: &queue_id, tls: true, unix_time: now };
    let added = added_headers(&message, &trace);
    let tenant = rt.keys.get(key_id).map(|k| k.tenant.clone()).unwrap_or_default();
    let env = Envelope {
        id: queue_id.clone(),
        sender: from.to_string(),
        recipients: to.iter().map(|a| Recipient::pending(&a.to_string())).collect(),
        tenant,
        key: key_id.to_string(),
        created: now,
        next_attempt: 0,
        attempts: 0,
    };
    drop(rt);
    let (env, stored) = crate::submit::accept(relay, key_id, env, added, message).map_err(|reply| reply_answer(&reply, "/content"))?;
    let listed: Vec<_> = env.recipients.iter().map(|r| serde_json::json!({ "address": r.address, "status": "queued" })).collect();
    crate::submit::queued(relay, env, stored, peer, "http");
    Ok(Answer::json(202, &serde_json::json!({ "id": queue_id, "recipients": listed })))
}

/// The envelope recipients: at least one, at most `max`, each an address, duplicates once.
fn recipients(to: &[String], max: usize) -> Result<Vec<Address>, Answer> {
    if to.is_empty() {
        return Err(invalid("/to: at least one recipient is required"));
    }
    if to.len() > max {
        return Err(invalid(format!("/to: {} recipients, more than the limit of {max}", to.len())));
    }
    let mut out: Vec<Address> = Vec::with_capacity(to.len());
    for (i, text) in to.iter().enumerate() {
        let a = parse_address(text).map_err(|_| invalid(format!("/to/{i}: not an address (local-part@domain)")))?;
        if !out.contains(&a) {
            out.push(a);
        }
    }
    Ok(out)
}

/// The message as DATA would have carried it: line ends CRLF (a bare LF becomes CRLF, as no SMTP
/// framing is involved here), no bare CR, no NUL, no line longer than `max_line`, ending in CRLF.
fn normalized(message: Vec<u8>, max_line: usize) -> Result<Vec<u8>, (&'static str, String)> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 40 + 2);
    let mut line = 0usize;
    let mut bytes = message.iter().copied().peekable();
    while let Some(b) = bytes.next() {
        match b {
            0 => return Err(("nul", "the message contains a NUL byte (RFC 5322 2.3)".into())),
            b'\r' if bytes.peek() != Some(&b'\n') => return Err(("bare_line_ending", "the message contains a bare CR; lines end with CRLF".into())),
            b'\r' => {}
            b'\n' => {
                out.extend_from_slice(b"\r\n");
                line = 0;
                continue;
            }
            _ => {}
        }
        if b != b'\r' {
            out.push(b);
            line += 1;
            if line > max_line {
                return Err(("line_length", format!("the message has a line longer than {max_line} bytes (RFC 5322 2.1.1)")));
            }
        }
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
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
    fn content_is_normalized_to_crlf_and_refused_for_bare_cr_nul_and_long_lines() {
        assert_eq!(normalized(b"From: a@b.test\nSubject: x\n\nbody".to_vec(), 998).unwrap(), b"From: a@b.test\r\nSubject: x\r\n\r\nbody\r\n");
        assert_eq!(normalized(b"A: b\r\n\r\nx\r\n".to_vec(), 998).unwrap(), b"A: b\r\n\r\nx\r\n");
        assert_eq!(normalized(b"A: b\r\n\r\nx\ry\r\n".to_vec(), 998).unwrap_err().0, "bare_line_ending");
        assert_eq!(normalized(b"A: b\r\n\r\nx\0y\r\n".to_vec(), 998).unwrap_err().0, "nul");
        assert_eq!(normalized(b"A: 123456\r\n".to_vec(), 5).unwrap_err().0, "line_length");
    }

    #[test]
    fn recipients_name_the_bad_entry_and_the_limit() {
        let to = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(recipients(&to(&["a@b.test", "A@B.test", "c@d.test"]), 5).unwrap().len(), 3, "domains fold, local parts do not");
        assert!(recipients(&to(&["a@b.test", "a@b.test"]), 5).unwrap().len() == 1);
        assert!(recipients(&to(&["a@b.test", "nope"]), 5).unwrap_err().body.contains("/to/1: not an address"));
        assert!(recipients(&to(&[]), 5).unwrap_err().body.contains("/to: at least one"));
        assert!(recipients(&to(&["a@b.test"; 6]), 5).unwrap_err().body.contains("more than the limit of 5"));
    }
}
