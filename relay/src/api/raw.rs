//! `POST /v1/messages/raw`: `{"from": envelope sender, "to": [envelope recipients], "content":
//! base64 of an RFC 5322 message}`, the message taken as it is (line ends made CRLF).

use super::{invalid, recipients, too_large, Submission};
use crate::http::Answer;
use cascade_crds::relay_config::Limits;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    /// The envelope sender.
    from: String,
    /// The envelope recipients.
    to: Vec<String>,
    /// The message, base64.
    content: String,
}

/// `reject` counts a refusal of the content by its reason (as SMTP DATA counts them).
pub fn parse(body: &[u8], limits: &Limits, reject: &dyn Fn(&'static str)) -> Result<Submission, Answer> {
    use base64::Engine;
    let raw: Raw = serde_json::from_slice(body).map_err(|e| invalid(format!("/: {e}")))?;
    let from = super::address(&raw.from, "/from")?;
    let to = recipients(raw.to.iter().enumerate().map(|(i, t)| (format!("/to/{i}"), t.as_str())), limits.max_recipients)?;
    let compact: String = raw.content.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let message = base64::engine::general_purpose::STANDARD.decode(compact).map_err(|_| invalid("/content: not base64"))?;
    if message.len() as u64 > limits.max_message_size.0 {
        reject("size");
        return Err(too_large(limits.max_message_size.0));
    }
    let message = normalized(message, limits.max_line_length).map_err(|(reason, why)| {
        reject(reason);
        invalid(format!("/content: {why}"))
    })?;
    Ok(Submission { from, to, message, tags: Default::default() })
}

/// The message as DATA would have carried it: line ends CRLF (a bare LF becomes CRLF, as no SMTP
/// framing is involved here), no bare CR, no NUL, no line longer than `max_line`, ending in CRLF.
/// A refusal is (reason, text).
pub fn normalized(message: Vec<u8>, max_line: usize) -> Result<Vec<u8>, (&'static str, &'static str)> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 40 + 2);
    let mut line = 0usize;
    let mut bytes = message.iter().copied().peekable();
    while let Some(b) = bytes.next() {
        match b {
            0 => return Err(("nul", "the message contains a NUL byte (RFC 5322 2.3)")),
            b'\r' if bytes.peek() != Some(&b'\n') => return Err(("bare_line_ending", "the message contains a bare CR; lines end with CRLF")),
            b'\r' => {}
            b'\n' => {
                out.extend_from_slice(b"\r\n");
                line = 0;
            }
            _ => {
                out.push(b);
                line += 1;
                if line > max_line {
                    return Err(("line_length", "the message has a line longer than the limit (RFC 5322 2.1.1)"));
                }
            }
        }
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_is_normalized_to_crlf_and_refused_for_bare_cr_nul_and_long_lines() {
        assert_eq!(normalized(b"From: a@b.test\nSubject: x\n\nbody".to_vec(), 998).unwrap(), b"From: a@b.test\r\nSubject: x\r\n\r\nbody\r\n");
        assert_eq!(normalized(b"A: b\r\n\r\nx\r\n".to_vec(), 998).unwrap(), b"A: b\r\n\r\nx\r\n");
        assert!(normalized(b"A: b\r\n\r\nx\ry\r\n".to_vec(), 998).unwrap_err().0 == "bare_line_ending");
        assert!(normalized(b"A: b\r\n\r\nx\0y\r\n".to_vec(), 998).unwrap_err().0 == "nul");
        assert!(normalized(b"A: 123456\r\n".to_vec(), 5).unwrap_err().0 == "line_length");
    }
}
