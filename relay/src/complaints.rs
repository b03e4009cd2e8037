//! Complaints: ARF feedback reports (RFC 5965) a mailbox provider sends back when a recipient
//! marks a message as spam. The report (`multipart/report; report-type=feedback-report`) is
//! parsed with mail-parser: the `message/feedback-report` part gives `Feedback-Type` and
//! `Original-Rcpt-To`; the returned original (`message/rfc822` or `text/rfc822-headers`) gives
//! the `Message-ID`, which for mail this relay built or signed is `<queue id@hostname>` or names
//! the queue id in its `Received:` header. The key's tenant must own that message; the
//! recipient then gets a `message.complained` event and, where the tenant's
//! `suppressedReasons` say `complaint`, a suppression entry.

use mail_parser::MessageParser;

/// What a report says.
#[derive(Debug, PartialEq)]
pub struct Complaint {
    pub feedback_type: String,
    /// The queue ids the original message may carry (its Message-ID's local part, and every
    /// `id <queue id>` of its `Received:` headers).
    pub queue_ids: Vec<String>,
    pub recipient: Option<String>,
    pub message_id: Option<String>,
}

/// Parses an ARF report, or says why it is not one.
pub fn parse(raw: &[u8]) -> Result<Complaint, String> {
    let message = MessageParser::default().parse(raw).ok_or("not a MIME message")?;
    let is = |p: &mail_parser::MessagePart<'_>, t: &str, sub: &str| p.content_type().is_some_and(|c| c.ctype().eq_ignore_ascii_case(t) && c.subtype().is_some_and(|s| s.eq_ignore_ascii_case(sub)));
    let report = message.parts().find(|p| is(p, "message", "feedback-report")).ok_or("no message/feedback-report part (RFC 5965)")?;
    let fields = String::from_utf8_lossy(&report.decoded()).into_owned();
    let field = |name: &str| {
        fields.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    };
    let feedback_type = field("Feedback-Type").ok_or("the report has no Feedback-Type")?.to_ascii_lowercase();
    let recipient = field("Original-Rcpt-To").map(|r| r.trim_matches(['<', '>']).to_string()).filter(|r| r.contains('@'));
    let original = message.parts().find(|p| is(p, "message", "rfc822") || is(p, "text", "rfc822-headers")).map(|p| p.raw_body().to_vec());
    let original = original.ok_or("the report does not return the original message or its headers")?;
    let headers = MessageParser::default().parse_headers(&original).ok_or("the returned original cannot be parsed")?;
    let message_id = headers.message_id().map(str::to_string);
    let mut queue_ids: Vec<String> = message_id.iter().filter_map(|m| m.split_once('@').map(|(l, _)| l.to_string())).collect();
    let text = String::from_utf8_lossy(&original);
    for line in text.lines().filter(|l| l.contains(" id ")) {
        if let Some(id) = line.split(" id ").nth(1).and_then(|r| r.split(|c: char| !c.is_ascii_alphanumeric()).next()) {
            queue_ids.push(id.to_string());
        }
    }
    queue_ids.retain(|id| crate::spool::valid_id(id));
    queue_ids.dedup();
    Ok(Complaint { feedback_type, queue_ids, recipient, message_id })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn report(message_id: &str, rcpt: &str) -> Vec<u8> {
        format!(
            "From: feedback@isp.example\r\nTo: fbl@relay.example\r\nSubject: complaint\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/report; report-type=feedback-report; boundary=\"b\"\r\n\r\n\
             --b\r\nContent-Type: text/plain\r\n\r\nA complaint.\r\n\
             --b\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\nUser-Agent: isp/1.0\r\nVersion: 1\r\nOriginal-Rcpt-To: <{rcpt}>\r\n\r\n\
             --b\r\nContent-Type: text/rfc822-headers\r\n\r\nReceived: from api (x [127.0.0.1]) by localhost with ESMTPS id 01a23b3c391ef17a05ce; Thu, 3 Dec 2026 09:00:00 +0000\r\nMessage-ID: <{message_id}>\r\nFrom: dev@example.test\r\n\r\n--b--\r\n"
        )
        .into_bytes()
    }

    #[test]
    fn a_report_names_its_type_recipient_and_our_queue_ids() {
        let c = parse(&report("01a23b3c391ef17a05ce@localhost", "someone@example.net")).unwrap();
        assert_eq!((c.feedback_type.as_str(), c.recipient.as_deref()), ("abuse", Some("someone@example.net")));
        assert_eq!(c.queue_ids, vec!["01a23b3c391ef17a05ce".to_string()]);
        let foreign = parse(&report("CAF=x+y@mail.gmail.com", "someone@example.net")).unwrap();
        assert_eq!(foreign.queue_ids, vec!["01a23b3c391ef17a05ce".to_string()], "only the Received: id of ours");
        assert!(parse(b"From: a@b\r\n\r\nhello\r\n").unwrap_err().contains("feedback-report"));
        assert!(parse(b"").is_err());
    }
}
