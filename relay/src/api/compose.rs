//! `POST /v1/messages`: a message described in JSON (`from`, `to`, `cc`, `bcc`, `replyTo`,
//! `subject`, `text`, `html`, `headers`, `attachments`, `tags`), checked field by field and built
//! into MIME by mail-builder (RFC 2047 encoded words for non-ASCII headers, RFC 2231 file names,
//! quoted-printable or base64 bodies as their content needs). `bcc` recipients are in the
//! envelope only, never in a header. The relay sets `Message-ID` (`<queue id@hostname>`) and
//! `Date`; headers the relay or MIME own cannot be given in `headers`.

use super::{invalid, recipients, Submission};
use crate::http::Answer;
use cascade_crds::relay_config::Limits;
use mail_builder::headers::address::Address as Mailbox;
use mail_builder::headers::text::Text;
use mail_builder::MessageBuilder;
use serde::Deserialize;
use std::collections::BTreeMap;

/// At most this many custom headers, tags and attachments.
pub const MAX_HEADERS: usize = 50;
pub const MAX_TAGS: usize = 10;
pub const MAX_ATTACHMENTS: usize = 100;

/// Headers a request may not set: the relay, the envelope fields or MIME own them.
const RESERVED: &[&str] = &[
    "from",
    "to",
    "cc",
    "bcc",
    "reply-to",
    "sender",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "content-disposition",
    "content-id",
    "dkim-signature",
    "received",
    "return-path",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Compose {
    from: Named,
    #[serde(default)]
    to: Vec<Named>,
    #[serde(default)]
    cc: Vec<Named>,
    #[serde(default)]
    bcc: Vec<Named>,
    #[serde(default)]
    reply_to: Option<Named>,
    subject: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    html: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    attachments: Vec<Attachment>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

/// `"a@example.com"` or `{"name": "A", "address": "a@example.com"}`.
#[derive(Deserialize)]
#[serde(untagged)]
enum Named {
    Address(String),
    Mailbox {
        #[serde(default)]
        name: Option<String>,
        address: String,
    },
}

impl Named {
    fn address(&self) -> &str {
        match self {
            Named::Address(a) | Named::Mailbox { address: a, .. } => a,
        }
    }
    fn name(&self) -> Option<&str> {
        match self {
            Named::Address(_) => None,
            Named::Mailbox { name, .. } => name.as_deref().filter(|n| !n.is_empty()),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Attachment {
    filename: String,
    #[serde(default)]
    content_type: Option<String>,
    /// Base64.
    content: String,
    /// Set: an inline part referred to as `cid:<contentId>` from the HTML.
    #[serde(default)]
    content_id: Option<String>,
}

/// Text that goes into a header: no line breaks or other controls (a header injection).
fn header_text(value: &str, field: &str) -> Result<(), Answer> {
    if value.chars().any(|c| c.is_control()) {
        return Err(invalid(format!("{field}: line breaks and control characters are not allowed")));
    }
    if value.len() > 998 {
        return Err(invalid(format!("{field}: longer than 998 bytes")));
    }
    Ok(())
}

/// A MIME token (`type/subtype` halves, content ids): printable ASCII without specials.
fn token(value: &str) -> bool {
    !value.is_empty() && value.len() <= 128 && value.bytes().all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?=".contains(&b))
}

fn mailbox(n: &Named, field: &str) -> Result<Mailbox<'static>, Answer> {
    let at = if matches!(n, Named::Address(_)) { field.to_string() } else { format!("{field}/address") };
    let a = super::address(n.address(), &at)?;
    if let Some(name) = n.name() {
        header_text(name, &format!("{field}/name"))?;
    }
    Ok(Mailbox::new_address(n.name().map(str::to_string), a.to_string()))
}

fn list(items: &[Named], field: &str) -> Result<Vec<Mailbox<'static>>, Answer> {
    items.iter().enumerate().map(|(i, n)| mailbox(n, &format!("{field}/{i}"))).collect()
}

fn check_headers(headers: &BTreeMap<String, String>) -> Result<(), Answer> {
    if headers.len() > MAX_HEADERS {
        return Err(invalid(format!("/headers: more than {MAX_HEADERS} headers")));
    }
    for (name, value) in headers {
        let field = format!("/headers/{name}");
        if name.is_empty() || name.len() > 76 || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(invalid(format!("{field}: a header name is letters, digits and '-'")));
        }
        if RESERVED.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(invalid(format!("{field}: set by the relay or by a field of the request; not a custom header")));
        }
        header_text(value, &field)?;
    }
    Ok(())
}

fn check_tags(tags: &BTreeMap<String, String>) -> Result<(), Answer> {
    if tags.len() > MAX_TAGS {
        return Err(invalid(format!("/tags: more than {MAX_TAGS} tags")));
    }
    for (k, v) in tags {
        if k.is_empty() || k.len() > 64 || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)) {
            return Err(invalid(format!("/tags/{k}: a tag name is 1 to 64 letters, digits, '_', '.' or '-'")));
        }
        if v.len() > 256 || v.chars().any(|c| c.is_control()) {
            return Err(invalid(format!("/tags/{k}: a tag value is at most 256 bytes, without control characters")));
        }
    }
    Ok(())
}

