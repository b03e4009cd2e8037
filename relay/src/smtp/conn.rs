//! The byte side of a session: a plain or TLS stream with one read buffer (so pipelined commands
//! are kept, and dropped at STARTTLS), reads bounded in length and time, and replies written in
//! batches (flushed only when no pipelined input is waiting, RFC 2920).
//!
//! Time is bounded three ways: each read has its timeout, the whole session has a deadline that
//! every read respects (so trickling one byte at a time cannot hold a session), and message data
//! must arrive at a minimum rate over each window ([`DataPace`]).

use super::dotstuff::{DataError, DataReader, Progress};
use super::reply::Reply;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

/// The server side of a session: plaintext until STARTTLS (or TLS from the start).
pub type Stream<S> = crate::io::MaybeTls<S, tokio_rustls::server::TlsStream<S>>;

#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("client closed the connection")]
    Eof,
    #[error("client timed out")]
    Timeout,
    #[error("session deadline reached")]
    SessionDeadline,
    #[error("message data arrived below the minimum rate")]
    TooSlow,
    #[error("line too long")]
    TooLong,
    #[error("command line not ended by CRLF")]
    BareLf,
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}

pub struct Conn<S> {
    stream: Stream<S>,
    buf: Vec<u8>,
    out: Vec<u8>,
    deadline: Option<Instant>,
}

/// The minimum pace of message data: at least `min_bytes_per_sec` in every `window`.
#[derive(Clone, Copy, Debug)]
pub struct DataPace {
    pub min_bytes_per_sec: u64,
    pub window: Duration,
}

/// Why a bounded read stopped waiting.
enum Waited {
    Timeout,
    Deadline,
    Window,
}

const READ_CHUNK: usize = 16 * 1024;

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    pub fn new(stream: Stream<S>) -> Self {
        Self { stream, buf: Vec::with_capacity(READ_CHUNK), out: Vec::with_capacity(512), deadline: None }
    }

    /// Every later read ends with [`ConnError::SessionDeadline`] once `deadline` has passed.
    pub fn set_deadline(&mut self, deadline: Instant) {
        self.deadline = Some(deadline);
    }

    /// The read timeout cut short by the session deadline and, during DATA, the pace window's end.
    fn read_limit(&self, timeout: Duration, window_end: Option<Instant>) -> (Instant, Waited) {
        let mut limit = (Instant::now() + timeout, Waited::Timeout);
        if let Some(d) = self.deadline.filter(|d| *d <= limit.0) {
            limit = (d, Waited::Deadline);
        }
        if let Some(w) = window_end.filter(|w| *w < limit.0) {
            limit = (w, Waited::Window);
        }
        limit
    }

    pub fn has_buffered_input(&self) -> bool {
        !self.buf.is_empty()
    }

    pub fn discard_input(&mut self) {
        self.buf.clear();
    }

    async fn fill(&mut self, timeout: Duration) -> Result<(), ConnError> {
        match self.fill_until(timeout, None).await? {
            None => Ok(()),
            Some(_) => Err(ConnError::Timeout),
        }
    }

    /// One read; `Ok(Some(n))` when the pace window ended first with `n` bytes read (`0`).
    async fn fill_until(&mut self, timeout: Duration, window_end: Option<Instant>) -> Result<Option<usize>, ConnError> {
        let (limit, why) = self.read_limit(timeout, window_end);
        let start = self.buf.len();
        self.buf.resize(start + READ_CHUNK, 0);
        // `read` is cancel-safe: when the limit wins, no byte has been taken from the stream.
        let read = tokio::time::timeout_at(limit, self.stream.read(&mut self.buf[start..])).await;
        let n = match read {
            Err(_) => {
                self.buf.truncate(start);
                return match why {
                    Waited::Timeout => Err(ConnError::Timeout),
                    Waited::Deadline => Err(ConnError::SessionDeadline),
                    Waited::Window => Ok(Some(0)),
                };
            }
            Ok(r) => r.inspect_err(|_| self.buf.truncate(start))?,
        };
        self.buf.truncate(start + n);
        if n == 0 {
            return Err(ConnError::Eof);
        }
        Ok(None)
    }

    /// One command line without its CRLF. Longer lines are discarded up to their end.
    pub async fn read_line(&mut self, max: usize, timeout: Duration) -> Result<Vec<u8>, ConnError> {
        let mut scanned = 0;
        let mut discarding = false;
        loop {
            if let Some(pos) = self.buf[scanned..].iter().position(|&b| b == b'\n') {
                let end = scanned + pos;
                let line: Vec<u8> = self.buf.drain(..=end).collect();
                if discarding || line.len() > max {
                    return Err(ConnError::TooLong);
                }
                if end == 0 || line[end - 1] != b'\r' {
                    return Err(ConnError::BareLf);
                }
                return Ok(line[..end - 1].to_vec());
            }
            if self.buf.len() > max {
                self.buf.clear();
                discarding = true;
            }
            scanned = self.buf.len();
            self.flush().await?;
            self.fill(timeout).await?;
        }
    }

    /// Message data up to the end-of-data line, already unstuffed and checked. Each window of
    /// `pace.window` must bring at least `pace.min_bytes_per_sec * window` bytes.
    pub async fn read_data(&mut self, mut reader: DataReader, timeout: Duration, pace: DataPace) -> Result<Result<Vec<u8>, DataError>, ConnError> {
        let paced = pace.min_bytes_per_sec > 0 && !pace.window.is_zero();
        let needed = (pace.min_bytes_per_sec as f64 * pace.window.as_secs_f64()) as u64;
        let mut window_end = Instant::now() + pace.window;
        let mut in_window: u64 = 0;
        loop {
            if !self.buf.is_empty() {
                in_window += self.buf.len() as u64;
                match reader.feed(&self.buf) {
                    Progress::Done { consumed } => {
                        self.buf.drain(..consumed);
                        return Ok(reader.finish());
                    }
                    Progress::NeedMore => self.buf.clear(),
                }
            }
            if paced && Instant::now() >= window_end {
                if in_window < needed {
                    return Err(ConnError::TooSlow);
                }
                window_end = Instant::now() + pace.window;
                in_window = 0;
            }
            self.fill_until(timeout, paced.then_some(window_end)).await?;
        }
    }

    pub fn queue(&mut self, reply: &Reply) {
        reply.encode(&mut self.out);
    }

    pub async fn flush(&mut self) -> Result<(), ConnError> {
        if !self.out.is_empty() {
            self.stream.write_all(&self.out).await?;
            self.stream.flush().await?;
            self.out.clear();
        }
        Ok(())
    }

    /// Sends what is queued, then upgrades to TLS. Plaintext pipelined after STARTTLS is
    /// discarded (it could have been injected by an attacker, CVE-2011-0411); returns whether any was.
    pub async fn start_tls(&mut self, config: Arc<rustls::ServerConfig>, timeout: Duration) -> Result<bool, ConnError> {
        self.flush().await?;
        let injected = !self.buf.is_empty();
        self.buf.clear();
        let Stream::Plain(plain) = std::mem::replace(&mut self.stream, Stream::Closed) else {
            return Err(ConnError::Io(io::Error::other("TLS already active")));
        };
        let accept = tokio_rustls::TlsAcceptor::from(config).accept(plain);
        let tls = tokio::time::timeout(timeout, accept).await.map_err(|_| ConnError::Timeout)??;
        self.stream = Stream::Tls(Box::new(tls));
        Ok(injected)
    }

    pub async fn shutdown(&mut self) {
        let _ = self.flush().await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.stream.shutdown()).await;
    }
}
