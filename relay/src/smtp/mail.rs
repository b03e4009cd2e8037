//! MAIL FROM: authentication is required (the relay is never open), the key must still be usable
//! (revocation and expiry apply at once), its rate limit must allow another message, and the
//! envelope sender's domain must be one the key may send for.

use super::command::Address;
use super::reply::{common, Reply};
use super::{Session, Stage};
use crate::policy;
use tokio::io::{AsyncRead, AsyncWrite};

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    pub(crate) fn mail(&mut self, from: Address, size: Option<u64>) -> Reply {
        match self.stage {
            Stage::Connected => return common::bad_sequence("Send EHLO first"),
            Stage::Mail { .. } | Stage::Rcpt { .. } => return common::bad_sequence("Nested MAIL command"),
            Stage::Ready => {}
        }
        if !self.tls {
            self.reject("no_tls");
            return common::tls_required();
        }
        let Some(key_id) = self.key_id.clone() else {
            self.reject("no_auth");
            return common::auth_required();
        };
        let rt = self.relay.runtime();
        if let Err((reason, reply)) = policy::sender::check(&self.relay, &rt, &key_id, crate::config::SCOPE_SMTP_SUBMIT, self.peer, &from, size) {
            self.reject(reason);
            return reply;
        }
        self.stage = Stage::Mail { from };
        common::ok()
    }
}
