//! DMARC report summaries end to end without a cluster: a real relay takes an aggregate report
//! over HTTP (API key with `dmarc:upload`), and the operator's RelayPool controller, against the
//! real API server, shows the report window's pass rate and failing sources in the
//! SendingDomain's status.

mod support;

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const REPORT: &str = r#"<?xml version="1.0"?><feedback><report_metadata><org_name>google.com</org_name><report_id>r1</report_id>
<date_range><begin>1800000000</begin><end>1800086399</end></date_range></report_metadata>
<policy_published><domain>shop.example</domain><p>reject</p></policy_published>
<record><row><source_ip>192.0.2.1</source_ip><count>7</count><policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>pass</spf></policy_evaluated></row></record>
<record><row><source_ip>203.0.113.9</source_ip><count>2</count><policy_evaluated><disposition>reject</disposition><dkim>fail</dkim><spf>fail</spf></policy_evaluated></row></record>
</feedback>"#;

async fn post(port: u16, user: &str, password: &str, body: &[u8]) -> String {
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let head = format!("POST /dmarc/reports HTTP/1.1\r\nHost: relay\r\nAuthorization: Basic {auth}\r\nContent-Length: {}\r\n\r\n", body.len());
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test]
async fn report_summaries_reach_the_sending_domain_status() {
    let b = support::relay::Bundle::render("dmarc", |y| y.replace("  - smtp:submit\n", "  - smtp:submit\n  - dmarc:upload\n"));
    let _relay = b.serve(&[], &[]);
    let (http, admin) = (b.http, b.admin);
    let Some(op) = support::operator::start_with(|ctx| ctx.relay_http = Some(vec![([127, 0, 0, 1], admin).into()])).await else { return };
    let answer = support::operator::until("the relay's HTTP listener", || async {
        let out = tokio::time::timeout(Duration::from_secs(5), post(http, &b.user, &b.password, REPORT.as_bytes())).await.ok()?;
        Some(out).filter(|o| !o.is_empty())
    })
    .await;
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");

    support::world::pool(&op.client, serde_json::json!({"dnsVerification": "warn"})).await;
    let domains = support::world::domain(&op.client, serde_json::json!({})).await;
    let summary = support::operator::until("the report summary in the status", || async { domains.get("shop").await.ok()?.status?.dmarc_reports }).await;
    assert_eq!((summary.messages, summary.pass_rate.as_str()), (9, "77.8%"));
    assert_eq!(summary.failing_sources, ["203.0.113.9 (2)"]);
    assert_eq!((summary.window_begin.as_str(), summary.window_end.as_str()), ("2027-01-15T08:00:00Z", "2027-01-16T07:59:59Z"));

    // The relay's audit anchor is kept in the pool's status, outside the relay's volume.
    let pools: kube::Api<cascade_crds::v1alpha1::RelayPool> = kube::Api::namespaced(op.client.clone(), "cascade-system");
    let anchors = support::operator::until("the relay's audit anchor in the pool status", || async { Some(pools.get("main").await.ok()?.status?.audit_anchors).filter(|a| !a.is_empty()) }).await;
    assert_eq!(anchors.len(), 1, "{anchors:?}");
    assert!(anchors[0].seq >= 1 && anchors[0].mac.len() == 64 && !anchors[0].relay.is_empty(), "{anchors:?}");
}
