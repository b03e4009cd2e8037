//! The session over an in-memory stream, TLS included: every verb, the TLS and AUTH rules,
//! sender rules, pipelining, limits and the DATA refusals.

use super::conn::Stream;
use super::harness::{fixture, fixture_with, plain, Fixture};
use super::Session;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, DuplexStream};

/// A line-oriented SMTP client over any stream.
struct Client<S> {
    io: BufReader<S>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    async fn send(&mut self, line: &str) {
        self.io.get_mut().write_all(format!("{line}\r\n").as_bytes()).await.unwrap();
    }
    async fn raw(&mut self, bytes: &[u8]) {
        self.io.get_mut().write_all(bytes).await.unwrap();
    }
    /// One complete (possibly multi-line) reply, lines joined with '\n'.
    async fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(std::time::Duration::from_secs(10), self.io.read_line(&mut line)).await.expect("reply in time").unwrap();
            if n == 0 {
                return format!("{all}<EOF>");
            }
            all.push_str(line.trim_end());
            if line.as_bytes().get(3) != Some(&b'-') {
                return all;
            }
            all.push('\n');
        }
    }
    async fn cmd(&mut self, line: &str) -> String {
        self.send(line).await;
        self.reply().await
    }
}

fn start(f: &Fixture) -> Client<DuplexStream> {
    let (client, server) = tokio::io::duplex(1 << 16);
    let session = Session::new(f.relay.clone(), Stream::Plain(server), [127, 0, 0, 1].into());
    tokio::spawn(session.run());
    Client { io: BufReader::new(client) }
}

/// Connects, upgrades with STARTTLS and says EHLO again; returns the TLS client and EHLO reply.
async fn tls_client(f: &Fixture) -> (Client<tokio_rustls::client::TlsStream<DuplexStream>>, String) {
    let mut c = start(f);
    assert!(c.reply().await.starts_with("220 "));
    c.cmd("EHLO client.test").await;
    assert_eq!(c.cmd("STARTTLS").await, "220 2.0.0 Ready to start TLS");
    let config = crate::tls::client_config(false, None).unwrap();
    let tls = tokio_rustls::TlsConnector::from(config).connect("localhost".try_into().unwrap(), c.io.into_inner()).await.unwrap();
    let mut c = Client { io: BufReader::new(tls) };
    let ehlo = c.cmd("EHLO client.test").await;
    (c, ehlo)
}

async fn authed(f: &Fixture) -> Client<tokio_rustls::client::TlsStream<DuplexStream>> {
    let (mut c, _) = tls_client(f).await;
    let token = plain(&f.creds.username, &f.creds.password);
    assert_eq!(c.cmd(&format!("AUTH PLAIN {token}")).await, "235 2.7.0 Authentication successful");
    c
}

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

const GOOD: &str = "From: Dev <dev@example.test>\r\nTo: r@dest.test\r\nSubject: hi\r\n\r\nhello\r\n.\r\n";

#[tokio::test]
async fn plaintext_offers_starttls_and_refuses_auth_and_mail() {
    let f = fixture();
    let mut c = start(&f);
    assert_eq!(c.reply().await, "220 localhost ESMTP Cascade");
    let ehlo = c.cmd("EHLO client.test").await;
    assert!(ehlo.contains("250-STARTTLS") || ehlo.ends_with("250 STARTTLS"), "{ehlo}");
    for cap in ["SIZE 26214400", "PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES"] {
        assert!(ehlo.contains(cap), "{cap} missing in {ehlo}");
    }
    assert!(!ehlo.contains("AUTH"), "{ehlo}");
    assert_eq!(c.cmd(&format!("AUTH PLAIN {}", plain(&f.creds.username, &f.creds.password))).await, "530 5.7.0 Must issue a STARTTLS command first");
    assert_eq!(c.cmd("MAIL FROM:<dev@example.test>").await, "530 5.7.0 Must issue a STARTTLS command first");
    assert_eq!(c.cmd("RCPT TO:<x@dest.test>").await, "530 5.7.0 Authentication required");
    assert_eq!(c.cmd("NOOP").await, "250 2.0.0 OK");
    assert!(c.cmd("VRFY x").await.starts_with("252 "));
    assert!(c.cmd("HELP").await.starts_with("214 "));
    assert_eq!(c.cmd("QUIT").await, "221 2.0.0 Bye");
}