/// The attachments decoded: (content type, file name, content id, bytes).
type Part = (String, String, Option<String>, Vec<u8>);

fn attachments(list: &[Attachment], max_size: u64) -> Result<Vec<Part>, Answer> {
    use base64::Engine;
    if list.len() > MAX_ATTACHMENTS {
        return Err(invalid(format!("/attachments: more than {MAX_ATTACHMENTS} attachments")));
    }
    let mut total = 0u64;
    list.iter()
        .enumerate()
        .map(|(i, a)| {
            let field = format!("/attachments/{i}");
            if a.filename.is_empty() || a.filename.len() > 255 || a.filename.chars().any(|c| c.is_control() || c == '/' || c == '\\') {
                return Err(invalid(format!("{field}/filename: 1 to 255 bytes, no control characters or path separators")));
            }
            let ctype = a.content_type.clone().unwrap_or_else(|| "application/octet-stream".into());
            if !ctype.split_once('/').is_some_and(|(t, s)| token(t) && token(s)) {
                return Err(invalid(format!("{field}/contentType: not a MIME type (type/subtype)")));
            }
            if a.content_id.as_deref().is_some_and(|c| !token(c) && !c.bytes().all(|b| b.is_ascii_graphic() && b != b'<' && b != b'>')) {
                return Err(invalid(format!("{field}/contentId: printable ASCII without '<' or '>'")));
            }
            let compact: String = a.content.chars().filter(|c| !c.is_ascii_whitespace()).collect();
            let bytes = base64::engine::general_purpose::STANDARD.decode(compact).map_err(|_| invalid(format!("{field}/content: not base64")))?;
            total += bytes.len() as u64;
            if total > max_size {
                return Err(super::too_large(max_size));
            }
            Ok((ctype.to_ascii_lowercase(), a.filename.clone(), a.content_id.clone(), bytes))
        })
        .collect()
}

fn named<'a>(list: &'a [Named], field: &str) -> Vec<(String, &'a str)> {
    list.iter().enumerate().map(|(i, n)| (format!("/{field}/{i}"), n.address())).collect()
}

