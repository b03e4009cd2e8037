//! The `data` of message events: the message id (the one the send API and SMTP `250` return),
//! the tenant, the recipient in full (the tenant's own endpoint), the tags, and for outcomes the
//! SMTP reply taken apart.

use crate::spool::{Envelope, Recipient};
use serde_json::{json, Value};

/// `"550 5.1.1 No such user"` → `{code: 550, enhancedStatus: "5.1.1", reply}`; a reply that is
/// not an SMTP one (a DNS failure, a refused destination) has no code.
pub fn smtp(reply: &str) -> Value {
    let mut words = reply.split_whitespace();
    let code = words.next().and_then(|w| w.parse::<u16>().ok()).filter(|c| (200..600).contains(c));
    let enhanced = code.and(words.next()).filter(|w| {
        let parts: Vec<&str> = w.split('.').collect();
        parts.len() == 3 && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    });
    json!({ "code": code, "enhancedStatus": enhanced, "reply": reply })
}

pub fn accepted(env: &Envelope) -> Value {
    let recipients: Vec<&str> = env.recipients.iter().map(|r| r.address.as_str()).collect();
    json!({ "messageId": env.id, "tenant": env.tenant, "from": env.sender, "recipients": recipients, "tags": env.tags })
}

/// `delivered`, `deferred` or `bounced` (with `bounce_type`) for one recipient.
pub fn outcome(env: &Envelope, r: &Recipient, bounce_type: Option<&str>) -> Value {
    let mut data = json!({
        "messageId": env.id, "tenant": env.tenant, "recipient": r.address, "tags": env.tags,
        "attempts": env.attempts, "smtp": smtp(r.last_reply.as_deref().unwrap_or_default()),
    });
    if let Some(kind) = bounce_type {
        data["bounceType"] = json!(kind);
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_taken_apart_when_they_are_smtp() {
        assert_eq!(smtp("550 5.1.1 No such user"), json!({"code": 550, "enhancedStatus": "5.1.1", "reply": "550 5.1.1 No such user"}));
        assert_eq!(smtp("451 try later")["enhancedStatus"], Value::Null);
        assert_eq!(smtp("destination address not allowed")["code"], Value::Null);
        assert_eq!(smtp("gave up after 5d: 451 4.7.1 x")["code"], Value::Null);
    }
}