#[tokio::test]
async fn tls_session_advertises_auth_and_refuses_bad_credentials() {
    let f = fixture();
    let (mut c, ehlo) = tls_client(&f).await;
    assert!(ehlo.contains("AUTH PLAIN LOGIN") && !ehlo.contains("STARTTLS"), "{ehlo}");
    assert_eq!(c.cmd("MAIL FROM:<dev@example.test>").await, "530 5.7.0 Authentication required");
    assert_eq!(c.cmd(&format!("AUTH PLAIN {}", plain(&f.creds.username, "cascade_sk_wrong"))).await, "535 5.7.8 Authentication credentials invalid");
    assert_eq!(c.cmd(&format!("AUTH PLAIN {}", plain("ck_nobody", &f.creds.password))).await, "535 5.7.8 Authentication credentials invalid");
    assert_eq!(c.cmd("AUTH CRAM-MD5").await, "504 5.5.4 Unrecognized authentication mechanism; use PLAIN or LOGIN");
    // LOGIN, step by step.
    assert_eq!(c.cmd("AUTH LOGIN").await, "334 VXNlcm5hbWU6");
    assert_eq!(c.cmd(&b64(&f.creds.username)).await, "334 UGFzc3dvcmQ6");
    assert_eq!(c.cmd(&b64(&f.creds.password)).await, "235 2.7.0 Authentication successful");
    assert_eq!(c.cmd("AUTH LOGIN").await, "503 5.5.1 Already authenticated");
    assert!(f.relay.metrics.render().contains("cascade_relay_auth_failures_total{reason=\"bad_secret\"} 1"));
}

#[tokio::test]
async fn repeated_auth_failures_block_the_client_ip() {
    let f = fixture_with(|t| *t = t.replace("maxAuthFailures: 5", "maxAuthFailures: 2"));
    let (mut c, _) = tls_client(&f).await;
    let bad = format!("AUTH PLAIN {}", plain(&f.creds.username, "nope"));
    assert!(c.cmd(&bad).await.starts_with("535 5.7.8"));
    assert!(c.cmd(&bad).await.starts_with("535 5.7.8"));
    // Blocked now: a new connection is refused at once, even with good credentials.
    let mut c2 = start(&f);
    assert!(c2.reply().await.starts_with("421 4.7.0 Too many failed authentications"));
}

#[tokio::test]
async fn accepts_signs_and_spools_a_message() {
    let mut f = fixture();
    let mut c = authed(&f).await;
    assert_eq!(c.cmd("MAIL FROM:<dev@example.test> SIZE=100").await, "250 2.0.0 OK");
    assert_eq!(c.cmd("RCPT TO:<r@dest.test>").await, "250 2.0.0 OK");
    assert_eq!(c.cmd("DATA").await, "354 End data with <CR><LF>.<CR><LF>");
    c.raw(GOOD.as_bytes()).await;
    let reply = c.reply().await;
    assert!(reply.starts_with("250 2.0.0 OK queued as "), "{reply}");
    let id = reply.rsplit(' ').next().unwrap().to_string();
    let item = f.queue.recv().await.unwrap();
    assert_eq!(item.env.id, id);
    assert_eq!(item.env.sender, "dev@example.test");
    let (env, stored) = f.relay.spool.load(&id).unwrap();
    assert_eq!(env.recipients[0].address, "r@dest.test");
    let text = String::from_utf8(stored).unwrap();
    assert!(text.starts_with("DKIM-Signature: v=1; a=rsa-sha256;"), "{text}");
    assert!(text.contains("Received: from client.test (127.0.0.1)") && text.contains("Message-ID: <") && text.contains("\r\nDate: "));
    assert!(text.ends_with("\r\n\r\nhello\r\n"));
    std::fs::remove_dir_all(&f.dir).unwrap();
}

