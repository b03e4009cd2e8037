//! ARF feedback reports (RFC 5965) as the mailbox provider sent them, taken by `POST
//! /v1/feedback` (the whole message as the body) and by mail to the pool's feedback address,
//! with a key holding `suppressions:manage`. The reported message must be the key's tenant's,
//! held or finished by this relay or, asked over the admin channel, by a peer of the pool; its
//! recipient then gets a `message.complained` event and, where the tenant's `suppressedReasons`
//! say `complaint`, a suppression entry.

use super::invalid;
use crate::http::Answer;
use crate::relay::{mask, Relay};
use crate::suppression::Entry;

/// A report taken.
pub struct Taken {
    pub message_id: String,
    pub recipient: String,
    pub feedback_type: String,
    pub suppressed: bool,
}

/// Why a report was not taken: the key lacks the scope, or the report itself.
pub enum Refusal {
    Scope,
    Report(String),
}

/// `POST /v1/feedback` (the key already authorized for the scope). Blocking.
pub fn post(relay: &Relay, key: &str, body: &[u8]) -> Answer {
    match take(relay, key, body) {
        Ok(t) => Answer::json(202, &serde_json::json!({ "messageId": t.message_id, "recipient": t.recipient, "feedbackType": t.feedback_type, "suppressed": t.suppressed })),
        Err(Refusal::Scope) => Answer::problem(403, "Forbidden", "this API key lacks the scope suppressions:manage"),
        Err(Refusal::Report(why)) => invalid(format!("/: {why}")),
    }
}

/// Takes one report submitted with `key`. Blocking (a peer may be asked).
pub fn take(relay: &Relay, key: &str, body: &[u8]) -> Result<Taken, Refusal> {
    let rt = relay.runtime();
    let Some(policy) = rt.keys.get(key).filter(|k| k.scopes.iter().any(|s| s == "suppressions:manage")) else { return Err(Refusal::Scope) };
    let tenant = policy.tenant.clone();
    let complaint = crate::complaints::parse(body).map_err(|why| Refusal::Report(format!("not a feedback report: {why}")))?;
    // Only a message of this tenant, held or finished by this relay or a peer.
    let find = |id: &String| crate::api::status::local(relay, id).or_else(|| tokio::runtime::Handle::current().block_on(crate::api::status::ask_peers(relay, id)));
    let Some(env) = complaint.queue_ids.iter().find_map(find).filter(|e| e.tenant == tenant && !e.key.is_empty()) else {
        return Err(Refusal::Report("the reported message is not one of this tenant's (known to the pool)".into()));
    };
    let recipient = match (&complaint.recipient, env.recipients.as_slice()) {
        (Some(r), _) => r.clone(),
        (None, [only]) => only.address.clone(),
        (None, _) => return Err(Refusal::Report("the report has no Original-Rcpt-To and the message had several recipients".into())),
    };
    if !env.recipients.iter().any(|r| r.address.eq_ignore_ascii_case(&recipient)) {
        return Err(Refusal::Report("Original-Rcpt-To is not a recipient of the reported message".into()));
    }
    relay.audit.record("message.complained", serde_json::json!({ "queue_id": env.id, "tenant": tenant, "recipient": mask(&recipient), "feedback_type": complaint.feedback_type, "key": key }));
    if crate::events::Events::wanted(&rt, &tenant, "message.complained") {
        let data = serde_json::json!({ "messageId": env.id, "tenant": tenant, "recipient": recipient, "tags": env.tags, "feedbackType": complaint.feedback_type });
        relay.events.emit(&rt, &relay.spool, &tenant, "message.complained", data);
    }
    let wanted = crate::suppression::reason_applies(&rt, &tenant, &env.sender, "complaint");
    let mut suppressed = false;
    if wanted {
        let entry = Entry {
            address: recipient.clone(),
            reason: "complaint".into(),
            created: cascade_core::time::now_unix(),
            message_id: Some(env.id.clone()),
            expires: None,
            detail: Some(format!("feedback report: {}", complaint.feedback_type)),
        };
        match relay.suppressions.put(relay, &tenant, entry) {
            Ok(_) => {
                suppressed = true;
                relay.audit.record("suppression.added", serde_json::json!({ "tenant": tenant, "address": mask(&recipient), "reason": "complaint", "message_id": env.id }));
            }
            Err(why) => tracing::warn!(tenant = %tenant, error = %why, "a complaining recipient could not be suppressed"),
        }
    }
    Ok(Taken { message_id: env.id, recipient, feedback_type: complaint.feedback_type, suppressed })
}
