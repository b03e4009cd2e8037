//! DMARC report summaries end to end without a cluster: a real relay takes an aggregate report
//! over HTTPS (curl; API key with `dmarc:upload`), and the operator's RelayPool controller, against the
//! real API server, shows the report window's pass rate and failing sources in the
//! SendingDomain's status.

mod support;

use std::time::Duration;

const REPORT: &str = r#"<?xml version="1.0"?><feedback><report_metadata><org_name>google.com</org_name><report_id>r1</report_id>
<date_range><begin>1800000000</begin><end>1800086399</end></date_range></report_metadata>
<policy_published><domain>shop.example</domain><p>reject</p></policy_published>
<record><row><source_ip>192.0.2.1</source_ip><count>7</count><policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>pass</spf></policy_evaluated></row></record>
<record><row><source_ip>203.0.113.9</source_ip><count>2</count><policy_evaluated><disposition>reject</disposition><dkim>fail</dkim><spf>fail</spf></policy_evaluated></row></record>
</feedback>"#;

/// Uploads `body` with curl over HTTPS, verifying the relay's certificate (issued to the
/// relay's `hostname`); returns `<status> <body>`, or an empty string when the relay does not
/// answer yet.
async fn post(b: &support::relay::Bundle, body: &'static [u8]) -> String {
    let host = b.yaml.lines().find_map(|l| l.strip_prefix("hostname: ")).unwrap().trim().trim_matches('"').to_string();
    let (cert, port, auth) = (b.dir.join("relay/tls.crt"), b.http, format!("{}:{}", b.user, b.password));
    let run = move || {
        use std::io::Write;
        let mut curl = std::process::Command::new("curl")
            .args(["-sS", "--max-time", "5", "--cacert"])
            .arg(&cert)
            .args(["--resolve", &format!("{host}:{port}:127.0.0.1"), "-u", &auth, "--data-binary", "@-", "-w", " %{http_code}", &format!("https://{host}:{port}/dmarc/reports")])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        curl.stdin.take().unwrap().write_all(body).unwrap();
        String::from_utf8_lossy(&curl.wait_with_output().unwrap().stdout).into_owned()
    };
    let text = tokio::task::spawn_blocking(run).await.unwrap();
    match text.rsplit_once(' ') {
        Some((body, code)) if code != "000" => format!("{code} {body}"),
        _ => String::new(),
    }
}

#[tokio::test]
async fn report_summaries_reach_the_sending_domain_status() {
    let b = support::relay::Bundle::render("dmarc", |y| y.replace("  - smtp:submit\n", "  - smtp:submit\n  - dmarc:upload\n"));
    let admin = b.admin;
    let Some(op) = support::operator::start_with(|ctx| ctx.relay_http = Some(vec![([127, 0, 0, 1], admin).into()])).await else { return };
    // The operator reads the relay over the pool's mutual TLS: the relay runs the pool's
    // certificates from the bundle.
    support::world::pool(&op.client, serde_json::json!({"dnsVerification": "warn"})).await;
    b.adopt_admin_authority(&op.secrets).await;
    let _relay = b.serve(&[], &[]);
    let answer = support::operator::until("the relay's HTTP listener", || async {
        let out = tokio::time::timeout(Duration::from_secs(5), post(&b, REPORT.as_bytes())).await.ok()?;
        Some(out).filter(|o| !o.is_empty())
    })
    .await;
    assert!(answer.starts_with("202 "), "{answer}");

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
