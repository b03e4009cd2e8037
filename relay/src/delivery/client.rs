//! The outbound SMTP client: one transaction on a (possibly reused) connection, with a timeout on
//! every step, STARTTLS whenever the server offers it (or required), AUTH PLAIN for smarthosts,
//! PIPELINING when offered, and one outcome per recipient.

use crate::smtp::conn::ConnError;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The outcome for one recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Delivered(String),
    Deferred(String),
    Failed(String),
}

/// A server reply: code and text lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Response {
    pub fn text(&self) -> String {
        format!("{} {}", self.code, self.lines.join(" / "))
    }
    fn outcome(&self) -> Outcome {
        match self.code {
            200..=399 => Outcome::Delivered(self.text()),
            400..=499 => Outcome::Deferred(self.text()),
            _ => Outcome::Failed(self.text()),
        }
    }
}

/// Parses one complete reply from the front of `buf`: `Some((response, bytes used))`, `None` if
/// more bytes are needed; `Err` for a line that is not a reply.
pub fn parse_response(buf: &[u8]) -> Result<Option<(Response, usize)>, String> {
    let mut lines = Vec::new();
    let mut at = 0;
    let mut code = None;
    while let Some(pos) = buf[at..].iter().position(|&b| b == b'\n') {
        let raw = &buf[at..at + pos];
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        at += pos + 1;
        if line.len() < 3 || !line[..3].iter().all(u8::is_ascii_digit) || (line.len() > 3 && !matches!(line[3], b' ' | b'-')) {
            return Err(format!("malformed reply line {:?}", String::from_utf8_lossy(line)));
        }
        let c: u16 = std::str::from_utf8(&line[..3]).map_err(|e| e.to_string())?.parse().map_err(|_| "bad code".to_string())?;
        if code.is_some_and(|p| p != c) {
            return Err("reply code changed within a multi-line reply".into());
        }
        code = Some(c);
        lines.push(String::from_utf8_lossy(line.get(4..).unwrap_or_default()).into_owned());
        if line.len() == 3 || line[3] == b' ' {
            return Ok(Some((Response { code: c, lines }, at)));
        }
        if lines.len() > 100 {
            return Err("reply has too many lines".into());
        }
    }
    Ok(None)
}

type Io = crate::io::MaybeTls<TcpStream, tokio_rustls::client::TlsStream<TcpStream>>;

/// How to treat TLS on this connection.
#[derive(Clone)]
pub struct TlsPolicy {
    pub required: bool,
    pub config: Arc<rustls::ClientConfig>,
    /// Name for SNI and (when verifying) the certificate check.
    pub server_name: String,
}

#[derive(Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub command: Duration,
    pub data_end: Duration,
}

/// An open SMTP client session, ready for MAIL.
pub struct Client {
    io: Io,
    buf: Vec<u8>,
    pub tls: bool,
    pipelining: bool,
    t: Timeouts,
}

/// A failure that ends the connection; every recipient of the transaction shares it.
#[derive(Debug, Clone)]
pub struct SessionFailure {
    pub permanent: bool,
    pub reason: String,
}

impl SessionFailure {
    fn temp(reason: impl Into<String>) -> Self {
        Self { permanent: false, reason: reason.into() }
    }
    fn from_response(stage: &str, r: &Response) -> Self {
        Self { permanent: r.code >= 500, reason: format!("{stage}: {}", r.text()) }
    }
}

impl From<ConnError> for SessionFailure {
    fn from(e: ConnError) -> Self {
        Self::temp(e.to_string())
    }
}