#[tokio::test]
async fn pipelined_transaction_gets_replies_in_order() {
    let mut f = fixture();
    let mut c = authed(&f).await;
    c.raw(b"MAIL FROM:<dev@example.test>\r\nRCPT TO:<a@dest.test>\r\nRCPT TO:<b@dest.test>\r\nDATA\r\n").await;
    assert_eq!(c.reply().await, "250 2.0.0 OK");
    assert_eq!(c.reply().await, "250 2.0.0 OK");
    assert_eq!(c.reply().await, "250 2.0.0 OK");
    assert!(c.reply().await.starts_with("354 "));
    c.raw(format!("{GOOD}RSET\r\n").as_bytes()).await;
    assert!(c.reply().await.starts_with("250 2.0.0 OK queued as"));
    assert_eq!(c.reply().await, "250 2.0.0 OK");
    assert_eq!(f.queue.recv().await.unwrap().env.recipients.len(), 2);
}

#[tokio::test]
async fn foreign_sender_domains_are_refused() {
    let f = fixture();
    let mut c = authed(&f).await;
    assert_eq!(c.cmd("MAIL FROM:<ceo@bank.test>").await, "550 5.7.1 Sender address domain is not authorized for this API key");
    assert_eq!(c.cmd("MAIL FROM:<>").await, "550 5.7.1 Sender address domain is not authorized for this API key");
    assert_eq!(c.cmd("MAIL FROM:<dev@example.test>").await, "250 2.0.0 OK");
    assert_eq!(c.cmd("MAIL FROM:<dev@example.test>").await, "503 5.5.1 Nested MAIL command");
    c.cmd("RCPT TO:<r@dest.test>").await;
    c.cmd("DATA").await;
    c.raw(b"From: ceo@bank.test\r\nSubject: pay\r\n\r\nx\r\n.\r\n").await;
    assert_eq!(c.reply().await, "550 5.7.1 From: header domain is not authorized for this API key");
    // The session goes on and a good message still passes.
    c.cmd("MAIL FROM:<dev@example.test>").await;
    c.cmd("RCPT TO:<r@dest.test>").await;
    c.cmd("DATA").await;
    c.raw(b"Subject: no from\r\n\r\nx\r\n.\r\n").await;
    assert_eq!(c.reply().await, "550 5.6.0 Message has no valid From: header");
}

#[tokio::test]
async fn bare_lf_smuggling_is_refused_and_nothing_is_smuggled() {
    let mut f = fixture();
    let mut c = authed(&f).await;
    c.cmd("MAIL FROM:<dev@example.test>").await;
    c.cmd("RCPT TO:<r@dest.test>").await;
    c.cmd("DATA").await;
    c.raw(b"From: dev@example.test\r\n\r\nfirst\n.\nMAIL FROM:<dev@example.test>\r\nRCPT TO:<victim@dest.test>\r\nDATA\r\nsmuggled\r\n.\r\n").await;
    assert_eq!(c.reply().await, "550 5.6.0 Message contains a bare LF or CR; lines must end with CRLF (RFC 5321 2.3.8)");
    assert_eq!(c.reply().await, "421 4.5.0 Bare line ending or NUL in the message; closing");
    assert_eq!(c.reply().await, "<EOF>");
    assert!(f.queue.try_recv().is_err(), "nothing may be queued");
}

#[tokio::test]
async fn bare_cr_before_the_dot_does_not_end_data() {
    // The review's demonstration: `<CR><LF><CR>.<CR><LF>` used to end DATA and run the rest.
    let mut f = fixture();
    let mut c = authed(&f).await;
    c.cmd("MAIL FROM:<dev@example.test>").await;
    c.cmd("RCPT TO:<r@dest.test>").await;
    c.cmd("DATA").await;
    c.raw(b"From: dev@example.test\r\n\r\nhello\r\n\r.\r\nMAIL FROM:<dev@example.test>\r\nRCPT TO:<victim@dest.test>\r\nDATA\r\nsmuggled\r\n.\r\n").await;
    assert_eq!(c.reply().await, "550 5.6.0 Message contains a bare LF or CR; lines must end with CRLF (RFC 5321 2.3.8)");
    assert_eq!(c.reply().await, "421 4.5.0 Bare line ending or NUL in the message; closing");
    assert_eq!(c.reply().await, "<EOF>");
    assert!(f.queue.try_recv().is_err(), "nothing may be queued");
}

