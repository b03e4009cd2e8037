//! DMARC reports: aggregate (RUA, RFC 7489 XML, plain, gzip or zip) and failure (RUF, ARF,
//! RFC 6591) reports, uploaded over HTTP or mailed to the pool's report address, become
//! per-domain Prometheus series. Everything here is bounded and refuses hostile input with an
//! error that says what is wrong; nothing panics on any input (see the fuzz target).

pub mod aggregate;
pub mod archive;
pub mod failure;
pub mod ingest;
pub mod record;
pub mod summary;
pub mod upload;

use mail_parser::MessageParser;

/// Reports decompressed and parsed at once (each up to 20 MiB of XML): the blocking pool has
/// hundreds of threads, so without this bound many report mails would take that memory each.
pub static PARSERS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ReportError(pub String);

impl ReportError {
    pub fn new(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    Aggregate(aggregate::Aggregate),
    Failure(failure::Failure),
}

impl Report {
    /// The domain the report is about.
    pub fn domain(&self) -> &str {
        match self {
            Report::Aggregate(a) => &a.domain,
            Report::Failure(f) => &f.domain,
        }
    }
}

/// An uploaded aggregate report (XML, gzip or zip).
pub fn parse_upload(body: &[u8]) -> Result<Report, ReportError> {
    aggregate::parse(&archive::unpack(body)?).map(Report::Aggregate)
}

/// The reports in a mail: a failure report (`multipart/report; report-type=feedback-report`),
/// or aggregate reports attached (or as the whole body).
pub fn parse_mail(message: &[u8]) -> Result<Vec<Report>, ReportError> {
    let parsed = MessageParser::new().parse(message).ok_or_else(|| ReportError::new("the message does not parse as MIME"))?;
    let is_arf = parsed.content_type().is_some_and(|c| {
        c.ctype().eq_ignore_ascii_case("multipart")
            && c.subtype().is_some_and(|s| s.eq_ignore_ascii_case("report"))
            && c.attribute("report-type").is_some_and(|t| t.eq_ignore_ascii_case("feedback-report"))
    });
    if is_arf {
        let part = parsed.parts().find(|p| p.is_content_type("message", "feedback-report")).ok_or_else(|| ReportError::new("feedback report without a message/feedback-report part"))?;
        return failure::parse(&part.decoded()).map(|f| vec![Report::Failure(f)]);
    }
    let mut reports = Vec::new();
    let mut errors = Vec::new();
    for part in parsed.parts().filter(|p| !p.is_multipart()) {
        let bytes = part.decoded();
        if bytes.is_empty() || (part.is_text() && !bytes.trim_ascii_start().starts_with(b"<")) {
            continue;
        }
        match parse_upload(&bytes) {
            Ok(r) => reports.push(r),
            Err(e) => errors.push(e.0),
        }
        if reports.len() + errors.len() >= 10 {
            break;
        }
    }
    match (reports.is_empty(), errors.is_empty()) {
        (false, _) => Ok(reports),
        (true, false) => Err(ReportError::new(errors.join("; "))),
        (true, true) => Err(ReportError::new("no DMARC report in the message (expected an .xml, .xml.gz or .zip attachment, or a feedback report)")),
    }
}

#[cfg(test)]
mod tests;
