//! DMARC aggregate reports (RFC 7489 appendix C): the project's own small reader over quick-xml
//! tokens. It keeps what the metrics need (reporter, window, domain, policy, and per source:
//! count, disposition, DKIM and SPF policy results) and refuses what it cannot trust: DOCTYPE
//! (so no entity tricks), unknown entities, deep nesting, oversized values, implausible counts,
//! too many records.
//!
//! It accepts what the widely used parsers (parsedmarc) accept from real reporters, and says so
//! in [`Aggregate::repairs`]: a `<feedback>` wrapped in an `<xs:schema>` element, and bytes that
//! are not UTF-8 in free text (decoded lossily). Anything else that is not a report stays refused.

use super::ReportError;
use quick_xml::events::Event;
use quick_xml::Reader;
use std::net::IpAddr;

pub const MAX_RECORDS: usize = 100_000;
/// More messages than this in one row is not a real report.
pub const MAX_COUNT: u64 = 1_000_000_000;
const MAX_DEPTH: usize = 16;
const MAX_VALUE: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aggregate {
    pub org_name: String,
    pub report_id: String,
    pub begin: u64,
    pub end: u64,
    /// `policy_published/domain`.
    pub domain: String,
    /// `policy_published/p`.
    pub policy: String,
    pub rows: Vec<Row>,
    /// What had to be repaired to read the report (see [`Repair`]).
    pub repairs: Vec<Repair>,
}

/// A deviation from RFC 7489 that real reporters produce and the report was read despite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repair {
    /// `<feedback>` inside an `<xs:schema>` element.
    SchemaWrapper,
    /// Bytes that are not UTF-8, replaced by U+FFFD.
    InvalidUtf8,
}

