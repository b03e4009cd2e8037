//! AUTH PLAIN and LOGIN (RFC 4954, RFC 4616): only over TLS, only once, and a client IP that fails
//! too often is refused for a while. Username = API key id, password = its secret.

use super::reply::{common, Reply};
use super::{Session, Stage};
use crate::policy::auth;
use base64::Engine;
use tokio::io::{AsyncRead, AsyncWrite};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    pub(crate) async fn auth(&mut self, mechanism: &str, initial: Option<String>) -> Reply {
        if !self.tls {
            self.reject("auth_without_tls");
            return common::tls_required();
        }
        if self.stage == Stage::Connected {
            return common::bad_sequence("Send EHLO first");
        }
        if self.key_id.is_some() {
            return common::bad_sequence("Already authenticated");
        }
        if !matches!(self.stage, Stage::Ready) {
            return common::bad_sequence("AUTH not allowed during a mail transaction");
        }
        let now_ms = cascade_core::time::now_unix_ms();
        if self.relay.auth_failures.is_blocked(self.peer, now_ms) {
            self.reject("auth_blocked");
            return Reply::new(421, "4.7.0", "Too many failed authentications from your address; try again later").closing();
        }
        let credentials = match mechanism {
            "PLAIN" => self.plain(initial).await,
            "LOGIN" => self.login(initial).await,
            _ => return Reply::new(504, "5.5.4", "Unrecognized authentication mechanism; use PLAIN or LOGIN"),
        };
        let (user, secret) = match credentials {
            Ok(c) => c,
            Err(reply) => return reply,
        };
        let rt = self.relay.runtime();
        let verdict = auth::verify(&rt, &user, &secret, self.peer, now_ms / 1000);
        // A key id under attack refuses guesses without telling whether they were right; its
        // owner's correct secret still works, so an attacker cannot lock a tenant out.
        if verdict.is_err() && self.relay.key_auth_failures.is_blocked(user.clone(), now_ms) {
            self.reject("auth_blocked_key");
            let blocked = self.relay.auth_failures.record(self.peer, now_ms);
            self.relay.audit.record("auth.failure", serde_json::json!({ "client": self.peer.to_string(), "key": printable(&user), "reason": "key_blocked", "via": "smtp" }));
            let reply = Reply::new(454, "4.7.0", "Too many failed authentications for this key; try again later");
            return if blocked { reply.closing() } else { reply };
        }
        match verdict {
            Ok(()) if self.relay.suspension(&rt, &user).is_some() => {
                self.reject("suspended");
                tracing::warn!(client = %self.peer, key = %user, "authentication refused: key suspended after unusual sending");
                self.relay.audit.record("auth.failure", serde_json::json!({ "client": self.peer.to_string(), "key": user, "reason": "suspended", "via": "smtp" }));
                common::suspended()
            }
            Ok(()) => {
                self.relay.auth_failures.clear(self.peer);
                tracing::info!(client = %self.peer, key = %user, "authenticated");
                self.relay.audit.record("auth.success", serde_json::json!({ "client": self.peer.to_string(), "key": user, "via": "smtp" }));
                self.relay.note_key_use(&user, self.peer);
                self.key_id = Some(user);
                Reply::new(235, "2.7.0", "Authentication successful")
            }
            Err(denied) => {
                self.relay.metrics.auth_failures.with_label_values(&[denied.as_str()]).inc();
                let blocked = self.relay.auth_failures.record(self.peer, now_ms);
                if matches!(denied, auth::Denied::BadSecret) {
                    self.relay.key_auth_failures.record(user.clone(), now_ms);
                }
                tracing::warn!(client = %self.peer, key = %printable(&user), reason = denied.as_str(), blocked, "authentication failed");
                self.relay.audit.record("auth.failure", serde_json::json!({ "client": self.peer.to_string(), "key": printable(&user), "reason": denied.as_str(), "blocked": blocked, "via": "smtp" }));
                let reply = Reply::new(535, "5.7.8", "Authentication credentials invalid");
                if blocked {
                    reply.closing()
                } else {
                    reply
                }
            }
        }
    }

    /// Reads one SASL response line; `*` cancels (RFC 4954 section 4).
    async fn sasl_line(&mut self, challenge: &'static str) -> Result<Vec<u8>, Reply> {
        self.conn.queue(&Reply::new(334, "", challenge));
        let timeout = self.relay.runtime().config.limits.command_timeout.0;
        let line = self.conn.read_line(12 * 1024, timeout).await.map_err(|_| Reply::new(501, "5.5.2", "Bad SASL response").closing())?;
        if line == b"*" {
            return Err(Reply::new(501, "5.7.0", "Authentication cancelled"));
        }
        decode(&line)
    }

    async fn plain(&mut self, initial: Option<String>) -> Result<(String, String), Reply> {
        let raw = match initial {
            Some(s) if s == "=" => Vec::new(),
            Some(s) => decode(s.as_bytes())?,
            None => self.sasl_line("").await?,
        };
        // authzid \0 authcid \0 passwd; an authzid other than the authcid is not supported.
        let parts: Vec<&[u8]> = raw.split(|&b| b == 0).collect();
        let [authz, user, pass] = parts[..] else {
            return Err(Reply::new(501, "5.5.2", "Malformed PLAIN response"));
        };
        if !authz.is_empty() && authz != user {
            return Err(Reply::new(535, "5.7.8", "Authentication credentials invalid"));
        }
        Ok((utf8(user)?, utf8(pass)?))
    }

    async fn login(&mut self, initial: Option<String>) -> Result<(String, String), Reply> {
        let user = match initial {
            Some(s) => decode(s.as_bytes())?,
            None => self.sasl_line("VXNlcm5hbWU6").await?,
        };
        let pass = self.sasl_line("UGFzc3dvcmQ6").await?;
        Ok((utf8(&user)?, utf8(&pass)?))
    }
}

fn decode(b64: &[u8]) -> Result<Vec<u8>, Reply> {
    B64.decode(b64).map_err(|_| Reply::new(501, "5.5.2", "Invalid base64 in SASL response"))
}

fn utf8(b: &[u8]) -> Result<String, Reply> {
    String::from_utf8(b.to_vec()).map_err(|_| Reply::new(501, "5.5.2", "Credentials must be UTF-8"))
}

/// A key id as the client sent it, safe for a log line: short, printable, and never a secret
/// pasted into the username field by mistake (anything that looks like one is withheld).
fn printable(user: &str) -> String {
    if user.len() > 64 || user.contains(cascade_core::secret::SECRET_PREFIX) {
        return "(withheld)".into();
    }
    user.chars().map(|c| if c.is_ascii_graphic() { c } else { '?' }).collect()
}
