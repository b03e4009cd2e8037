//! DMARC failure reports in the Abuse Reporting Format (RFC 5965, RFC 6591): the fields of the
//! `message/feedback-report` part.

use super::ReportError;
use std::net::IpAddr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// `Feedback-Type` (`auth-failure` for DMARC).
    pub feedback_type: String,
    /// `Reported-Domain`.
    pub domain: String,
    pub source_ip: Option<IpAddr>,
    /// `Auth-Failure` (`dkim`, `spf`, `dmarc`, ...).
    pub auth_failure: Option<String>,
}

pub fn parse(fields: &[u8]) -> Result<Failure, ReportError> {
    if fields.len() > 64 * 1024 {
        return Err(ReportError::new("feedback report fields larger than 64 KiB"));
    }
    let text = String::from_utf8_lossy(fields);
    let field = |name: &str| text.lines().find_map(|l| l.split_once(':').filter(|(k, _)| k.trim().eq_ignore_ascii_case(name)).map(|(_, v)| v.trim().to_string()));
    let feedback_type = field("Feedback-Type").ok_or_else(|| ReportError::new("feedback report without Feedback-Type"))?.to_ascii_lowercase();
    let domain = field("Reported-Domain").ok_or_else(|| ReportError::new("feedback report without Reported-Domain"))?.trim_end_matches('.').to_ascii_lowercase();
    if domain.is_empty() || domain.len() > 253 || !domain.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-') {
        return Err(ReportError::new(format!("Reported-Domain {domain:?} is not a domain name")));
    }
    let source_ip = match field("Source-IP") {
        Some(ip) => Some(ip.parse().map_err(|_| ReportError::new(format!("Source-IP {ip:?} is not an IP address")))?),
        None => None,
    };
    Ok(Failure { feedback_type, domain, source_ip, auth_failure: field("Auth-Failure").map(|a| a.to_ascii_lowercase()) })
}
