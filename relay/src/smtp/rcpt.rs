//! RCPT TO: only inside a transaction, up to the recipient limit (RFC 5321 section 4.5.3.1.8
//! says 452 for too many, and the client sends the rest in another transaction).

use super::command::Address;
use super::reply::{common, Reply};
use super::{Session, Stage};
use tokio::io::{AsyncRead, AsyncWrite};

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    pub(crate) fn rcpt(&mut self, to: Address) -> Reply {
        if self.key_id.is_none() {
            self.reject("no_auth");
            return common::auth_required();
        }
        let rt = self.relay.runtime();
        let max = rt.config.limits.max_recipients;
        let key_id = self.key_id.clone().unwrap_or_default();
        let known = matches!(&self.stage, Stage::Rcpt { to: list, .. } if list.contains(&to));
        if matches!(self.stage, Stage::Mail { .. } | Stage::Rcpt { .. }) && !known {
            if let Err((reason, reply)) = crate::policy::sender::recipient(&self.relay, &rt, &key_id) {
                self.reject(reason);
                return reply;
            }
            // Counted, audited and reported there (an event is written only when the tenant
            // has an endpoint for it).
            let tenant = rt.keys.get(&key_id).map(|k| k.tenant.clone()).unwrap_or_default();
            if let Some(reply) = self.relay.suppressed(&tenant, &to.to_string(), "smtp") {
                return reply;
            }
        }
        let stage = std::mem::replace(&mut self.stage, Stage::Ready);
        let (from, mut list) = match stage {
            Stage::Mail { from, .. } => (from, Vec::new()),
            Stage::Rcpt { from, to } => (from, to),
            other => {
                self.stage = other;
                return common::bad_sequence("Need MAIL before RCPT");
            }
        };
        // The DMARC report and feedback addresses take a message of their own.
        let rt = self.relay.runtime();
        let own = [rt.config.dmarc_report_address.as_deref(), rt.config.feedback_address.as_deref()];
        let is_report = |a: &super::command::Address| own.iter().flatten().any(|r| r.eq_ignore_ascii_case(&a.to_string()));
        let reply = if !list.is_empty() && (is_report(&to) || list.iter().any(is_report)) && !list.contains(&to) {
            Reply::new(452, "4.5.3", "The DMARC report and feedback addresses take a message of their own; send the other recipients separately")
        } else if list.len() >= max {
            self.reject("too_many_recipients");
            Reply::new(452, "4.5.3", format!("Too many recipients (limit {max}); send the rest in another message"))
        } else if list.contains(&to) {
            common::ok()
        } else {
            list.push(to);
            common::ok()
        };
        self.stage = if list.is_empty() { Stage::Mail { from } } else { Stage::Rcpt { from, to: list } };
        reply
    }
}
