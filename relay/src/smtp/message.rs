//! What the relay checks and adds to a message body after DATA: the shape of the header section
//! (every line a field or a folded continuation, RFC 5322 2.2), the `From:` header's domains (for
//! the sender policy), and the trace and identity headers (`Received:`, `Message-ID:`, `Date:`).
//! Pure.

use super::reply::Reply;
use mail_parser::MessageParser;

/// The facts the `Received:` header records.
pub struct Trace<'a> {
    pub helo: &'a str,
    pub client_ip: std::net::IpAddr,
    pub hostname: &'a str,
    pub queue_id: &'a str,
    pub tls: bool,
    pub unix_time: u64,
}

/// Every line of the header section (up to the first empty line, or the whole message when there
/// is none) must be a field, `name: value` with a name of printable ASCII other than `:`
/// (RFC 5322 2.2, 3.6.8), or a continuation starting with a space or tab after a field. A message
/// that breaks this would be signed as it is and fail DKIM at strict verifiers; a body that
/// starts without the empty line after the headers is the usual cause.
pub fn check_header_section(message: &[u8]) -> Result<(), Reply> {
    let lines = header_section(message).split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    for (i, line) in lines.enumerate() {
        if line.is_empty() {
            break;
        }
        let continuation = matches!(line[0], b' ' | b'\t');
        let field = line.iter().position(|&b| b == b':').is_some_and(|colon| colon > 0 && line[..colon].iter().all(|&b| (33..=126).contains(&b)));
        if (continuation && i == 0) || (!continuation && !field) {
            let what = if continuation { "a continuation with no field before it" } else { "neither a header field nor a folded continuation" };
            return Err(Reply::new(550, "5.6.0", format!("Message header line {} is {what} (RFC 5322 2.2); is the empty line after the headers missing?", i + 1)));
        }
    }
    Ok(())
}

/// The domains of every address in the message's `From:` header (lower case). Exactly one
/// `From:` header with at least one address is required: DKIM and DMARC both hinge on it.
pub fn from_domains(message: &[u8]) -> Result<Vec<String>, Reply> {
    let no_from = || Reply::new(550, "5.6.0", "Message has no valid From: header");
    let parsed = MessageParser::new().parse_headers(message).ok_or_else(no_from)?;
    let headers = parsed.headers();
    if headers.all_from().count() != 1 {
        return Err(if headers.all_from().count() == 0 { no_from() } else { Reply::new(550, "5.6.0", "Message has more than one From: header") });
    }
    let list = headers.from().ok_or_else(no_from)?;
    let mut domains = Vec::new();
    for mailbox in list.mailboxes() {
        let address = mailbox.address().ok_or_else(no_from)?;
        let (_, domain) = address.rsplit_once('@').ok_or_else(no_from)?;
        domains.push(domain.trim().to_ascii_lowercase());
    }
    if domains.is_empty() {
        return Err(no_from());
    }
    Ok(domains)
}

/// Whether a header field with this name is present in the header section.
fn has_header(message: &[u8], name: &str) -> bool {
    header_section(message).split(|&b| b == b'\n').any(|line| line.len() > name.len() && line[name.len()] == b':' && line[..name.len()].eq_ignore_ascii_case(name.as_bytes()))
}

/// The header section with its last CRLF, without the empty line (the whole message if none).
fn header_section(message: &[u8]) -> &[u8] {
    match message.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(end) => &message[..end + 2],
        None => message,
    }
}

/// The headers to put in front of the message: `Received:` always, `Message-ID:` and `Date:`
/// when the client did not supply them (RFC 6409 section 8).
pub fn added_headers(message: &[u8], trace: &Trace<'_>) -> Vec<u8> {
    let date = cascade_core::time::rfc5322_date(trace.unix_time);
    let with = if trace.tls { "ESMTPSA" } else { "ESMTPA" };
    let mut out = format!("Received: from {} ({})\r\n\tby {} (Cascade) with {} id {};\r\n\t{}\r\n", sanitize(trace.helo), trace.client_ip, trace.hostname, with, trace.queue_id, date);
    if !has_header(message, "Message-ID") {
        out.push_str(&format!("Message-ID: <{}@{}>\r\n", trace.queue_id, trace.hostname));
    }
    if !has_header(message, "Date") {
        out.push_str(&format!("Date: {date}\r\n"));
    }
    out.into_bytes()
}

