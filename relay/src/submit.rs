//! What every submission path does once it has a whole message (SMTP DATA, the HTTP send API):
//! [`accept`] checks the header section and the `From:` domains against the key, DKIM-signs with
//! every active key of the `From:` domain and writes the spool file (fsynced with its directory);
//! [`queued`] then counts, logs, audits and queues it. The client hears success only after
//! `accept` returned.

use crate::policy;
use crate::relay::Relay;
use crate::smtp::message::{check_header_section, from_domains};
use crate::smtp::reply::{common, Reply};
use crate::spool::Envelope;
use std::net::IpAddr;
use std::sync::Arc;

/// Checks, signs and spools one message (blocking: signing and fsync). Returns the envelope and
/// the stored bytes, or the reply to refuse with.
pub fn accept(relay: &Relay, key_id: &str, env: Envelope, added: Vec<u8>, message: Vec<u8>) -> Result<(Envelope, Vec<u8>), Reply> {
    let rt = relay.runtime();
    check_header_section(&message).inspect_err(|_| relay.metrics.rejected.with_label_values(&["header_section"]).inc())?;
    let domains = from_domains(&message).inspect_err(|_| relay.metrics.rejected.with_label_values(&["from_header"]).inc())?;
    if let Some(bad) = domains.iter().find(|d| !policy::may_send_as(&rt, key_id, d)) {
        relay.metrics.rejected.with_label_values(&["from_domain"]).inc();
        tracing::warn!(queue_id = %env.id, key = %key_id, from_domain = %bad, "From: domain not allowed for key");
        return Err(Reply::new(550, "5.7.1", "From: header domain is not authorized for this API key"));
    }
    let signers = &rt.domains[&domains[0]].signers;
    if signers.is_empty() {
        relay.metrics.rejected.with_label_values(&["no_dkim_key"]).inc();
        return Err(Reply::new(550, "5.7.1", "The From: domain has no active DKIM key; the relay signs every message"));
    }
    let mut signatures = Vec::new();
    for signer in signers {
        match signer.sign(&[&added, &message]) {
            Ok(h) => signatures.extend_from_slice(h.as_bytes()),
            Err(e) => {
                tracing::error!(queue_id = %env.id, error = %e, "DKIM signing failed");
                return Err(common::local_error());
            }
        }
    }
    let mut stored = Vec::with_capacity(signatures.len() + added.len() + message.len());
    stored.extend_from_slice(&signatures);
    stored.extend_from_slice(&added);
    stored.extend_from_slice(&message);
    if let Some(refusal) = crate::policy::limits::queue_share(relay.spool.tenant_usage(&env.tenant), stored.len() as u64, &rt.config.limits) {
        relay.metrics.rejected.with_label_values(&["tenant_queue"]).inc();
        tracing::warn!(queue_id = %env.id, tenant = %env.tenant, "tenant over its queue share; message not accepted");
        return Err(refusal);
    }
    if let Err(e) = relay.spool.store(&env, &[&stored]) {
        tracing::error!(queue_id = %env.id, error = %e, "spool write failed; message not accepted");
        return Err(common::local_error());
    }
    if crate::events::Events::wanted(&rt, &env.tenant, "message.accepted") {
        relay.events.emit(&rt, &relay.spool, &env.tenant, "message.accepted", crate::events::message::accepted(&env));
    }
    Ok((env, stored))
}

/// A message [`accept`]ed: counted, logged and audited (`message.accepted`, addresses masked,
/// `via` the path it came by), and queued for delivery.
pub fn queued(relay: &Relay, env: Envelope, stored: Vec<u8>, client: IpAddr, via: &str) {
    relay.metrics.accepted.with_label_values(&[&env.tenant]).inc();
    tracing::info!(queue_id = %env.id, client = %client, via, sender = %crate::relay::mask(&env.sender), recipients = env.recipients.len(), size = stored.len(), "message accepted");
    let recipients: Vec<String> = env.recipients.iter().map(|r| crate::relay::mask(&r.address)).collect();
    relay.audit.record(
        "message.accepted",
        serde_json::json!({ "queue_id": env.id, "client": client.to_string(), "via": via, "key": env.key, "tenant": env.tenant, "sender": crate::relay::mask(&env.sender), "recipients": recipients, "size": stored.len() }),
    );
    relay.key_accepted(&env.key);
    relay.queue.submit(env, Some(Arc::new(stored)));
}