impl Client {
    async fn read_response(&mut self, timeout: Duration) -> Result<Response, SessionFailure> {
        loop {
            match parse_response(&self.buf).map_err(SessionFailure::temp)? {
                Some((r, used)) => {
                    self.buf.drain(..used);
                    return Ok(r);
                }
                None if self.buf.len() > 64 * 1024 => return Err(SessionFailure::temp("reply too long")),
                None => {}
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(timeout, self.io.read(&mut chunk))
                .await
                .map_err(|_| SessionFailure::temp("timeout waiting for reply"))?
                .map_err(|e| SessionFailure::temp(format!("read: {e}")))?;
            if n == 0 {
                return Err(SessionFailure::temp("connection closed by server"));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<(), SessionFailure> {
        let w = async {
            self.io.write_all(bytes).await?;
            self.io.flush().await
        };
        tokio::time::timeout(self.t.command.max(Duration::from_secs(1)), w).await.map_err(|_| SessionFailure::temp("timeout writing"))?.map_err(|e| SessionFailure::temp(format!("write: {e}")))
    }

    async fn command(&mut self, line: &str) -> Result<Response, SessionFailure> {
        self.send(format!("{line}\r\n").as_bytes()).await?;
        self.read_response(self.t.command).await
    }

    async fn ehlo(&mut self, helo: &str) -> Result<Vec<String>, SessionFailure> {
        let r = self.command(&format!("EHLO {helo}")).await?;
        if r.code == 250 {
            return Ok(r.lines.iter().skip(1).map(|l| l.to_ascii_uppercase()).collect());
        }
        let r = self.command(&format!("HELO {helo}")).await?;
        if r.code != 250 {
            return Err(SessionFailure::from_response("HELO", &r));
        }
        Ok(Vec::new())
    }

    /// Connects to the first reachable address and brings the session to "ready for MAIL".
    pub async fn connect(addrs: &[SocketAddr], helo: &str, tls: &TlsPolicy, auth: Option<(&str, &str)>, t: Timeouts) -> Result<Self, SessionFailure> {
        let mut last = SessionFailure::temp("no addresses to connect to");
        for addr in addrs {
            match tokio::time::timeout(t.connect, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => {
                    let _ = stream.set_nodelay(true);
                    let mut c = Self { io: Io::Plain(stream), buf: Vec::new(), tls: false, pipelining: false, t };
                    match c.handshake(helo, tls, auth).await {
                        Ok(()) => return Ok(c),
                        Err(e) => last = SessionFailure { reason: format!("{addr}: {}", e.reason), ..e },
                    }
                }
                Ok(Err(e)) => last = SessionFailure::temp(format!("{addr}: connect: {e}")),
                Err(_) => last = SessionFailure::temp(format!("{addr}: connect timed out")),
            }
        }
        Err(last)
    }

    async fn handshake(&mut self, helo: &str, tls: &TlsPolicy, auth: Option<(&str, &str)>) -> Result<(), SessionFailure> {
        let greeting = self.read_response(self.t.command).await?;
        if greeting.code != 220 {
            return Err(SessionFailure::from_response("greeting", &greeting));
        }
        let mut caps = self.ehlo(helo).await?;
        if caps.iter().any(|c| c == "STARTTLS") {
            let r = self.command("STARTTLS").await?;
            if r.code == 220 {
                let Io::Plain(plain) = std::mem::replace(&mut self.io, Io::Closed) else { unreachable!("TLS before STARTTLS") };
                let name = rustls::pki_types::ServerName::try_from(tls.server_name.clone()).map_err(|_| SessionFailure::temp(format!("invalid server name {:?}", tls.server_name)))?;
                let connector = tokio_rustls::TlsConnector::from(tls.config.clone());
                let stream = tokio::time::timeout(self.t.command, connector.connect(name, plain))
                    .await
                    .map_err(|_| SessionFailure::temp("TLS handshake timed out"))?
                    .map_err(|e| SessionFailure::temp(format!("TLS handshake: {e}")))?;
                self.io = Io::Tls(Box::new(stream));
                self.buf.clear();
                self.tls = true;
                caps = self.ehlo(helo).await?;
            } else if tls.required {
                return Err(SessionFailure::from_response("STARTTLS", &r));
            }
        }
        if tls.required && !self.tls {
            return Err(SessionFailure::temp("TLS required but not offered by the server"));
        }
        self.pipelining = caps.iter().any(|c| c == "PIPELINING");
        if let Some((user, pass)) = auth {
            // Only over TLS whose certificate was verified (the configuration insists on it too).
            if !self.tls || !tls.required {
                return Err(SessionFailure::temp("refusing to send credentials without verified TLS"));
            }
            use base64::Engine;
            let token = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{pass}"));
            let r = self.command(&format!("AUTH PLAIN {token}")).await?;
            if r.code != 235 {
                return Err(SessionFailure::from_response("AUTH", &r));
            }
        }
        Ok(())
    }

    /// One transaction. `Err` means the connection is unusable and no recipient got a final
    /// answer; `Ok` has one outcome per recipient, in order.
    pub async fn transaction(&mut self, sender: &str, rcpts: &[String], message: &[u8]) -> Result<Vec<Outcome>, SessionFailure> {
        let mail = format!("MAIL FROM:<{sender}> SIZE={}\r\n", message.len());
        let rcpt_lines: Vec<String> = rcpts.iter().map(|r| format!("RCPT TO:<{r}>\r\n")).collect();
        let (mail_r, rcpt_rs) = if self.pipelining {
            let mut batch = mail.clone().into_bytes();
            for l in &rcpt_lines {
                batch.extend_from_slice(l.as_bytes());
            }
            self.send(&batch).await?;
            let mail_r = self.read_response(self.t.command).await?;
            let mut rs = Vec::with_capacity(rcpts.len());
            for _ in rcpts {
                rs.push(self.read_response(self.t.command).await?);
            }
            (mail_r, rs)
        } else {
            let mail_r = self.command(mail.trim_end()).await?;
            let mut rs = Vec::new();
            if mail_r.code == 250 {
                for l in &rcpt_lines {
                    rs.push(self.command(l.trim_end()).await?);
                }
            }
            (mail_r, rs)
        };
        if mail_r.code != 250 {
            let _ = self.command("RSET").await;
            let o = mail_r.outcome();
            return Ok(vec![o; rcpts.len()]);
        }
        let mut outcomes: Vec<Outcome> = rcpt_rs.iter().map(Response::outcome).collect();
        if !outcomes.iter().any(|o| matches!(o, Outcome::Delivered(_))) {
            let _ = self.command("RSET").await;
            return Ok(outcomes);
        }
        let r = self.command("DATA").await?;
        if r.code != 354 {
            let _ = self.command("RSET").await;
            for o in outcomes.iter_mut().filter(|o| matches!(o, Outcome::Delivered(_))) {
                *o = r.outcome();
            }
            return Ok(outcomes);
        }
        self.send(&dot_stuff(message)).await?;
        let end = self.read_response(self.t.data_end).await?;
        for o in outcomes.iter_mut().filter(|o| matches!(o, Outcome::Delivered(_))) {
            *o = end.outcome();
        }
        Ok(outcomes)
    }

    pub async fn quit(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            let _ = self.send(b"QUIT\r\n").await;
            let _ = self.io.shutdown().await;
        })
        .await;
    }
}

/// Adds the transparency dot (RFC 5321 4.5.2) and the final `.`; the message is CRLF-clean.
pub fn dot_stuff(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 64 + 5);
    let mut at_line_start = true;
    for &b in message {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        at_line_start = b == b'\n';
    }
    if !message.is_empty() && !message.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_single_and_multi_line_replies() {
        let (r, used) = parse_response(b"250-mx.test\r\n250-PIPELINING\r\n250 STARTTLS\r\nextra").unwrap().unwrap();
        assert_eq!(r.code, 250);
        assert_eq!(r.lines, vec!["mx.test", "PIPELINING", "STARTTLS"]);
        assert_eq!(used, 43);
        assert_eq!(parse_response(b"250-partial\r\n").unwrap(), None);
        assert_eq!(parse_response(b"354\r\n").unwrap().unwrap().0.code, 354);
        assert!(parse_response(b"hello\r\n").is_err());
        assert!(parse_response(b"250-a\r\n251 b\r\n").is_err());
    }

    #[test]
    fn outcome_follows_the_code_class() {
        let r = |code| Response { code, lines: vec!["x".into()] }.outcome();
        assert!(matches!(r(250), Outcome::Delivered(_)));
        assert!(matches!(r(451), Outcome::Deferred(_)));
        assert!(matches!(r(550), Outcome::Failed(_)));
    }

    #[test]
    fn dot_stuffs_and_terminates() {
        assert_eq!(dot_stuff(b"a\r\n.b\r\n..\r\n"), b"a\r\n..b\r\n...\r\n.\r\n");
        assert_eq!(dot_stuff(b".start"), b"..start\r\n.\r\n");
        assert_eq!(dot_stuff(b""), b".\r\n");
    }
}
