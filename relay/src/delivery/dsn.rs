//! Bounce messages: a delivery status notification (RFC 3464, `multipart/report`, RFC 6522) to
//! the envelope sender, listing each failed recipient with its status and the remote reply, and
//! the original message's header section. Pure.

use cascade_core::time::rfc5322_date;

pub struct Failed<'a> {
    pub recipient: &'a str,
    pub reason: &'a str,
}

/// The enhanced status code (RFC 3463) in a reply text, or a generic permanent failure.
fn status_of(reason: &str) -> String {
    reason
        .split_whitespace()
        .find(|w| {
            let p: Vec<&str> = w.split('.').collect();
            p.len() == 3 && matches!(p[0], "4" | "5") && p[1..].iter().all(|x| !x.is_empty() && x.len() <= 3 && x.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(|s| format!("5{}", &s[1..]))
        .unwrap_or_else(|| "5.0.0".into())
}

fn header_section(message: &[u8]) -> &[u8] {
    match message.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(end) => &message[..end + 2],
        None => &message[..message.len().min(64 * 1024)],
    }
}

fn clean(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { ' ' }).collect()
}

/// Who reports what about which message.
#[derive(Clone, Copy)]
pub struct Report<'a> {
    pub hostname: &'a str,
    pub queue_id: &'a str,
    pub bounce_id: &'a str,
    pub sender: &'a str,
    /// Unix seconds the original was accepted.
    pub arrival: u64,
    pub now: u64,
}

pub fn build(report: &Report<'_>, failed: &[Failed<'_>], original: &[u8]) -> Vec<u8> {
    let Report { hostname, queue_id, bounce_id, sender, arrival, now } = *report;
    let boundary = format!("{bounce_id}/{hostname}");
    let mut out = String::new();
    out.push_str(&format!("From: Mail Delivery System <MAILER-DAEMON@{hostname}>\r\n"));
    out.push_str(&format!("To: <{sender}>\r\n"));
    out.push_str("Subject: Undelivered Mail Returned to Sender\r\n");
    out.push_str(&format!("Date: {}\r\n", rfc5322_date(now)));
    out.push_str(&format!("Message-ID: <{bounce_id}@{hostname}>\r\n"));
    out.push_str("Auto-Submitted: auto-replied\r\n");
    out.push_str("MIME-Version: 1.0\r\n");
    out.push_str(&format!("Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"{boundary}\"\r\n\r\n"));
    out.push_str(&format!("--{boundary}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"));
    out.push_str(&format!("This is the mail system at {hostname}.\r\n\r\nYour message (queue id {queue_id}) could not be delivered to the\r\nfollowing recipients:\r\n\r\n"));
    for f in failed {
        out.push_str(&format!("<{}>: {}\r\n", f.recipient, clean(f.reason)));
    }
    out.push_str(&format!("\r\n--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\n"));
    out.push_str(&format!("Reporting-MTA: dns; {hostname}\r\nX-Cascade-Queue-ID: {queue_id}\r\nArrival-Date: {}\r\n", rfc5322_date(arrival)));
    for f in failed {
        out.push_str(&format!("\r\nFinal-Recipient: rfc822; {}\r\nAction: failed\r\nStatus: {}\r\nDiagnostic-Code: smtp; {}\r\n", f.recipient, status_of(f.reason), clean(f.reason)));
    }
    out.push_str(&format!("\r\n--{boundary}\r\nContent-Type: text/rfc822-headers\r\n\r\n"));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(header_section(original));
    bytes.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_a_delivery_status_report() {
        let failed = [Failed { recipient: "x@dest.test", reason: "550 5.1.1 No such user" }, Failed { recipient: "y@dest.test", reason: "expired after 5d" }];
        let dsn = String::from_utf8(build(
            &Report { hostname: "relay.test", queue_id: "q1", bounce_id: "b1", sender: "a@example.test", arrival: 0, now: 60 },
            &failed,
            b"Subject: hi\r\n\r\nsecret body\r\n",
        ))
        .unwrap();
        assert!(dsn.contains("Content-Type: multipart/report; report-type=delivery-status;"));
        assert!(dsn.contains("Final-Recipient: rfc822; x@dest.test\r\nAction: failed\r\nStatus: 5.1.1\r\n"));
        assert!(dsn.contains("Final-Recipient: rfc822; y@dest.test\r\nAction: failed\r\nStatus: 5.0.0\r\n"));
        assert!(dsn.contains("Subject: hi\r\n") && !dsn.contains("secret body"));
        assert!(dsn.ends_with("--b1/relay.test--\r\n"));
        let parsed = mail_parser::MessageParser::new().parse(dsn.as_bytes()).unwrap();
        assert_eq!(parsed.subject(), Some("Undelivered Mail Returned to Sender"));
    }

    #[test]
    fn a_temporary_code_in_the_reason_becomes_permanent() {
        assert_eq!(status_of("451 4.4.1 timeout, then expired"), "5.4.1");
    }
}