/// Parses, checks and builds the message; `queue_id@hostname` becomes its `Message-ID`.
pub fn parse(body: &[u8], limits: &Limits, queue_id: &str, hostname: &str) -> Result<Submission, Answer> {
    let c: Compose = serde_json::from_slice(body).map_err(|e| invalid(format!("/: {e}")))?;
    let from = mailbox(&c.from, "/from")?;
    let envelope_from = super::address(c.from.address(), "/from")?;
    let mut all = named(&c.to, "to");
    all.extend(named(&c.cc, "cc"));
    all.extend(named(&c.bcc, "bcc"));
    let to = recipients(all, limits.max_recipients)?;
    let (to_header, cc_header) = (list(&c.to, "/to")?, list(&c.cc, "/cc")?);
    list(&c.bcc, "/bcc")?;
    header_text(&c.subject, "/subject")?;
    if c.text.is_none() && c.html.is_none() {
        return Err(invalid("/text: a text or an html body (or both) is required"));
    }
    check_headers(&c.headers)?;
    check_tags(&c.tags)?;
    let parts = attachments(&c.attachments, limits.max_message_size.0)?;

    let mut b = MessageBuilder::new().from(from).subject(Text::new(c.subject)).message_id(format!("{queue_id}@{hostname}")).date(cascade_core::time::now_unix());
    if !to_header.is_empty() {
        b = b.to(Mailbox::new_list(to_header));
    }
    if !cc_header.is_empty() {
        b = b.cc(Mailbox::new_list(cc_header));
    }
    if let Some(r) = &c.reply_to {
        b = b.reply_to(mailbox(r, "/replyTo")?);
    }
    for (name, value) in c.headers {
        b = b.header(name, Text::new(value));
    }
    if let Some(text) = c.text {
        b = b.text_body(text);
    }
    if let Some(html) = c.html {
        b = b.html_body(html);
    }
    for (ctype, filename, cid, bytes) in parts {
        b = match cid {
            Some(cid) => b.inline(ctype, cid, bytes),
            None => b.attachment(ctype, filename, bytes),
        };
    }
    let message = b.write_to_vec().map_err(|e| invalid(format!("/: the message could not be built: {e}")))?;
    let message = super::raw::normalized(message, limits.max_line_length).map_err(|(_, why)| invalid(format!("/: {why}")))?;
    Ok(Submission { from: envelope_from, to, message, tags: c.tags })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(json: serde_json::Value) -> Result<Submission, Answer> {
        parse(json.to_string().as_bytes(), &Limits::default(), "0123abcd", "relay.test")
    }

    fn detail(r: Result<Submission, Answer>) -> String {
        let a = r.err().expect("refused");
        assert_eq!(a.status, 422, "{}", a.body);
        serde_json::from_str::<serde_json::Value>(&a.body).unwrap()["detail"].as_str().unwrap().to_string()
    }

    #[test]
    fn a_message_is_built_with_encoded_words_and_bcc_only_in_the_envelope() {
        use base64::Engine;
        let png = vec![0x89u8, b'P', b'N', b'G', 0, 1, 2, 255, b'\r', b'\n'];
        let s = build(serde_json::json!({
            "from": {"name": "Zoë Ünïcode", "address": "app@example.test"},
            "to": ["a@dest.test"], "cc": [{"address": "c@dest.test"}], "bcc": ["hidden@dest.test"],
            "replyTo": "help@example.test",
            "subject": "Grüße – ✓", "text": "héllo\n", "html": "<p>héllo</p>",
            "headers": {"X-Campaign": "spring ☀"},
            "attachments": [{"filename": "bild ü.png", "contentType": "image/png", "content": base64::engine::general_purpose::STANDARD.encode(&png)}],
            "tags": {"campaign": "spring"},
        }))
        .unwrap();
        assert_eq!(s.to.len(), 3, "to, cc and bcc are all envelope recipients");
        assert_eq!(s.from.to_string(), "app@example.test");
        assert_eq!(s.tags["campaign"], "spring");
        let text = String::from_utf8(s.message.clone()).unwrap();
        assert!(text.is_ascii(), "every non-ASCII header is encoded");
        assert!(!text.to_ascii_lowercase().contains("hidden@dest.test"), "bcc never in a header");
        assert!(text.contains("Message-ID: <0123abcd@relay.test>"));
        let parsed = mail_parser::MessageParser::default().parse(&s.message).unwrap();
        assert_eq!(parsed.subject(), Some("Grüße – ✓"));
        assert_eq!(parsed.from().unwrap().first().unwrap().name(), Some("Zoë Ünïcode"));
        assert!(text.to_ascii_lowercase().contains("x-campaign: =?utf-8?"), "a non-ASCII custom header is an encoded word");
        let attachment = parsed.attachments().next().unwrap();
        assert_eq!(attachment.attachment_name(), Some("bild ü.png"));
        assert_eq!(attachment.decoded().as_ref(), png.as_slice(), "binary content byte-exact");
    }

    #[test]
    fn every_refusal_names_its_field() {
        let base = || serde_json::json!({"from": "app@example.test", "to": ["a@dest.test"], "subject": "s", "text": "t"});
        let with = |k: &str, v: serde_json::Value| {
            let mut j = base();
            j[k] = v;
            build(j)
        };
        assert!(detail(with("to", serde_json::json!(["a@dest.test", "bad"]))).starts_with("/to/1: not an address"));
        assert!(detail(with("bcc", serde_json::json!(["x"]))).starts_with("/bcc/0"));
        assert!(detail(with("subject", serde_json::json!("a\r\nBcc: victim@x.test"))).starts_with("/subject: line breaks"));
        assert!(detail(with("from", serde_json::json!({"name": "a\nb", "address": "app@example.test"}))).starts_with("/from/name"));
        assert!(detail(with("headers", serde_json::json!({"DKIM-Signature": "x"}))).starts_with("/headers/DKIM-Signature: set by the relay"));
        assert!(detail(with("headers", serde_json::json!({"X-A": "v\r\nBcc: x@y.test"}))).starts_with("/headers/X-A: line breaks"));
        assert!(detail(with("headers", serde_json::json!({"X A": "v"}))).starts_with("/headers/X A: a header name"));
        assert!(detail(with("tags", serde_json::json!({"bad tag": "v"}))).starts_with("/tags/bad tag"));
        assert!(detail(with("attachments", serde_json::json!([{"filename": "a", "content": "%%%"}]))).starts_with("/attachments/0/content: not base64"));
        assert!(detail(with("attachments", serde_json::json!([{"filename": "../x", "content": ""}]))).starts_with("/attachments/0/filename"));
        assert!(detail(with("attachments", serde_json::json!([{"filename": "a", "contentType": "text", "content": ""}]))).starts_with("/attachments/0/contentType"));
        assert!(detail(with("unknown", serde_json::json!(1))).contains("unknown field"));
        let mut j = base();
        j.as_object_mut().unwrap().remove("text");
        assert!(detail(build(j)).starts_with("/text: a text or an html body"));
        let mut j = base();
        j["to"] = serde_json::json!([]);
        assert!(detail(build(j)).starts_with("/to: at least one recipient"));
    }
}
