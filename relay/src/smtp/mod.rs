//! The inbound SMTP session as an explicit state machine. [`Session::run`] is the driver: it
//! greets, reads one command at a time (bounded in length, count and time), hands it to the stage
//! that owns it and writes the stage's [`Reply`]. One file per stage: [`ehlo`] (EHLO, HELO,
//! STARTTLS), [`auth`], [`mail`], [`rcpt`], [`data`]. The grammar ([`command`], [`dotstuff`],
//! [`message`]) is pure.

pub mod auth;
pub mod command;
pub mod conn;
pub mod data;
pub mod dotstuff;
pub mod ehlo;
#[cfg(any(test, fuzzing))]
pub mod harness;
pub mod mail;
pub mod message;
pub mod rcpt;
pub mod reply;

use crate::relay::Relay;
use command::{Address, Command};
use conn::{Conn, ConnError, Stream};
use reply::{common, Reply};
use std::net::IpAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};

/// Where the session stands. A transaction exists only after MAIL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage {
    /// Greeted; waiting for EHLO/HELO.
    Connected,
    /// EHLO done, no transaction.
    Ready,
    /// MAIL accepted; collecting recipients.
    Mail { from: Address },
    /// At least one recipient accepted.
    Rcpt { from: Address, to: Vec<Address> },
}

pub struct Session<S> {
    pub(crate) relay: Arc<Relay>,
    pub(crate) conn: Conn<S>,
    pub(crate) peer: IpAddr,
    pub(crate) stage: Stage,
    pub(crate) helo: String,
    pub(crate) tls: bool,
    /// The API key id once authenticated.
    pub(crate) key_id: Option<String>,
    commands: usize,
    /// This client address's share of `maxSessionsPerClient`, freed the moment the session
    /// ends (before the farewell is flushed), so a client that has seen `221` can reconnect.
    client_slot: Option<crate::policy::limits::ClientSlot>,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    /// A session on an already-established stream; `tls` for implicit-TLS listeners.
    pub fn new(relay: Arc<Relay>, stream: Stream<S>, peer: IpAddr) -> Self {
        let tls = matches!(stream, Stream::Tls(_));
        Self { relay, conn: Conn::new(stream), peer, stage: Stage::Connected, helo: String::new(), tls, key_id: None, commands: 0, client_slot: None }
    }

    pub fn with_client_slot(mut self, slot: crate::policy::limits::ClientSlot) -> Self {
        self.client_slot = Some(slot);
        self
    }

    pub(crate) fn reject(&self, reason: &str) {
        crate::policy::sender::rejected(&self.relay, self.peer, self.key_id.as_deref(), reason);
    }

    pub async fn run(mut self) {
        self.relay.metrics.sessions.inc();
        let hostname = self.relay.runtime().config.hostname.clone();
        let greeting = if !self.relay.runtime().client_allowed(self.peer) {
            self.reject("client_network");
            Reply::new(554, "5.7.1", "Your address is not allowed to use this relay").closing()
        } else if self.relay.auth_failures.is_blocked(self.peer, cascade_core::time::now_unix_ms()) {
            self.reject("auth_blocked");
            Reply::new(421, "4.7.0", "Too many failed authentications from your address; try again later").closing()
        } else if self.relay.is_shutting_down() {
            common::shutting_down()
        } else {
            Reply::new(220, "", format!("{hostname} ESMTP Cascade"))
        };
        self.conn.queue(&greeting);
        self.conn.set_deadline(tokio::time::Instant::now() + self.relay.runtime().config.limits.session_timeout.0);
        if !greeting.close {
            self.command_loop().await;
        }
        // The session is over for the client once its last reply is written: free its slot first.
        drop(self.client_slot.take());
        self.conn.shutdown().await;
        self.relay.metrics.sessions.dec();
    }

    async fn command_loop(&mut self) {
        let mut shutdown = self.relay.shutdown_signal();
        loop {
            let rt = self.relay.runtime();
            let limits = &rt.config.limits;
            let buffered = self.conn.has_buffered_input();
            let read = self.conn.read_line(512.max(limits.max_line_length), limits.command_timeout.0);
            let line = tokio::select! {
                line = read => line,
                _ = crate::relay::Relay::stopped(&mut shutdown), if !buffered => {
                    self.conn.queue(&common::shutting_down());
                    return;
                }
            };
            let reply = match line {
                Ok(line) => {
                    self.commands += 1;
                    if self.commands > limits.max_commands {
                        self.reject("too_many_commands");
                        common::too_many_commands()
                    } else {
                        match command::parse(&line) {
                            Ok(cmd) => self.dispatch(cmd).await,
                            Err(reply) => {
                                self.reject("syntax");
                                reply
                            }
                        }
                    }
                }
                Err(ConnError::TooLong) => common::line_too_long(),
                Err(ConnError::BareLf) => {
                    self.reject("bare_lf");
                    Reply::new(500, "5.5.2", "Command lines must end with CRLF")
                }
                Err(ConnError::Timeout) => common::timeout(),
                Err(ConnError::SessionDeadline) => {
                    self.reject("session_deadline");
                    common::session_deadline()
                }
                Err(ConnError::TooSlow) => common::too_slow(),
                Err(ConnError::Eof | ConnError::Io(_)) => return,
            };
            self.conn.queue(&reply);
            if reply.close {
                return;
            }
        }
    }

    async fn dispatch(&mut self, cmd: Command) -> Reply {
        match cmd {
            Command::Ehlo(name) => self.ehlo(name, true),
            Command::Helo(name) => self.ehlo(name, false),
            Command::StartTls => self.starttls().await,
            Command::Auth { mechanism, initial } => self.auth(&mechanism, initial).await,
            Command::Mail { from, size } => self.mail(from, size),
            Command::Rcpt { to } => self.rcpt(to),
            Command::Data => self.data().await,
            Command::Rset => {
                if self.stage != Stage::Connected {
                    self.stage = Stage::Ready;
                }
                common::ok()
            }
            Command::Noop => common::ok(),
            Command::Quit => Reply::new(221, "2.0.0", "Bye").closing(),
            Command::Vrfy => Reply::new(252, "2.5.0", "Cannot VRFY user, but will accept message and attempt delivery"),
            Command::Help => Reply::new(214, "2.0.0", "See RFC 5321; Cascade supports EHLO STARTTLS AUTH MAIL RCPT DATA RSET NOOP QUIT"),
        }
    }
}

#[cfg(test)]
mod tests;
