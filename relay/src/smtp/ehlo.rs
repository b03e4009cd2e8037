//! EHLO/HELO and STARTTLS. EHLO advertises STARTTLS until TLS is up, and AUTH only after it
//! (RFC 3207, RFC 4954 section 4): credentials never cross the wire in the clear.

use super::reply::{common, Reply};
use super::{Session, Stage};
use tokio::io::{AsyncRead, AsyncWrite};

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    pub(crate) fn ehlo(&mut self, name: String, extended: bool) -> Reply {
        let rt = self.relay.runtime();
        self.helo = name;
        self.stage = Stage::Ready;
        let hostname = rt.config.hostname.clone();
        if !extended {
            return Reply::new(250, "", hostname);
        }
        let mut lines = vec![hostname.into(), format!("SIZE {}", rt.config.limits.max_message_size.0).into(), "PIPELINING".into(), "8BITMIME".into(), "ENHANCEDSTATUSCODES".into()];
        if self.tls {
            lines.push("AUTH PLAIN LOGIN".into());
        } else {
            lines.push("STARTTLS".into());
        }
        Reply { code: 250, enhanced: "", lines, close: false }
    }

    pub(crate) async fn starttls(&mut self) -> Reply {
        if self.tls {
            return common::bad_sequence("TLS already active");
        }
        if self.stage == Stage::Connected {
            return common::bad_sequence("Send EHLO first");
        }
        let timeout = self.relay.runtime().config.limits.command_timeout.0;
        self.conn.queue(&Reply::new(220, "2.0.0", "Ready to start TLS"));
        match self.conn.start_tls(self.relay.tls.clone(), timeout).await {
            Ok(injected) => {
                if injected {
                    tracing::warn!(client = %self.peer, "discarded plaintext pipelined after STARTTLS");
                }
                // RFC 3207 section 4.2: forget everything learned before TLS.
                self.tls = true;
                self.stage = Stage::Connected;
                self.helo.clear();
                self.key_id = None;
                Reply::none(false)
            }
            Err(e) => {
                tracing::info!(client = %self.peer, error = %e, "TLS handshake failed");
                Reply::none(true)
            }
        }
    }
}
