//! DATA: read the message (no bare LF/CR, bounded size and line length), check the `From:`
//! domains against the key, add trace headers, DKIM-sign with every active key of the `From:`
//! domain, and write it to the spool. `250` is sent only after the spool file and its directory
//! are on disk; any failure before that is a `4xx`/`5xx` and the client keeps the message.

use super::conn::{ConnError, DataPace};
use super::dotstuff::{DataError, DataReader};
use super::message::{added_headers, Trace};
use super::reply::{common, Reply};
use super::{Session, Stage};
use crate::spool::{Envelope, Recipient};
use tokio::io::{AsyncRead, AsyncWrite};

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    /// A message to the DMARC report address: taken as reports, never spooled or delivered.
    /// Decompressing and parsing run on the blocking pool, not on the session's worker.
    async fn dmarc_report(&mut self, key_id: &str, message: Vec<u8>) -> Reply {
        let (relay, key) = (self.relay.clone(), key_id.to_string());
        let Ok(_parsing) = crate::dmarc::PARSERS.acquire().await else { return common::local_error() };
        let job = tokio::task::spawn_blocking(move || {
            crate::dmarc::parse_mail(&message).inspect_err(|e| crate::dmarc::ingest::malformed(&relay, e)).and_then(|reports| crate::dmarc::ingest::accept(&relay, &key, &reports))
        });
        let Ok(result) = job.await else { return common::local_error() };
        match result {
            Ok(summary) => Reply::new(250, "2.6.0", format!("DMARC report accepted: {}", summary.chars().take(300).collect::<String>())),
            Err(e) => {
                tracing::warn!(client = %self.peer, key = %key_id, error = %e, "DMARC report refused");
                Reply::new(550, "5.6.0", format!("DMARC report refused: {}", e.0.chars().filter(|c| !c.is_control()).take(300).collect::<String>()))
            }
        }
    }

    /// A message to the feedback address: an ARF report about one of the tenant's messages.
    async fn feedback_report(&mut self, key_id: &str, message: Vec<u8>) -> Reply {
        let (relay, key) = (self.relay.clone(), key_id.to_string());
        let Ok(result) = tokio::task::spawn_blocking(move || crate::api::feedback::take(&relay, &key, &message)).await else { return common::local_error() };
        match result {
            Ok(taken) => {
                Reply::new(250, "2.6.0", format!("feedback report accepted: {} from message {}{}", taken.feedback_type, taken.message_id, if taken.suppressed { ", recipient suppressed" } else { "" }))
            }
            Err(crate::api::feedback::Refusal::Scope) => Reply::new(550, "5.7.1", "feedback reports need an API key with the scope suppressions:manage"),
            Err(crate::api::feedback::Refusal::Report(why)) => {
                tracing::warn!(client = %self.peer, key = %key_id, error = %why, "feedback report refused");
                Reply::new(550, "5.6.0", format!("feedback report refused: {}", why.chars().filter(|c| !c.is_control()).take(300).collect::<String>()))
            }
        }
    }

    pub(crate) async fn data(&mut self) -> Reply {
        let (from, to) = match std::mem::replace(&mut self.stage, Stage::Ready) {
            Stage::Rcpt { from, to } => (from, to),
            Stage::Mail { from } => {
                self.stage = Stage::Mail { from };
                return self.data_not_started(Reply::new(554, "5.5.1", "No valid recipients"));
            }
            other => {
                self.stage = other;
                return self.data_not_started(common::bad_sequence("Need MAIL and RCPT before DATA"));
            }
        };
        let rt = self.relay.runtime();
        let limits = &rt.config.limits;
        self.conn.queue(&Reply::new(354, "", "End data with <CR><LF>.<CR><LF>"));
        if self.conn.flush().await.is_err() {
            return Reply::new(421, "4.4.2", "Connection lost").closing();
        }
        let reader = DataReader::new(limits.max_message_size.0 as usize, limits.max_line_length);
        let pace = DataPace { min_bytes_per_sec: limits.min_data_rate.0, window: limits.data_rate_window.0 };
        let message = match self.conn.read_data(reader, limits.data_timeout.0, pace).await {
            Ok(Ok(m)) => m,
            Ok(Err(e)) => return self.data_refused(e, &rt),
            Err(ConnError::SessionDeadline) => {
                self.reject("session_deadline");
                return common::session_deadline();
            }
            Err(ConnError::TooSlow) => {
                self.reject("data_rate");
                tracing::warn!(client = %self.peer, "message data below the minimum rate; closing the session");
                return common::too_slow();
            }
            Err(_) => return common::timeout(),
        };
        let key_id = self.key_id.clone().unwrap_or_default();
        if let Some(report_address) = rt.config.dmarc_report_address.as_deref() {
            if to.len() == 1 && to[0].to_string().eq_ignore_ascii_case(report_address) {
                return self.dmarc_report(&key_id, message).await;
            }
        }
        if let Some(feedback_address) = rt.config.feedback_address.as_deref() {
            if to.len() == 1 && to[0].to_string().eq_ignore_ascii_case(feedback_address) {
                return self.feedback_report(&key_id, message).await;
            }
        }
        let queue_id = crate::spool::new_queue_id();
        let trace = Trace { helo: &self.helo, client_ip: self.peer, hostname: &rt.config.hostname, queue_id: &queue_id, tls: self.tls, unix_time: cascade_core::time::now_unix() };
        let added = added_headers(&message, &trace);
        let relay = self.relay.clone();
        let env = Envelope {
            id: queue_id.clone(),
            sender: from.to_string(),
            recipients: to.iter().map(|a| Recipient::pending(&a.to_string())).collect(),
            tenant: rt.keys.get(&key_id).map(|k| k.tenant.clone()).unwrap_or_default(),
            key: key_id.clone(),
            created: cascade_core::time::now_unix(),
            next_attempt: 0,
            attempts: 0,
            tags: Default::default(),
        };
        let job = tokio::task::spawn_blocking(move || crate::submit::accept(&relay, &key_id, env, added, message));
        match job.await {
            Ok(Ok((env, stored))) => {
                crate::submit::queued(&self.relay, env, stored, self.peer, "smtp");
                Reply::new(250, "2.0.0", format!("OK queued as {queue_id}"))
            }
            Ok(Err(reply)) => reply,
            Err(e) => {
                tracing::error!(error = %e, "accept task failed");
                common::local_error()
            }
        }
    }

    /// DATA refused before `354`. A client must wait for `354` (RFC 2920 3.1), so input already
    /// pipelined behind DATA is a message body that would otherwise run as commands: it is
    /// dropped and the session closed.
    fn data_not_started(&mut self, refusal: Reply) -> Reply {
        if !self.conn.has_buffered_input() {
            return refusal;
        }
        self.reject("pipelining");
        self.conn.queue(&refusal);
        self.conn.discard_input();
        Reply::new(421, "4.5.0", "Input pipelined after a refused DATA; closing").closing()
    }

    /// The bare CR/LF policy (Postfix's `smtpd_forbid_bare_newline = normal` is the model): the
    /// message is refused at the real end of data (`<CRLF>.<CRLF>`, the only end the reader knows),
    /// and the session is then closed. A peer that sends bare line endings may disagree with us
    /// about where its message ended, so nothing it sends afterwards is read as a command.
    fn data_refused(&mut self, e: DataError, rt: &crate::config::Runtime) -> Reply {
        let limits = &rt.config.limits;
        let refusal = match e {
            DataError::BareLf | DataError::BareCr => {
                self.reject("bare_line_ending");
                tracing::warn!(client = %self.peer, "message with bare LF/CR refused (possible SMTP smuggling); closing the session");
                Reply::new(550, "5.6.0", "Message contains a bare LF or CR; lines must end with CRLF (RFC 5321 2.3.8)")
            }
            DataError::Nul => {
                self.reject("nul");
                tracing::warn!(client = %self.peer, "message with NUL refused; closing the session");
                Reply::new(550, "5.6.0", "Message contains a NUL byte (RFC 5322 2.3)")
            }
            DataError::TooLarge => {
                self.reject("size");
                return Reply::new(552, "5.3.4", format!("Message size exceeds the limit of {} bytes", limits.max_message_size.0));
            }
            DataError::LineTooLong => {
                self.reject("line_length");
                return Reply::new(550, "5.6.0", format!("Message has a line longer than {} bytes (RFC 5322 2.1.1)", limits.max_line_length));
            }
        };
        self.conn.queue(&refusal);
        self.conn.discard_input();
        Reply::new(421, "4.5.0", "Bare line ending or NUL in the message; closing").closing()
    }
}