#[tokio::test]
async fn limits_on_recipients_size_lines_and_sequence() {
    let f = fixture_with(|t| *t = t.replace("maxRecipients: 100", "maxRecipients: 2").replace("maxMessageSize: 25MiB", "maxMessageSize: 2KiB"));
    let mut c = authed(&f).await;
    assert_eq!(c.cmd("RCPT TO:<r@dest.test>").await, "503 5.5.1 Need MAIL before RCPT");
    assert_eq!(c.cmd("DATA").await, "503 5.5.1 Need MAIL and RCPT before DATA");
    assert_eq!(c.cmd("MAIL FROM:<dev@example.test> SIZE=999999").await, "552 5.3.4 Message size exceeds the limit of 2048 bytes");
    c.cmd("MAIL FROM:<dev@example.test>").await;
    assert_eq!(c.cmd("DATA").await, "554 5.5.1 No valid recipients");
    c.cmd("RCPT TO:<a@dest.test>").await;
    c.cmd("RCPT TO:<b@dest.test>").await;
    assert!(c.cmd("RCPT TO:<c@dest.test>").await.starts_with("452 4.5.3 Too many recipients"));
    c.cmd("DATA").await;
    let body = ("y".repeat(98) + "\r\n").repeat(30);
    c.raw(format!("From: dev@example.test\r\n\r\n{body}.\r\n").as_bytes()).await;
    assert!(c.reply().await.starts_with("552 5.3.4"));
    assert!(c.cmd(&format!("NOOP {}", "x".repeat(2000))).await.starts_with("500 5.5.2 Line too long"));
    c.raw(b"NOOP\n").await;
    assert_eq!(c.reply().await, "500 5.5.2 Command lines must end with CRLF");
    assert_eq!(c.cmd("RSET").await, "250 2.0.0 OK");
}

#[tokio::test]
async fn revoking_a_key_takes_effect_at_the_next_mail() {
    let f = fixture();
    let mut c = authed(&f).await;
    let rt = f.relay.runtime();
    let mut config = rt.config.clone();
    config.api_keys[0].revoked = true;
    let new = crate::config::check(config, "relay.yaml", &rt.base_dir).unwrap();
    f.relay.swap_runtime(std::sync::Arc::new(new));
    assert_eq!(c.cmd("MAIL FROM:<dev@example.test>").await, "535 5.7.8 Authentication credentials no longer valid");
}

#[tokio::test]
async fn clients_outside_the_allowed_networks_are_refused_at_once() {
    let f = fixture_with(|t| *t = t.replace("allowedClientCidrs: []", "allowedClientCidrs: [10.0.0.0/8]"));
    let mut c = start(&f);
    assert_eq!(c.reply().await, "554 5.7.1 Your address is not allowed to use this relay");
    assert_eq!(c.reply().await, "<EOF>");
    let f = fixture_with(|t| *t = t.replace("allowedClientCidrs: []", "allowedClientCidrs: [127.0.0.0/8]"));
    assert!(start(&f).reply().await.starts_with("220 "));
}

#[tokio::test]
async fn shutdown_answers_421_to_idle_sessions() {
    let f = fixture();
    let mut c = start(&f);
    c.reply().await;
    c.cmd("EHLO x.test").await;
    f.relay.begin_shutdown();
    assert_eq!(c.reply().await, "421 4.3.2 Service shutting down, try again later");
}

