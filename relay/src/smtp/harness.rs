//! A relay on a fresh dev bundle and a way to replay raw client bytes through a whole session
//! over an in-memory stream. Shared by the session unit tests, the bounded mutation run in
//! `cargo test` and the `smtp_session` libFuzzer target (built with `--cfg fuzzing`).

use super::conn::Stream;
use super::Session;
use crate::delivery::queue::{QueueHandle, QueueItem};
use crate::dev::{self, Credentials, DevOptions};
use crate::relay::Relay;
use crate::spool::Spool;
use crate::tls::CertStore;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc::UnboundedReceiver;

pub struct Fixture {
    pub relay: Arc<Relay>,
    pub creds: Credentials,
    pub queue: UnboundedReceiver<QueueItem>,
    pub dir: PathBuf,
}

/// A relay in capture mode on a fresh dev bundle in a new temporary directory, with `tweak`
/// applied to the config file.
pub fn fixture_with(tweak: impl FnOnce(&mut String)) -> Fixture {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let dir = std::env::temp_dir().join(format!("cascade-test-session-{}", crate::spool::new_queue_id()));
    std::fs::create_dir_all(&dir).expect("create a temporary directory");
    let opts = DevOptions { data_dir: dir.clone(), submission: "127.0.0.1:0".into(), submissions: "127.0.0.1:0".into(), http: "".into(), admin: "".into(), smarthost: None, webhook: None };
    let (path, creds) = dev::prepare(&opts).expect("prepare a dev bundle");
    let mut text = std::fs::read_to_string(&path).expect("read the dev config");
    tweak(&mut text);
    std::fs::write(&path, text).expect("write the dev config");
    let rt = crate::config::load(&path).expect("load the dev config");
    let certs = CertStore::load(rt.resolve("tls.crt"), rt.resolve("tls.key")).expect("load the dev certificate");
    let spool = Spool::open(&rt.resolve("spool"), rt.spool_keys.clone()).expect("open the spool");
    let store = crate::store::Store::open(&rt.resolve("spool")).expect("open the state database");
    let (events, _) = crate::events::Events::open(&rt.resolve("spool")).expect("open the events queue");
    let (handle, queue) = QueueHandle::channel();
    Fixture { relay: Relay::new(rt, crate::relay::Volume { spool, store, events, suppressions: Default::default() }, certs, handle, Default::default()), creds, queue, dir }
}

pub fn fixture() -> Fixture {
    fixture_with(|_| {})
}

/// A fixture for long replay runs: failed AUTHs never block the (single) client address, so
/// one bad-credentials input cannot turn every later session into a `421`.
pub fn replay_fixture() -> Fixture {
    fixture_with(|t| *t = t.replace("maxAuthFailures: 5", "maxAuthFailures: 4000000000"))
}

/// `AUTH PLAIN` initial response for these credentials.
pub fn plain(user: &str, pass: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{pass}"))
}

/// Where replayed input says `@AUTH@`, the fixture's own `AUTH PLAIN` response goes, so seeds
/// (and the fuzzer) reach the authenticated stages.
pub const AUTH_TOKEN: &[u8] = b"@AUTH@";

/// Feeds `input` to one session, on implicit TLS when `tls` (so AUTH is allowed), closes the
/// client's side and returns everything the server wrote. Accepted messages are removed from the
/// queue and spool again, so repeated runs stay bounded.
pub async fn replay(f: &mut Fixture, input: &[u8], tls: bool) -> Vec<u8> {
    let input = substitute(input, AUTH_TOKEN, plain(&f.creds.username, &f.creds.password).as_bytes());
    let (client, server) = tokio::io::duplex(1 << 16);
    let relay = f.relay.clone();
    let server = tokio::spawn(async move {
        let stream = if tls {
            match tokio_rustls::TlsAcceptor::from(relay.tls.clone()).accept(server).await {
                Ok(tls) => Stream::Tls(Box::new(tls)),
                Err(_) => return,
            }
        } else {
            Stream::Plain(server)
        };
        Session::new(relay, stream, [127, 0, 0, 1].into()).run().await;
    });
    let out = if tls {
        let config = crate::tls::client_config(false, None).expect("client TLS config");
        let connect = tokio_rustls::TlsConnector::from(config).connect("localhost".try_into().expect("server name"), client);
        match connect.await {
            Ok(stream) => exchange(stream, &input).await,
            Err(_) => Vec::new(),
        }
    } else {
        exchange(client, &input).await
    };
    let _ = server.await;
    while let Ok(item) = f.queue.try_recv() {
        let _ = f.relay.spool.remove(&item.env.id);
    }
    out
}

/// Writes the input, half-closes and reads until the server closes (both bounded in time).
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(stream: S, input: &[u8]) -> Vec<u8> {
    let (mut rd, mut wr) = tokio::io::split(stream);
    let write = async {
        let _ = wr.write_all(input).await;
        let _ = wr.shutdown().await;
    };
    let mut out = Vec::new();
    let read = rd.read_to_end(&mut out);
    let _ = tokio::time::timeout(Duration::from_secs(30), async { tokio::join!(write, read) }).await;
    out
}

fn substitute(input: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = rest.windows(from.len()).position(|w| w == from) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(to);
        rest = &rest[at + from.len()..];
    }
    out.extend_from_slice(rest);
    out
}

/// Session transcripts that reach every stage: the seeds of the mutation run and the fuzzer.
pub const SEEDS: &[&[u8]] = &[
    b"EHLO a.test\r\nAUTH PLAIN @AUTH@\r\nMAIL FROM:<dev@example.test> SIZE=100\r\nRCPT TO:<r@dest.test>\r\nDATA\r\nFrom: dev@example.test\r\nSubject: x\r\n\r\nbody\r\n..dot\r\n.\r\nQUIT\r\n",
    b"EHLO a.test\r\nAUTH LOGIN\r\nY2tfZGV2\r\nc2VjcmV0\r\nRSET\r\nNOOP\r\nVRFY x\r\nHELP\r\nQUIT\r\n",
    b"HELO a.test\r\nSTARTTLS\r\nMAIL FROM:<a@b>\r\n",
    b"EHLO a.test\r\nAUTH PLAIN @AUTH@\r\nMAIL FROM:<dev@example.test>\r\nRCPT TO:<a@dest.test>\r\nRCPT TO:<b@dest.test> NOTIFY=NEVER\r\nDATA\r\nFrom: dev@example.test\r\n\r\nx\n.\nMAIL FROM:<dev@example.test>\r\n.\r\n",
    b"EHLO a.test\r\nAUTH PLAIN @AUTH@\r\nMAIL FROM:<dev@example.test> BODY=8BITMIME SMTPUTF8\r\nRCPT TO:<\xc3\xa9@dest.test>\r\nDATA\r\nFrom: dev@example.test\r\n\r\n\xff\xfe\0\r\n.\r\n",
];

/// Whether `out` is a sequence of well-formed SMTP reply lines (`NNN` then space or dash).
pub fn well_formed_replies(out: &[u8]) -> Result<(), String> {
    for line in out.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let ok = line.len() >= 5 && line[..3].iter().all(u8::is_ascii_digit) && matches!(line[3], b' ' | b'-') && line.ends_with(b"\r");
        if !ok {
            return Err(format!("malformed reply line {:?}", String::from_utf8_lossy(line)));
        }
    }
    Ok(())
}
