"""`cascade-operator check-dns` against a real DNS server (Knot on loopback): a correct domain
passes; missing records, a wrong DKIM key, two SPF records and a weak DMARC policy fail with the
reason and what to publish; a CNAME-delegated DKIM record and a DMARC record inherited by a
subdomain pass."""
import re
import subprocess

from conftest import BINARY

OPERATOR = BINARY.parent / "cascade-operator"
KEY = "v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAtestkey"
SPF = '"v=spf1 include:_spf.relay.test -all"'
DKIM = f'"{KEY}"'
DMARC = '"v=DMARC1; p=reject; rua=mailto:dmarc@reports.test"'


def resources(domains, return_paths=None):
    docs = []
    for d in domains:
        name = d.replace(".", "-")
        rp = (return_paths or {}).get(d)
        rp_line = f"\n  returnPath: {rp}" if rp else ""
        docs.append(f"""apiVersion: cascade-mail.com/v1alpha1
kind: SendingDomain
metadata: {{name: {name}, namespace: shop}}
spec:
  domain: {d}
  relayPool: {{name: main, namespace: cascade-system}}
  dkim: {{keys: [{name}-key]}}
  spf: {{include: _spf.relay.test}}
  dmarc: {{policy: reject}}{rp_line}
---
apiVersion: cascade-mail.com/v1alpha1
kind: DkimKey
metadata: {{name: {name}-key, namespace: shop}}
spec: {{domain: {d}, selector: s1}}
status: {{txtValue: "{KEY}"}}
""")
    return "---\n".join(docs)


def run_check(workdir, dns, domains, return_paths=None):
    f = workdir / "resources.yaml"
    f.write_text(resources(domains, return_paths))
    r = subprocess.run([str(OPERATOR), "check-dns", "-f", str(f), "--nameserver", f"127.0.0.1:{dns.port}"], capture_output=True, text=True, timeout=120)
    results, current = {}, None
    for line in r.stdout.splitlines():
        if line.startswith("SendingDomain "):
            current = line.split("(")[1].rstrip(")")
        elif line.strip():
            type_, status, reason, message = line.split(None, 3)
            results[(current, type_)] = (status, reason, message)
    return r, results


def test_check_dns_pass_and_fail_cases(workdir, dns_server):
    dns = dns_server({
        "ok.example": [f"@ TXT {SPF}", f"s1._domainkey TXT {DKIM}", f"_dmarc TXT {DMARC}",
                       f"mail TXT {SPF}", f"s1._domainkey.mail TXT {DKIM}"],
        "missing.example": [],
        "wrongkey.example": [f"@ TXT {SPF}", 's1._domainkey TXT "v=DKIM1; k=rsa; p=SOMEOTHERKEY"', f"_dmarc TXT {DMARC}"],
        "twospf.example": [f"@ TXT {SPF}", '@ TXT "v=spf1 mx -all"', f"s1._domainkey TXT {DKIM}", f"_dmarc TXT {DMARC}"],
        "pnone.example": [f"@ TXT {SPF}", f"s1._domainkey TXT {DKIM}", '_dmarc TXT "v=DMARC1; p=none"'],
        "cname.example": [f"@ TXT {SPF}", "s1._domainkey CNAME s1.keys.provider.test.", f"_dmarc TXT {DMARC}"],
        "provider.test": [f"s1.keys TXT {DKIM}"],
    })
    domains = ["ok.example", "mail.ok.example", "missing.example", "wrongkey.example", "twospf.example", "pnone.example", "cname.example"]
    r, res = run_check(workdir, dns, domains)
    assert r.returncode == 1, r.stdout + r.stderr
    for d in ["ok.example", "mail.ok.example", "cname.example"]:
        for t in ["SPFVerified", "DKIMVerified", "DMARCVerified"]:
            assert res[(d, t)][0] == "True", (d, t, res[(d, t)])
    assert "inherited from _dmarc.ok.example" in res[("mail.ok.example", "DMARCVerified")][2]
    assert res[("missing.example", "SPFVerified")][:2] == ("False", "SPFMissing")
    assert 'publish TXT at missing.example. "v=spf1 include:_spf.relay.test -all"' in res[("missing.example", "SPFVerified")][2]
    assert res[("missing.example", "DKIMVerified")][:2] == ("False", "DKIMRecordMissing")
    assert KEY in res[("missing.example", "DKIMVerified")][2]
    assert res[("missing.example", "DMARCVerified")][:2] == ("False", "DMARCMissing")
    assert res[("wrongkey.example", "DKIMVerified")][:2] == ("False", "DKIMKeyMismatch")
    assert res[("twospf.example", "SPFVerified")][:2] == ("False", "SPFMultiple")
    assert res[("pnone.example", "DMARCVerified")][:2] == ("False", "DMARCPolicyWeaker")


def test_check_dns_passes_when_everything_is_published(workdir, dns_server):
    records = [f"@ TXT {SPF}", f"s1._domainkey TXT {DKIM}", f"_dmarc TXT {DMARC}"]
    r, res = run_check(workdir, dns_server({"ok.example": records}), ["ok.example"])
    # Everything but the ownership challenge, which names the record this claim must publish.
    assert r.returncode == 1 and res[("ok.example", "DomainVerified")][:2] == ("False", "ChallengeMissing"), r.stdout
    token = re.search(r'publish TXT _cascade-challenge\.ok\.example\. "(cascade-verification=[0-9a-f]{32})"', res[("ok.example", "DomainVerified")][2]).group(1)
    r, res = run_check(workdir, dns_server({"ok.example": records + [f'_cascade-challenge TXT "{token}"']}), ["ok.example"])
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(res) == 4 and res[("ok.example", "DomainVerified")][:2] == ("True", "ChallengeVerified"), res


def test_check_dns_says_when_dns_cannot_answer(workdir):
    f = workdir / "resources.yaml"
    f.write_text(resources(["ok.example"]))
    # Nothing listens there: every check is Unknown, not a verdict.
    r = subprocess.run([str(OPERATOR), "check-dns", "-f", str(f), "--nameserver", "127.0.0.1:9"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    assert r.stdout.count("Unknown") == 4 and "DNSError" in r.stdout, r.stdout


def test_a_return_path_domain_is_checked_for_spf(workdir, dns_server):
    dns = dns_server({"ok.example": [f"@ TXT {SPF}", f"s1._domainkey TXT {DKIM}", f"_dmarc TXT {DMARC}", f"bounces TXT {SPF}"],
                      "other.example": [f"@ TXT {SPF}", f"s1._domainkey TXT {DKIM}", f"_dmarc TXT {DMARC}"]})
    r, res = run_check(workdir, dns, ["ok.example", "other.example"], {"ok.example": "bounces.ok.example", "other.example": "bounces.other.example"})
    assert res[("ok.example", "ReturnPathVerified")][0] == "True", res
    assert res[("other.example", "ReturnPathVerified")][:2] == ("False", "SPFMissing")
    assert "bounces.other.example" in res[("other.example", "ReturnPathVerified")][2]