#[tokio::test(start_paused = true)]
async fn an_idle_client_is_disconnected_after_the_command_timeout() {
    let f = fixture_with(|t| *t = t.replace("commandTimeout: 5m", "commandTimeout: 5s"));
    let mut c = start(&f);
    assert!(c.reply().await.starts_with("220 "));
    let started = tokio::time::Instant::now();
    assert_eq!(c.reply().await, "421 4.4.2 Timeout waiting for client, closing connection");
    assert!(started.elapsed() >= std::time::Duration::from_secs(5));
    assert_eq!(c.reply().await, "<EOF>");
}

#[tokio::test(start_paused = true)]
async fn a_client_trickling_commands_is_closed_at_the_session_deadline() {
    let f = fixture_with(|t| *t = t.replace("commandTimeout: 5m", "commandTimeout: 5s").replace("sessionTimeout: 10m", "sessionTimeout: 60s"));
    let mut c = start(&f);
    let started = tokio::time::Instant::now();
    assert!(c.reply().await.starts_with("220 "));
    // Each NOOP comes well within the command timeout, one byte at a time.
    let mut last = String::new();
    for _ in 0..40 {
        for b in b"NOOP\r\n" {
            tokio::time::sleep(std::time::Duration::from_millis(700)).await;
            if c.io.get_mut().write_all(&[*b]).await.is_err() {
                break;
            }
        }
        last = c.reply().await;
        if last != "250 2.0.0 OK" {
            break;
        }
    }
    assert_eq!(last, "421 4.4.2 Session time limit reached, closing connection");
    assert!(started.elapsed() >= std::time::Duration::from_secs(60) && started.elapsed() < std::time::Duration::from_secs(66));
    assert_eq!(f.relay.metrics.rejected.with_label_values(&["session_deadline"]).get(), 1);
}

