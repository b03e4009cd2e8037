//! A corpus of reports as different reporters write them, compressed and not, and hostile ones.

use super::*;
use base64::Engine;
use flate2::write::{DeflateEncoder, GzEncoder};
use flate2::Compression;
use std::io::Write;

fn record(ip: &str, count: u64, disposition: &str, dkim: &str, spf: &str) -> String {
    format!(
        "<record><row><source_ip>{ip}</source_ip><count>{count}</count><policy_evaluated><disposition>{disposition}</disposition><dkim>{dkim}</dkim><spf>{spf}</spf></policy_evaluated></row>\
         <identifiers><header_from>shop.example</header_from></identifiers><auth_results><dkim><domain>shop.example</domain><result>{dkim}</result></dkim></auth_results></record>"
    )
}

/// Google's layout: XML declaration, no namespace.
fn google(records: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n<feedback>\n  <report_metadata>\n    <org_name>google.com</org_name>\n    <email>noreply-dmarc-support@google.com</email>\n    \
         <report_id>1234567890</report_id>\n    <date_range>\n      <begin>1800000000</begin>\n      <end>1800086399</end>\n    </date_range>\n  </report_metadata>\n  \
         <policy_published>\n    <domain>shop.example</domain>\n    <adkim>r</adkim>\n    <aspf>r</aspf>\n    <p>reject</p>\n    <sp>reject</sp>\n    <pct>100</pct>\n  </policy_published>\n{records}</feedback>"
    )
}

