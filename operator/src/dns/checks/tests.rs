//! Each check against the answers DNS can give, pass and fail.

use super::*;

fn found(records: &[&str]) -> Lookup {
    Lookup::Found(records.iter().map(|r| r.to_string()).collect())
}

fn spf_expect(include: Option<&str>, egress: &[&str]) -> SpfExpectation {
    SpfExpectation { include: include.map(String::from), egress: egress.iter().map(|e| e.to_string()).collect() }
}

fn verdict(c: &Check) -> (Option<bool>, &str) {
    (c.passed, c.reason.as_str())
}

/// An SPF case: what is expected, what DNS answers, and the verdict with its reason.
type SpfCase<'a> = (&'a SpfExpectation, Lookup, (Option<bool>, &'a str));

#[test]
fn spf_cases() {
    let inc = spf_expect(Some("_spf.relay.test"), &[]);
    let ip = spf_expect(None, &["192.0.2.0/28", "2001:db8::1"]);
    let cases: Vec<SpfCase> = vec![
        (&inc, found(&["v=spf1 include:_spf.relay.test -all"]), (Some(true), "SPFVerified")),
        (&inc, found(&["google-site-verification=x", "v=spf1 mx include:_spf.relay.test ~all"]), (Some(true), "SPFVerified")),
        (&inc, Lookup::Missing, (Some(false), "SPFMissing")),
        (&inc, found(&["v=spf1 -all", "v=spf1 include:_spf.relay.test -all"]), (Some(false), "SPFMultiple")),
        (&inc, found(&["v=spf1 include:_spf.relay.test +all"]), (Some(false), "SPFAllowsAll")),
        (&inc, found(&["v=spf1 include:other.test -all"]), (Some(false), "SPFNotAuthorized")),
        (&inc, found(&["v=spf1 include:_spf.relay.test -al"]), (Some(false), "SPFSyntax")),
        (&inc, found(&["v=spf1 ip4 include:_spf.relay.test -all"]), (Some(false), "SPFSyntax")),
        (
            &inc,
            found(&["v=spf1 a mx ptr exists:x.test include:a.test include:b.test include:c.test include:d.test include:e.test include:f.test include:_spf.relay.test -all"]),
            (Some(false), "SPFTooManyLookups"),
        ),
        (&inc, Lookup::Failed("timed out".into()), (None, "DNSError")),
        (&ip, found(&["v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 -all"]), (Some(true), "SPFVerified")),
        (&ip, found(&["v=spf1 ip4:192.0.2.0/29 ip6:2001:db8::1 -all"]), (Some(false), "SPFNotAuthorized")),
        (&ip, found(&["v=spf1 ip4:192.0.2.0/24 -all"]), (Some(false), "SPFNotAuthorized")),
        (&ip, found(&["v=spf1 -ip4:192.0.2.0/24 ip6:2001:db8::/32 -all"]), (Some(false), "SPFNotAuthorized")),
    ];
    for (expect, answer, want) in cases {
        let c = spf("shop.example", expect, &answer);
        assert_eq!(verdict(&c), want, "{answer:?}: {}", c.message);
    }
    let missing = spf("shop.example", &inc, &Lookup::Missing);
    assert_eq!(missing.message, r#"no v=spf1 record at shop.example: publish TXT at shop.example. "v=spf1 include:_spf.relay.test -all""#);
    let unauthorized = spf("shop.example", &ip, &found(&["v=spf1 ip4:192.0.2.0/24 -all"]));
    assert!(unauthorized.message.ends_with("add ip6:2001:db8::1"), "{}", unauthorized.message);
}

#[test]
fn dkim_cases() {
    let want = "v=DKIM1; k=rsa; p=MIIBIjANBgkq";
    let name = "cascade1._domainkey.shop.example.";
    let cases = vec![
        (Some(want), found(&["v=DKIM1; k=rsa; p=MIIBIjANBgkq"]), (Some(true), "DKIMVerified")),
        (Some(want), found(&["v=DKIM1; k=rsa; p=MIIBIj ANBgkq"]), (Some(true), "DKIMVerified")),
        (Some(want), found(&["v=DKIM1; k=rsa; p=OTHERKEY"]), (Some(false), "DKIMKeyMismatch")),
        (Some(want), found(&["v=DKIM1; k=rsa; p="]), (Some(false), "DKIMKeyRevoked")),
        (Some(want), Lookup::Missing, (Some(false), "DKIMRecordMissing")),
        (Some(want), found(&["unrelated"]), (Some(false), "DKIMRecordMissing")),
        (None, found(&["v=DKIM1; p=ANY"]), (Some(true), "DKIMRecordFound")),
        (Some(want), Lookup::Failed("SERVFAIL".into()), (None, "DNSError")),
    ];
    for (expected, answer, verdict_want) in cases {
        let c = dkim_key(name, expected, &answer);
        assert_eq!(verdict(&c), verdict_want, "{answer:?}: {}", c.message);
    }
    assert!(dkim_key(name, Some(want), &Lookup::Missing).message.ends_with(&format!("publish TXT at {name} {want:?}")));
    // Every signing key (RSA and Ed25519 together) must have its record.
    let ok = dkim_key(name, Some(want), &found(&[want]));
    let missing = dkim_key("ed1._domainkey.shop.example.", Some("v=DKIM1; k=ed25519; p=ED"), &Lookup::Missing);
    assert_eq!(dkim_domain("shop.example", &[("rsa".into(), ok.clone())]).passed, Some(true));
    let failed = dkim_domain("shop.example", &[("rsa".into(), ok), ("ed".into(), missing)]);
    assert!(failed.passed == Some(false) && failed.message.starts_with("DkimKey ed: no DKIM record at ed1"), "{}", failed.message);
    assert_eq!(dkim_domain("shop.example", &[]).reason, "DkimKeyPending");
}

fn dmarc_expect(policy: DmarcPolicy, rua: Option<&str>) -> DmarcExpectation {
    DmarcExpectation { policy, rua: rua.map(String::from) }
}

#[test]
fn dmarc_tree_walk_names() {
    assert_eq!(dmarc_names("mail.shop.example"), ["_dmarc.mail.shop.example", "_dmarc.shop.example"]);
    assert_eq!(dmarc_names("shop.example."), ["_dmarc.shop.example"]);
    assert_eq!(dmarc_names("a.b.c.d.e.f.g.h.i.j.example").len(), 8);
}

#[test]
fn dmarc_cases() {
    let reject = dmarc_expect(DmarcPolicy::Reject, None);
    let with_rua = dmarc_expect(DmarcPolicy::Quarantine, Some("mailto:dmarc@shop.example"));
    let at = |answers: Vec<Lookup>| -> Vec<(String, Lookup)> { dmarc_names("mail.shop.example").into_iter().zip(answers).collect() };
    let cases = vec![
        (&reject, at(vec![found(&["v=DMARC1; p=reject"])]), (Some(true), "DMARCVerified")),
        (&reject, at(vec![found(&["v=DMARC1; p=none; rua=mailto:x@shop.example"])]), (Some(false), "DMARCPolicyWeaker")),
        (&reject, at(vec![Lookup::Missing, found(&["v=DMARC1; p=reject; sp=reject"])]), (Some(true), "DMARCVerified")),
        (&reject, at(vec![Lookup::Missing, found(&["v=DMARC1; p=reject; sp=none"])]), (Some(false), "DMARCPolicyWeaker")),
        (&reject, at(vec![Lookup::Missing, Lookup::Missing]), (Some(false), "DMARCMissing")),
        (&reject, at(vec![found(&["v=DMARC1; p=reject", "v=DMARC1; p=none"])]), (Some(false), "DMARCMultiple")),
        (&reject, at(vec![Lookup::Failed("timeout".into())]), (None, "DNSError")),
        (&with_rua, at(vec![found(&["v=DMARC1; p=reject; rua=mailto:DMARC@shop.example"])]), (Some(true), "DMARCVerified")),
        (&with_rua, at(vec![found(&["v=DMARC1; p=quarantine; rua=mailto:other@shop.example"])]), (Some(false), "DMARCReportingMissing")),
    ];
    for (expect, answers, want) in cases {
        let c = dmarc("mail.shop.example", expect, &answers);
        assert_eq!(verdict(&c), want, "{answers:?}: {}", c.message);
    }
    let weaker = dmarc("mail.shop.example", &reject, &at(vec![Lookup::Missing, found(&["v=DMARC1; p=reject; sp=none"])]));
    assert!(weaker.message.contains("inherited from _dmarc.shop.example"), "{}", weaker.message);
    let ok = dmarc("mail.shop.example", &reject, &at(vec![found(&["v=DMARC1; p=reject; adkim=s"])]));
    assert_eq!(ok.message, "p=reject, DKIM alignment strict, SPF alignment relaxed, 0 aggregate report address(es)");
}
