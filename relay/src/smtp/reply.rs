//! SMTP replies as values: a code, an enhanced status code (RFC 3463), text, and whether the
//! server closes the connection after sending it. Every refusal in the relay is one of these.

use std::borrow::Cow;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub enhanced: &'static str,
    pub lines: Vec<Cow<'static, str>>,
    pub close: bool,
}

impl Reply {
    pub fn new(code: u16, enhanced: &'static str, text: impl Into<Cow<'static, str>>) -> Self {
        Self { code, enhanced, lines: vec![text.into()], close: false }
    }

    /// Nothing to send: the stage already wrote its own reply (STARTTLS answers `220` before the
    /// handshake). `close` ends the session.
    pub fn none(close: bool) -> Self {
        Self { code: 0, enhanced: "", lines: vec![], close }
    }

    /// A reply after which the server closes the connection.
    pub fn closing(mut self) -> Self {
        self.close = true;
        self
    }

    pub fn is_positive(&self) -> bool {
        self.code < 400
    }

    /// The wire form: every line but the last as `code-`, the last as `code `, each ending in CRLF.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let last = self.lines.len().saturating_sub(1);
        for (i, line) in self.lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            out.extend_from_slice(self.code.to_string().as_bytes());
            out.push(sep as u8);
            if !self.enhanced.is_empty() && (i == 0 || self.code != 250) {
                out.extend_from_slice(self.enhanced.as_bytes());
                out.push(b' ');
            }
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }

    pub fn to_wire(&self) -> String {
        let mut out = Vec::new();
        self.encode(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// The replies used in more than one stage.
pub mod common {
    use super::Reply;

    pub fn ok() -> Reply {
        Reply::new(250, "2.0.0", "OK")
    }
    pub fn bad_sequence(what: &'static str) -> Reply {
        Reply::new(503, "5.5.1", what)
    }
    pub fn syntax(what: impl Into<std::borrow::Cow<'static, str>>) -> Reply {
        Reply::new(501, "5.5.4", what)
    }
    pub fn auth_required() -> Reply {
        Reply::new(530, "5.7.0", "Authentication required")
    }
    pub fn tls_required() -> Reply {
        Reply::new(530, "5.7.0", "Must issue a STARTTLS command first")
    }
    pub fn shutting_down() -> Reply {
        Reply::new(421, "4.3.2", "Service shutting down, try again later").closing()
    }
    pub fn timeout() -> Reply {
        Reply::new(421, "4.4.2", "Timeout waiting for client, closing connection").closing()
    }
    pub fn session_deadline() -> Reply {
        Reply::new(421, "4.4.2", "Session time limit reached, closing connection").closing()
    }
    pub fn too_slow() -> Reply {
        Reply::new(421, "4.4.2", "Message data arrived too slowly, closing connection").closing()
    }
    pub fn too_many_commands() -> Reply {
        Reply::new(421, "4.7.0", "Too many commands in one session, closing connection").closing()
    }
    pub fn line_too_long() -> Reply {
        Reply::new(500, "5.5.2", "Line too long")
    }
    pub fn suspended() -> Reply {
        Reply::new(535, "5.7.8", "API key suspended after unusual sending; an administrator must review it")
    }
    pub fn local_error() -> Reply {
        Reply::new(451, "4.3.0", "Local error in processing, message not accepted; try again later")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_single_and_multi_line_replies() {
        assert_eq!(Reply::new(530, "5.7.0", "Authentication required").to_wire(), "530 5.7.0 Authentication required\r\n");
        let ehlo = Reply { code: 250, enhanced: "", lines: vec!["relay".into(), "PIPELINING".into()], close: false };
        assert_eq!(ehlo.to_wire(), "250-relay\r\n250 PIPELINING\r\n");
    }
}