impl Repair {
    pub fn label(self) -> &'static str {
        match self {
            Repair::SchemaWrapper => "schema_wrapper",
            Repair::InvalidUtf8 => "invalid_utf8",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub source_ip: IpAddr,
    pub count: u64,
    /// `none`, `quarantine` or `reject`.
    pub disposition: String,
    /// DMARC-aligned DKIM and SPF results (`policy_evaluated`).
    pub dkim_pass: bool,
    pub spf_pass: bool,
    pub header_from: String,
}

#[derive(Default)]
struct RowBuilder {
    source_ip: Option<String>,
    count: Option<String>,
    disposition: Option<String>,
    dkim: Option<String>,
    spf: Option<String>,
    header_from: Option<String>,
}

fn entity(name: &[u8]) -> Option<String> {
    Some(match name {
        b"amp" => "&".into(),
        b"lt" => "<".into(),
        b"gt" => ">".into(),
        b"quot" => "\"".into(),
        b"apos" => "'".into(),
        [b'#', b'x', hex @ ..] => char::from_u32(u32::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?)?.to_string(),
        [b'#', dec @ ..] => char::from_u32(std::str::from_utf8(dec).ok()?.parse().ok()?)?.to_string(),
        _ => return None,
    })
}

fn row(b: RowBuilder, n: usize) -> Result<Row, ReportError> {
    let at = |field: &str| format!("record {n}: {field}");
    let need = |v: Option<String>, field: &str| v.ok_or_else(|| ReportError::new(format!("{} is missing", at(field))));
    let ip = need(b.source_ip, "row/source_ip")?;
    let source_ip = ip.trim().parse().map_err(|_| ReportError::new(format!("{} {ip:?} is not an IP address", at("row/source_ip"))))?;
    let count_text = need(b.count, "row/count")?;
    let count: u64 = count_text.trim().parse().map_err(|_| ReportError::new(format!("{} {count_text:?} is not a number", at("row/count"))))?;
    if count > MAX_COUNT {
        return Err(ReportError::new(format!("{} {count} is not a plausible message count", at("row/count"))));
    }
    let result = |v: Option<String>, field: &str| -> Result<bool, ReportError> {
        match v.as_deref().map(str::trim) {
            Some("pass") => Ok(true),
            Some("fail") | None => Ok(false),
            Some(other) => Err(ReportError::new(format!("{} {other:?} is neither pass nor fail", at(field)))),
        }
    };
    Ok(Row {
        source_ip,
        count,
        disposition: b.disposition.map(|d| d.trim().to_ascii_lowercase()).unwrap_or_else(|| "none".into()),
        dkim_pass: result(b.dkim, "policy_evaluated/dkim")?,
        spf_pass: result(b.spf, "policy_evaluated/spf")?,
        header_from: b.header_from.map(|h| h.trim().to_ascii_lowercase()).unwrap_or_default(),
    })
}

/// Stores the text of the element at `p` (below the root) in the report or the current row.
fn field(report: &mut Aggregate, current: &mut Option<RowBuilder>, p: &[&str], value: String) -> Result<(), ReportError> {
    match p {
        ["feedback", "report_metadata", "org_name"] => report.org_name = value.trim().into(),
        ["feedback", "report_metadata", "report_id"] => report.report_id = value.trim().into(),
        ["feedback", "report_metadata", "date_range", "begin"] => report.begin = value.trim().parse().map_err(|_| ReportError::new(format!("date_range/begin {value:?} is not a number")))?,
        ["feedback", "report_metadata", "date_range", "end"] => report.end = value.trim().parse().map_err(|_| ReportError::new(format!("date_range/end {value:?} is not a number")))?,
        ["feedback", "policy_published", "domain"] => report.domain = value.trim().trim_end_matches('.').to_ascii_lowercase(),
        ["feedback", "policy_published", "p"] => report.policy = value.trim().to_ascii_lowercase(),
        ["feedback", "record"] => {
            let n = report.rows.len() + 1;
            report.rows.push(row(current.take().unwrap_or_default(), n)?);
        }
        ["feedback", "record", rest @ ..] => {
            if let Some(b) = current.as_mut() {
                match rest {
                    ["row", "source_ip"] => b.source_ip = Some(value),
                    ["row", "count"] => b.count = Some(value),
                    ["row", "policy_evaluated", "disposition"] => b.disposition = Some(value),
                    ["row", "policy_evaluated", "dkim"] => b.dkim = Some(value),
                    ["row", "policy_evaluated", "spf"] => b.spf = Some(value),
                    ["identifiers", "header_from"] => b.header_from = Some(value),
                    _ => {}
                }
            }
        }
        _ => {}
    }
    Ok(())
}

pub fn parse(xml: &[u8]) -> Result<Aggregate, ReportError> {
    let mut repairs = Vec::new();
    let decoded = String::from_utf8_lossy(xml);
    if matches!(decoded, std::borrow::Cow::Owned(_)) {
        repairs.push(Repair::InvalidUtf8);
    }
    let mut reader = Reader::from_reader(decoded.as_bytes());
    let mut buf = Vec::new();
    // The element path below `<feedback>`'s parent: `wrapped` is 1 inside an `<xs:schema>`.
    let mut path: Vec<String> = Vec::new();
    let mut wrapped = 0;
    let mut seen_root = false;
    let mut text = String::new();
    let mut report = Aggregate { org_name: String::new(), report_id: String::new(), begin: 0, end: 0, domain: String::new(), policy: String::new(), rows: vec![], repairs: vec![] };
    let mut current: Option<RowBuilder> = None;
    loop {
        let pos = reader.buffer_position();
        let event = reader.read_event_into(&mut buf).map_err(|e| ReportError::new(format!("XML error at byte {pos}: {e}")))?;
        match event {
            Event::DocType(_) => return Err(ReportError::new("DOCTYPE declarations are not allowed in reports")),
            Event::Start(e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                if path.is_empty() && name == "schema" && !seen_root {
                    wrapped = 1;
                    repairs.push(Repair::SchemaWrapper);
                } else if path.len() < wrapped {
                    return Err(ReportError::new(format!("<{name}> after the end of the report")));
                } else if path.len() == wrapped && name != "feedback" {
                    return Err(ReportError::new(format!("not a DMARC aggregate report: the root element is <{name}>, not <feedback>")));
                }
                seen_root = true;
                path.push(name);
                if path.len() > MAX_DEPTH {
                    return Err(ReportError::new("elements nested too deeply"));
                }
                if path.len() == wrapped + 2 && path[wrapped + 1] == "record" {
                    if report.rows.len() >= MAX_RECORDS {
                        return Err(ReportError::new(format!("more than {MAX_RECORDS} records; refused")));
                    }
                    current = Some(RowBuilder::default());
                }
                text.clear();
            }
            Event::Empty(e) if path.len() <= wrapped => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                if path.len() < wrapped || (path.is_empty() && seen_root) {
                    return Err(ReportError::new(format!("<{name}> after the end of the report")));
                }
                if name != "feedback" {
                    return Err(ReportError::new(format!("not a DMARC aggregate report: the root element is <{name}>, not <feedback>")));
                }
                seen_root = true;
            }
            Event::Text(t) => text.push_str(&t.decode().map_err(|e| ReportError::new(format!("text at byte {pos}: {e}")))?),
            Event::CData(t) => text.push_str(&String::from_utf8_lossy(&t)),
            Event::GeneralRef(r) => text.push_str(&entity(&r).ok_or_else(|| ReportError::new(format!("unknown entity &{};", String::from_utf8_lossy(&r))))?),
            Event::End(_) => {
                if text.len() > MAX_VALUE {
                    return Err(ReportError::new(format!("value of <{}> longer than {MAX_VALUE} bytes", path.join("/"))));
                }
                let p: Vec<&str> = path.iter().skip(wrapped).map(String::as_str).collect();
                let value = std::mem::take(&mut text);
                field(&mut report, &mut current, &p, value)?;
                path.pop();
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if !path.is_empty() {
        return Err(ReportError::new("the report ends before </feedback>"));
    }
    if report.domain.is_empty() {
        return Err(ReportError::new("not a DMARC aggregate report: policy_published/domain is missing"));
    }
    if report.end < report.begin {
        return Err(ReportError::new("date_range ends before it begins"));
    }
    report.repairs = repairs;
    Ok(report)
}
