//! The byte side of a session: a plain or TLS stream with one read buffer (so pipelined commands
//! are kept, and dropped at STARTTLS), reads bounded in length and time, and replies written in
//! batches (flushed only when no pipelined input is waiting, RFC 2920).

use super::dotstuff::{DataError, DataReader, Progress};
use super::reply::Reply;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The server side of a session: plaintext until STARTTLS (or TLS from the start).
pub type Stream<S> = crate::io::MaybeTls<S, tokio_rustls::server::TlsStream<S>>;

#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("client closed the connection")]
    Eof,
    #[error("client timed out")]
    Timeout,
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
}

const READ_CHUNK: usize = 16 * 1024;

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    pub fn new(stream: Stream<S>) -> Self {
        Self { stream, buf: Vec::with_capacity(READ_CHUNK), out: Vec::with_capacity(512) }
    }

    pub fn has_buffered_input(&self) -> bool {
        !self.buf.is_empty()
    }

    pub fn discard_input(&mut self) {
        self.buf.clear();
    }

    async fn fill(&mut self, timeout: Duration) -> Result<(), ConnError> {
        let start = self.buf.len();
        self.buf.resize(start + READ_CHUNK, 0);
        let read = tokio::time::timeout(timeout, self.stream.read(&mut self.buf[start..])).await;
        let n = match read {
            Err(_) => {
                self.buf.truncate(start);
                return Err(ConnError::Timeout);
            }
            Ok(r) => r.inspect_err(|_| self.buf.truncate(start))?,
        };
        self.buf.truncate(start + n);
        if n == 0 {
            return Err(ConnError::Eof);
        }
        Ok(())
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

    /// Message data up to the end-of-data line, already unstuffed and checked.
    pub async fn read_data(&mut self, mut reader: DataReader, timeout: Duration) -> Result<Result<Vec<u8>, DataError>, ConnError> {
        loop {
            if !self.buf.is_empty() {
                match reader.feed(&self.buf) {
                    Progress::Done { consumed } => {
                        self.buf.drain(..consumed);
                        return Ok(reader.finish());
                    }
                    Progress::NeedMore => self.buf.clear(),
                }
            }
            self.fill(timeout).await?;
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