#[tokio::test(start_paused = true)]
async fn message_data_below_the_minimum_rate_closes_the_session() {
    let f = fixture_with(|t| *t = t.replace("minDataRate: \"500\"", "minDataRate: 100").replace("dataRateWindow: 30s", "dataRateWindow: 10s"));
    let mut c = authed(&f).await;
    c.cmd("MAIL FROM:<dev@example.test>").await;
    c.cmd("RCPT TO:<r@dest.test>").await;
    assert!(c.cmd("DATA").await.starts_with("354 "));
    let started = tokio::time::Instant::now();
    c.raw(b"From: dev@example.test\r\n\r\n").await;
    // One byte every 2 s: far within the 3-minute read timeout, far below 100 bytes/s.
    let mut writes = 0;
    while writes < 60 && c.io.get_mut().write_all(b"x").await.is_ok() {
        writes += 1;
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        if started.elapsed() > std::time::Duration::from_secs(12) {
            break;
        }
    }
    assert_eq!(c.reply().await, "421 4.4.2 Message data arrived too slowly, closing connection");
    assert!(started.elapsed() < std::time::Duration::from_secs(13));
    assert_eq!(f.relay.metrics.rejected.with_label_values(&["data_rate"]).get(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_fast_message_passes_the_data_rate_check() {
    let mut f = fixture_with(|t| *t = t.replace("minDataRate: \"500\"", "minDataRate: 100").replace("dataRateWindow: 30s", "dataRateWindow: 1s"));
    let mut c = authed(&f).await;
    c.cmd("MAIL FROM:<dev@example.test>").await;
    c.cmd("RCPT TO:<r@dest.test>").await;
    c.cmd("DATA").await;
    // 300 bytes per second for 3 s, then the end: above the rate in every window.
    c.raw(b"From: dev@example.test\r\n\r\n").await;
    for _ in 0..3 {
        c.raw(&[b'y'; 298]).await;
        c.raw(b"\r\n").await;
        tokio::time::sleep(std::time::Duration::from_millis(900)).await;
    }
    c.raw(b".\r\n").await;
    assert!(c.reply().await.starts_with("250 2.0.0 OK queued as "));
    assert!(f.queue.try_recv().is_ok());
}

#[tokio::test]
async fn a_client_slot_is_free_before_the_farewell_reaches_the_client() {
    // Under churn a client that has read `221` reconnects at once; its old slot must be free by
    // then. A 4-byte pipe makes the server wait in the middle of writing `221` until the client
    // reads, so the server cannot have finished its own teardown when the client sees the reply.
    let f = fixture();
    let ip: std::net::IpAddr = [127, 0, 0, 1].into();
    let slot = f.relay.client_sessions.enter(ip, 1).unwrap();
    let (client, server) = tokio::io::duplex(4);
    tokio::spawn(Session::new(f.relay.clone(), Stream::Plain(server), ip).with_client_slot(slot).run());
    let mut c = Client { io: BufReader::new(client) };
    assert!(c.reply().await.starts_with("220 "));
    c.send("QUIT").await;
    let mut first = [0u8; 3];
    tokio::io::AsyncReadExt::read_exact(&mut c.io, &mut first).await.unwrap();
    assert_eq!(&first, b"221");
    assert!(f.relay.client_sessions.enter(ip, 1).is_some(), "the slot must be free once the client can see 221");
}

/// A large DMARC aggregate report mailed to the report address, gzip and base64, about the dev
/// domain: about 19 MiB of XML to decompress and parse.
fn large_report_mail() -> Vec<u8> {
    use base64::Engine;
    use std::io::Write;
    let record = "<record><row><source_ip>192.0.2.1</source_ip><count>1</count><policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>pass</spf></policy_evaluated></row><identifiers><header_from>example.test</header_from></identifiers></record>\n";
    let records = record.repeat((19 << 20) / record.len());
    let xml = format!("<?xml version=\"1.0\"?><feedback><report_metadata><org_name>big.example</org_name><report_id>1</report_id><date_range><begin>1800000000</begin><end>1800086399</end></date_range></report_metadata><policy_published><domain>example.test</domain><p>reject</p></policy_published>{records}</feedback>");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(xml.as_bytes()).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(gz.finish().unwrap());
    let wrapped: Vec<&str> = b64.as_bytes().chunks(76).map(|c| std::str::from_utf8(c).unwrap()).collect();
    format!(
        "From: dev@example.test\r\nTo: dmarc@reports.test\r\nSubject: Report domain: example.test\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
         --b\r\nContent-Type: application/gzip\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--b--\r\n.\r\n",
        wrapped.join("\r\n")
    )
    .into_bytes()
}

#[tokio::test]
async fn a_large_dmarc_report_does_not_stall_other_sessions() {
    // One runtime thread serves both sessions: if parsing ran on it, the second session could
    // not answer until the report was done.
    let f = fixture_with(|t| t.push_str("dmarcReportAddress: dmarc@reports.test\n"));
    let mut reporter = authed(&f).await;
    let mut other = authed(&f).await;
    reporter.cmd("MAIL FROM:<dev@example.test>").await;
    reporter.cmd("RCPT TO:<dmarc@reports.test>").await;
    assert!(reporter.cmd("DATA").await.starts_with("354 "));
    reporter.raw(&large_report_mail()).await;
    // Let the server take the whole message and start on the report.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let started = std::time::Instant::now();
    assert_eq!(other.cmd("NOOP").await, "250 2.0.0 OK");
    let noop = started.elapsed();
    let pending = tokio::time::timeout(std::time::Duration::from_millis(1), tokio::io::AsyncBufReadExt::fill_buf(&mut reporter.io)).await.is_err();
    assert!(pending, "the report was already done when the other session got its answer ({noop:?}): it ran on the session's worker");
    assert!(reporter.reply().await.starts_with("250 2.6.0 DMARC report accepted"));
}

/// The whole session on mutated transcripts, in plaintext and on implicit TLS: every run ends
/// (the client's close is seen), and whatever the input, the server writes only well-formed
/// replies. The coverage-guided version is the `smtp_session` libFuzzer target.
#[tokio::test]
async fn mutated_sessions_always_end_with_well_formed_replies() {
    let mut f = super::harness::replay_fixture();
    let mut m = crate::mutate::Mutator::default();
    for round in 0..120 {
        let seed = super::harness::SEEDS[round % super::harness::SEEDS.len()];
        let input = if round < super::harness::SEEDS.len() { seed.to_vec() } else { m.mutate(seed) };
        let out = super::harness::replay(&mut f, &input, round % 3 != 0).await;
        assert!(out.starts_with(b"220 "), "round {round}: {:?}", String::from_utf8_lossy(&out));
        if let Err(e) = super::harness::well_formed_replies(&out) {
            panic!("round {round}, input {:?}: {e}", String::from_utf8_lossy(&input));
        }
    }
    // The unmutated first seed went all the way through on TLS.
    let out = super::harness::replay(&mut f, super::harness::SEEDS[0], true).await;
    assert!(String::from_utf8_lossy(&out).contains("250 2.0.0 OK queued as "), "{}", String::from_utf8_lossy(&out));
    std::fs::remove_dir_all(&f.dir).unwrap();
}

#[tokio::test]
async fn a_body_pipelined_behind_a_refused_data_never_runs_as_commands() {
    let mut f = fixture();
    let mut c = authed(&f).await;
    c.cmd("MAIL FROM:<dev@example.test>").await;
    c.raw(b"DATA\r\nMAIL FROM:<dev@example.test>\r\nRCPT TO:<victim@dest.test>\r\nDATA\r\n").await;
    assert_eq!(c.reply().await, "554 5.5.1 No valid recipients");
    assert_eq!(c.reply().await, "421 4.5.0 Input pipelined after a refused DATA; closing");
    assert_eq!(c.reply().await, "<EOF>");
    assert!(f.queue.try_recv().is_err());
    assert!(f.relay.metrics.render().contains("cascade_relay_messages_rejected_total{reason=\"pipelining\"} 1"));
}

#[tokio::test]
async fn a_key_sending_far_above_its_baseline_is_suspended_until_its_resource_is_edited() {
    let mut f = fixture_with(|t| *t = t.replace("suspend: false", "suspend: true").replace("minMessagesPerMinute: 100", "minMessagesPerMinute: 2"));
    let mut c = authed(&f).await;
    for _ in 0..3 {
        c.cmd("MAIL FROM:<dev@example.test>").await;
        c.cmd("RCPT TO:<r@dest.test>").await;
        c.cmd("DATA").await;
        c.raw(GOOD.as_bytes()).await;
        assert!(c.reply().await.starts_with("250 2.0.0 OK queued as"), "accepted before the finding");
    }
    let suspended = "535 5.7.8 API key suspended after unusual sending; an administrator must review it";
    assert_eq!(c.cmd("MAIL FROM:<dev@example.test>").await, suspended);
    let metrics = f.relay.metrics.render();
    assert!(metrics.contains("cascade_relay_key_anomalies_total{kind=\"rate\"} 1") && metrics.contains("cascade_relay_suspended_keys 1"), "{metrics}");
    let (mut c, _) = tls_client(&f).await;
    assert_eq!(c.cmd(&format!("AUTH PLAIN {}", plain(&f.creds.username, &f.creds.password))).await, suspended);
    let listed: serde_json::Value = serde_json::from_str(&f.relay.suspensions_json()).unwrap();
    assert_eq!((listed[0]["key"].as_str(), listed[0]["kind"].as_str(), listed[0]["generation"].as_i64()), (Some(f.creds.username.as_str()), Some("rate"), Some(0)));
    // An edit of the ApiKey (a new generation in the bundle) lifts it.
    let rt = f.relay.runtime();
    let mut config = rt.config.clone();
    config.api_keys[0].generation = 2;
    f.relay.swap_runtime(std::sync::Arc::new(crate::config::check(config, "relay.yaml", &rt.base_dir).unwrap()));
    assert_eq!(c.cmd(&format!("AUTH PLAIN {}", plain(&f.creds.username, &f.creds.password))).await, "235 2.7.0 Authentication successful");
    assert_eq!(f.relay.suspensions_json(), "[]");
    while f.queue.try_recv().is_ok() {}
}
