//! `POST /v1/feedback`: an ARF feedback report (RFC 5965) as the mailbox provider sent it (the
//! whole message as the body), with a key holding `suppressions:manage`. The reported message
//! must be the key's tenant's; its recipient then gets a `message.complained` event and, where
//! the tenant's `suppressedReasons` say `complaint`, a suppression entry (`202`).

use super::invalid;
use crate::http::Answer;
use crate::relay::{mask, Relay};
use crate::suppression::Entry;

pub fn post(relay: &Relay, key: &str, body: &[u8]) -> Answer {
    let tenant = relay.runtime().keys.get(key).map(|k| k.tenant.clone()).unwrap_or_default();
    let complaint = match crate::complaints::parse(body) {
        Ok(c) => c,
        Err(why) => return invalid(format!("/: not a feedback report: {why}")),
    };
    // Only a message of this tenant, held or finished by this relay, can be complained about.
    let Some(env) = complaint.queue_ids.iter().find_map(|id| crate::api::status::local(relay, id)).filter(|e| e.tenant == tenant && !e.key.is_empty()) else {
        return invalid("/: the reported message is not one of this tenant's (known to this relay)");
    };
    let recipient = match (&complaint.recipient, env.recipients.as_slice()) {
        (Some(r), _) => r.clone(),
        (None, [only]) => only.address.clone(),
        (None, _) => return invalid("/: the report has no Original-Rcpt-To and the message had several recipients"),
    };
    if !env.recipients.iter().any(|r| r.address.eq_ignore_ascii_case(&recipient)) {
        return invalid("/: Original-Rcpt-To is not a recipient of the reported message");
    }
    let rt = relay.runtime();
    relay.audit.record("message.complained", serde_json::json!({ "queue_id": env.id, "tenant": tenant, "recipient": mask(&recipient), "feedback_type": complaint.feedback_type, "key": key }));
    if crate::events::Events::wanted(&rt, &tenant, "message.complained") {
        let data = serde_json::json!({ "messageId": env.id, "tenant": tenant, "recipient": recipient, "tags": env.tags, "feedbackType": complaint.feedback_type });
        relay.events.emit(&rt, &relay.spool, &tenant, "message.complained", data);
    }
    let wanted = rt.config.tenants.iter().find(|t| t.name == tenant).is_some_and(|t| t.suppressed_reasons.iter().any(|r| r == "complaint"));
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
    Answer::json(202, &serde_json::json!({ "messageId": env.id, "recipient": recipient, "feedbackType": complaint.feedback_type, "suppressed": suppressed }))
}