/// Microsoft's layout: a default namespace, a version element, CDATA and entities in text.
fn microsoft(records: &str) -> String {
    format!(
        "<?xml version=\"1.0\"?><feedback xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\" xmlns=\"http://dmarc.org/dmarc-xml/0.1\"><version>1.0</version>\
         <report_metadata><org_name><![CDATA[Enterprise Outlook]]></org_name><report_id>a&amp;b&#x31;</report_id><date_range><begin>1800000000</begin><end>1800086400</end></date_range></report_metadata>\
         <policy_published><domain>Shop.Example.</domain><p>quarantine</p></policy_published>{records}</feedback>"
    )
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A zip with one deflated (or stored) entry, as reporters send.
fn zip(data: &[u8], deflate: bool, descriptor: bool) -> Vec<u8> {
    let body = if deflate {
        let mut e = DeflateEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    } else {
        data.to_vec()
    };
    let name = b"google.com!shop.example!1800000000!1800086399.xml";
    let mut z = b"PK\x03\x04\x14\x00".to_vec();
    let flags: u16 = if descriptor { 8 } else { 0 };
    z.extend_from_slice(&flags.to_le_bytes());
    z.extend_from_slice(&(if deflate { 8u16 } else { 0 }).to_le_bytes());
    z.extend_from_slice(&[0; 8]); // time, date, crc (not checked)
    let (c, u) = if descriptor { (0u32, 0u32) } else { (body.len() as u32, data.len() as u32) };
    z.extend_from_slice(&c.to_le_bytes());
    z.extend_from_slice(&u.to_le_bytes());
    z.extend_from_slice(&(name.len() as u16).to_le_bytes());
    z.extend_from_slice(&0u16.to_le_bytes());
    z.extend_from_slice(name);
    z.extend_from_slice(&body);
    z
}

fn aggregate(r: Result<Report, ReportError>) -> aggregate::Aggregate {
    match r.unwrap() {
        Report::Aggregate(a) => a,
        other => panic!("{other:?}"),
    }
}

#[test]
fn reports_from_several_reporters_plain_and_compressed() {
    let rows = record("192.0.2.1", 40, "none", "pass", "pass") + &record("2001:db8::7", 3, "reject", "fail", "fail");
    let g = google(&rows);
    for bytes in [g.clone().into_bytes(), gzip(g.as_bytes()), zip(g.as_bytes(), true, false), zip(g.as_bytes(), false, false), zip(g.as_bytes(), true, true)] {
        let a = aggregate(parse_upload(&bytes));
        assert_eq!((a.org_name.as_str(), a.domain.as_str(), a.policy.as_str(), a.begin, a.end), ("google.com", "shop.example", "reject", 1_800_000_000, 1_800_086_399));
        assert_eq!(a.rows.len(), 2);
        assert_eq!((a.rows[0].count, a.rows[0].dkim_pass, a.rows[0].spf_pass, a.rows[0].disposition.as_str()), (40, true, true, "none"));
        assert_eq!((a.rows[1].source_ip.to_string().as_str(), a.rows[1].dkim_pass, a.rows[1].disposition.as_str()), ("2001:db8::7", false, "reject"));
    }
    let m = aggregate(parse_upload(microsoft(&record("198.51.100.9", 1, "quarantine", "fail", "pass")).as_bytes()));
    assert_eq!((m.org_name.as_str(), m.report_id.as_str(), m.domain.as_str(), m.policy.as_str()), ("Enterprise Outlook", "a&b1", "shop.example", "quarantine"));
    assert!(m.rows[0].spf_pass && !m.rows[0].dkim_pass);
}

fn refused(bytes: &[u8]) -> String {
    match parse_upload(bytes) {
        Err(e) => e.0,
        Ok(r) => panic!("accepted: {r:?}"),
    }
}

#[test]
fn hostile_and_malformed_reports_are_refused_with_a_reason() {
    let bomb = "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 \"&lol;&lol;&lol;&lol;\">]><feedback>&lol2;</feedback>";
    assert_eq!(refused(bomb.as_bytes()), "DOCTYPE declarations are not allowed in reports");
    assert!(refused(google("<record><row><source_ip>&xxe;</source_ip></row></record>").as_bytes()).contains("unknown entity &xxe;"));
    // A zip bomb: 64 MiB of zeros in a few KiB.
    let zeros = vec![0u8; 64 * 1024 * 1024];
    let packed = gzip(&zeros);
    assert!(packed.len() < 200 * 1024);
    assert!(refused(&packed).contains("decompresses to more than 20 MiB"));
    assert!(refused(&zip(&zeros, true, true)).contains("decompresses to more than 20 MiB"));
    assert!(refused(google(&record("192.0.2.1", 99_000_000_000_000, "none", "pass", "pass")).as_bytes()).contains("is not a plausible message count"));
    assert!(refused(google(&record("not-an-ip", 1, "none", "pass", "pass")).as_bytes()).contains("record 1: row/source_ip \"not-an-ip\" is not an IP address"));
    assert!(refused(google(&record("192.0.2.1", 1, "none", "maybe", "pass")).as_bytes()).contains("neither pass nor fail"));
    assert!(refused(b"<html><body>hi</body></html>").contains("the root element is <html>"));
    assert!(refused(google("").replace("<domain>shop.example</domain>", "").as_bytes()).contains("policy_published/domain is missing"));
    assert!(refused(&google("").as_bytes()[..200]).contains("ends before </feedback>"));
    assert!(refused(&format!("<feedback>{}x{}</feedback>", "<a>".repeat(20), "</a>".repeat(20)).into_bytes()).contains("nested too deeply"));
    assert!(refused(google(&format!("<record><row><source_ip>{}</source_ip></row></record>", "1".repeat(5000))).as_bytes()).contains("longer than 1024 bytes"));
    assert!(refused(&gzip(b"<feedback")[..10]).contains("gzip: cannot decompress"));
    assert!(refused(b"PK\x03\x04short").contains("zip: truncated"));
    let many = "<record><row><source_ip>192.0.2.1</source_ip><count>1</count></row></record>".repeat(aggregate::MAX_RECORDS + 1);
    assert!(refused(google(&many).as_bytes()).contains("more than 100000 records"));
}

fn mail(content_type: &str, body: &str) -> Vec<u8> {
    format!("From: noreply-dmarc-support@google.com\r\nTo: dmarc@reports.test\r\nSubject: Report domain: shop.example\r\nMIME-Version: 1.0\r\nContent-Type: {content_type}\r\n\r\n{body}").into_bytes()
}

#[test]
fn reports_arrive_by_mail_as_attachments_or_feedback_reports() {
    let b64 = base64::engine::general_purpose::STANDARD;
    let attachment = b64.encode(gzip(google(&record("192.0.2.1", 5, "none", "pass", "fail")).as_bytes()));
    let body = format!(
        "--b\r\nContent-Type: text/plain\r\n\r\nThis is an aggregate report from google.com.\r\n--b\r\nContent-Type: application/gzip\r\nContent-Transfer-Encoding: base64\r\n\
         Content-Disposition: attachment; filename=\"google.com!shop.example.xml.gz\"\r\n\r\n{attachment}\r\n--b--\r\n"
    );
    let reports = parse_mail(&mail("multipart/mixed; boundary=\"b\"", &body)).unwrap();
    assert_eq!(reports.len(), 1);
    assert_eq!(aggregate(Ok(reports[0].clone())).rows[0].count, 5);

    let arf = "--f\r\nContent-Type: text/plain\r\n\r\nA DMARC failure report.\r\n--f\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: auth-failure\r\nVersion: 1\r\n\
               User-Agent: reporter/1.0\r\nAuth-Failure: dmarc\r\nReported-Domain: shop.example\r\nSource-IP: 203.0.113.5\r\n\r\n--f\r\nContent-Type: text/rfc822-headers\r\n\r\n\
               From: spoof@shop.example\r\n\r\n--f--\r\n";
    let reports = parse_mail(&mail("multipart/report; report-type=feedback-report; boundary=\"f\"", arf)).unwrap();
    let Report::Failure(f) = &reports[0] else { panic!("{reports:?}") };
    assert_eq!((f.domain.as_str(), f.auth_failure.as_deref(), f.source_ip.map(|i| i.to_string())), ("shop.example", Some("dmarc"), Some("203.0.113.5".into())));

    let bad = "--f\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: auth-failure\r\nReported-Domain: sh<op>\r\n\r\n--f--\r\n";
    assert!(parse_mail(&mail("multipart/report; report-type=feedback-report; boundary=\"f\"", bad)).unwrap_err().0.contains("is not a domain name"));
    assert!(parse_mail(&mail("text/plain", "just a note")).unwrap_err().0.contains("no DMARC report in the message"));
}

/// What erasure relies on: nothing the relay keeps from a report names an address, even when
/// the report quotes the message (RFC 6591 `Original-Rcpt-To`, the original headers).
#[test]
fn failure_reports_leave_no_address_behind() {
    let arf = "--f\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: auth-failure\r\nVersion: 1\r\nAuth-Failure: dkim\r\n\
               Original-Mail-From: <gone@shop.example>\r\nOriginal-Rcpt-To: <gone@dest.test>\r\nReported-Domain: shop.example\r\nSource-IP: 203.0.113.5\r\n\r\n\
               --f\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: gone@shop.example\r\nTo: Gone@Dest.Test\r\n\r\n--f--\r\n";
    let reports = parse_mail(&mail("multipart/report; report-type=feedback-report; boundary=\"f\"", arf)).unwrap();
    let (metrics, sources, summaries) = (crate::metrics::Metrics::default(), record::Sources::default(), summary::Summaries::default());
    for r in &reports {
        record::record(&metrics, &sources, r);
        if let Report::Aggregate(a) = r {
            summaries.add(a);
        }
    }
    let kept = format!("{reports:?}{}{}", metrics.render(), summaries.json()).to_ascii_lowercase();
    assert!(kept.contains("shop.example") && !kept.contains("gone@"), "{kept}");
}

#[test]
fn source_series_are_capped_per_domain() {
    let metrics = crate::metrics::Metrics::default();
    let sources = record::Sources::default();
    let rows: String = (0..150).map(|i| record(&format!("192.0.2.{i}"), 2, "none", "pass", "pass")).collect();
    record::record(&metrics, &sources, &parse_upload(google(&rows).as_bytes()).unwrap());
    let text = metrics.render();
    assert_eq!(text.matches("cascade_relay_dmarc_source_messages_total{").count(), record::MAX_SOURCES + 1);
    assert!(text.contains(r#"cascade_relay_dmarc_source_messages_total{aligned="yes",domain="shop.example",source="other"} 100"#), "{text}");
    assert!(text.contains(r#"cascade_relay_dmarc_messages_total{disposition="none",dkim="pass",domain="shop.example",spf="pass"} 300"#));
}

/// A short, deterministic mutation run over the corpus on the stable toolchain (the coverage-
/// guided target is `fuzz/fuzz_targets/dmarc_report.rs`): no input may panic.
#[test]
fn mutated_reports_never_panic() {
    let g = google(&record("192.0.2.1", 4, "none", "pass", "fail"));
    let b64 = base64::engine::general_purpose::STANDARD;
    let mailed = mail("multipart/mixed; boundary=\"b\"", &format!("--b\r\nContent-Type: application/gzip\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--b--\r\n", b64.encode(gzip(g.as_bytes()))));
    let seeds = [g.clone().into_bytes(), gzip(g.as_bytes()), zip(g.as_bytes(), true, true), microsoft(&record("2001:db8::1", 1, "reject", "fail", "fail")).into_bytes(), mailed];
    let mut m = crate::mutate::Mutator::default();
    for seed in &seeds {
        for _ in 0..10_000 {
            let input = m.mutate(seed);
            let _ = parse_upload(&input);
            let _ = parse_mail(&input);
        }
    }
}

/// A report wrapped in an XML Schema element, as some large providers send it.
fn schema_wrapped(records: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<xs:schema xmlns:xs=\"http://www.w3.org/2001/XMLSchema\">\n<feedback>\n<report_metadata><org_name>mail.example</org_name><report_id>42</report_id>\
         <date_range><begin>1800000000</begin><end>1800086399</end></date_range></report_metadata>\
         <policy_published><domain>shop.example</domain><p>none</p></policy_published>\n{records}</feedback>\n</xs:schema>\n"
    )
}

/// A report whose free-text fields hold Latin-1 bytes (not UTF-8).
fn latin1(records: &str) -> Vec<u8> {
    let mut xml = google(records).replace("<org_name>google.com</org_name>", "<org_name>T\u{1}l\u{1}com</org_name><extra_contact_info>r\u{1}ception</extra_contact_info>").into_bytes();
    for b in xml.iter_mut().filter(|b| **b == 1) {
        *b = 0xe9; // é in ISO-8859-1
    }
    xml
}

#[test]
fn reports_shaped_like_real_reporters_are_read_and_the_repair_counted() {
    let rows = record("192.0.2.1", 12, "none", "pass", "fail");
    let b64 = base64::engine::general_purpose::STANDARD;
    for (xml, repair) in [(schema_wrapped(&rows).into_bytes(), aggregate::Repair::SchemaWrapper), (latin1(&rows), aggregate::Repair::InvalidUtf8)] {
        let body = format!("--b\r\nContent-Type: application/zip\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--b--\r\n", b64.encode(zip(&xml, true, false)));
        let mailed = parse_mail(&mail("multipart/mixed; boundary=\"b\"", &body)).unwrap().remove(0);
        for report in [parse_upload(&xml), parse_upload(&gzip(&xml)), parse_upload(&zip(&xml, true, true)), Ok(mailed)] {
            let a = aggregate(report);
            assert_eq!((a.domain.as_str(), a.rows.len(), a.rows[0].count), ("shop.example", 1, 12));
            assert_eq!(a.repairs, vec![repair]);
        }
    }
    assert_eq!(aggregate(parse_upload(latin1(&rows).as_slice())).org_name, "T\u{fffd}l\u{fffd}com");
    let metrics = crate::metrics::Metrics::default();
    record::record(&metrics, &Default::default(), &parse_upload(schema_wrapped(&rows).as_bytes()).unwrap());
    assert!(metrics.render().contains("cascade_relay_dmarc_report_repairs_total{repair=\"schema_wrapper\"} 1"));
    // A well-formed report needs no repair.
    assert!(aggregate(parse_upload(google(&rows).as_bytes())).repairs.is_empty());
}

#[test]
fn what_is_not_a_report_stays_refused_even_wrapped() {
    let rows = record("192.0.2.1", 1, "none", "pass", "pass");
    assert!(refused(b"<xs:schema xmlns:xs=\"http://www.w3.org/2001/XMLSchema\"><xs:element name=\"feedback\"/></xs:schema>").contains("the root element is <element>, not <feedback>"));
    assert!(refused(b"<xs:schema xmlns:xs=\"x\"></xs:schema>").contains("policy_published/domain is missing"));
    assert!(refused(b"<feedback/>").contains("policy_published/domain is missing"));
    assert!(refused(schema_wrapped(&rows).replace("</xs:schema>\n", "</xs:schema><feedback/>").as_bytes()).contains("<feedback> after the end of the report"));
    assert!(refused(format!("<html>{}</html>", google(&rows).trim_start_matches("<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n")).as_bytes()).contains("the root element is <html>"));
    assert!(refused(b"<xs:schema><xs:schema><feedback/></xs:schema></xs:schema>").contains("the root element is <schema>"));
    let mut binary = vec![0xff; 64];
    binary.extend_from_slice(b"<feedback>");
    assert!(!refused(&binary).is_empty());
}