/// Keeps a client-chosen name from breaking the header it is written into.
fn sanitize(s: &str) -> String {
    s.chars().filter(|c| c.is_ascii_graphic()).take(255).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_sections_must_hold_only_fields_and_continuations() {
        let good: &[&[u8]] = &[
            b"From: a@b.test\r\nSubject: x\r\n\r\nbody without: rules\r\n",
            b"From: a@b.test\r\nSubject: folded\r\n over\r\n\tlines\r\n\r\nx\r\n",
            b"From: a@b.test\r\nX-Empty:\r\n\r\n",
            b"From: a@b.test\r\n",
        ];
        for m in good {
            assert!(check_header_section(m).is_ok(), "{}", String::from_utf8_lossy(m));
        }
        let bad: &[(&[u8], usize)] = &[
            (b"From: a@b.test\r\nSubject: x\r\nhello, this is the body\r\n", 3),
            (b"From: a@b.test\r\nno colon here\r\n\r\nx\r\n", 2),
            (b" From: a@b.test\r\n\r\nx\r\n", 1),
            (b"From: a@b.test\r\n: no name\r\n\r\n", 2),
            (b"From: a@b.test\r\nBad Name: x\r\n\r\n", 2),
            (b"From: a@b.test\r\nX-\x7fDel: x\r\n\r\n", 2),
        ];
        for (m, line) in bad {
            let e = check_header_section(m).unwrap_err();
            assert_eq!((e.code, e.enhanced), (550, "5.6.0"));
            assert!(e.lines[0].starts_with(&format!("Message header line {line} is ")), "{}: {:?}", String::from_utf8_lossy(m), e.lines);
        }
    }

    fn trace() -> Trace<'static> {
        Trace { helo: "client", client_ip: [127, 0, 0, 1].into(), hostname: "relay.test", queue_id: "q1", tls: true, unix_time: 0 }
    }

    #[test]
    fn finds_from_domains() {
        let msg = b"From: \"A, B\" <a@Example.TEST>, c@other.test\r\nSubject: x\r\n\r\nbody\r\n";
        assert_eq!(from_domains(msg).unwrap(), vec!["example.test", "other.test"]);
    }

    #[test]
    fn refuses_missing_or_repeated_from() {
        assert_eq!(from_domains(b"Subject: x\r\n\r\nbody\r\n").unwrap_err().enhanced, "5.6.0");
        let two = b"From: a@x.test\r\nFrom: b@y.test\r\n\r\nbody\r\n";
        assert!(from_domains(two).unwrap_err().lines[0].contains("more than one"));
    }

    #[test]
    fn adds_message_id_and_date_only_when_missing() {
        let added = String::from_utf8(added_headers(b"From: a@x.test\r\n\r\nbody", &trace())).unwrap();
        assert!(added.starts_with("Received: from client (127.0.0.1)\r\n\tby relay.test (Cascade) with ESMTPSA id q1;"));
        assert!(added.contains("Message-ID: <q1@relay.test>\r\n"));
        assert!(added.contains("Date: Thu, 1 Jan 1970 00:00:00 +0000\r\n"));
        let msg = b"From: a@x.test\r\nmessage-id: <m@x>\r\nDATE: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\nMessage-ID: in body\r\n";
        let added = String::from_utf8(added_headers(msg, &trace())).unwrap();
        assert!(!added.contains("Message-ID") && !added.contains("Date:"), "{added}");
        // A Message-ID only in the body does not count.
        let added = String::from_utf8(added_headers(b"From: a@x.test\r\n\r\nMessage-ID: <b@x>\r\n", &trace())).unwrap();
        assert!(added.contains("Message-ID: <q1@relay.test>"));
    }
}
