"""DMARC reports into the relay: uploaded over HTTP with an API key holding `dmarc:upload`, or
mailed (submitted) to the pool's report address; they become per-domain series. A tenant cannot
report on another tenant's domain; malformed and hostile reports get a clear refusal."""
import base64
import email.policy
import gzip
import io
import smtplib
import urllib.error
import urllib.request
import zipfile
from email.message import EmailMessage

import pytest

from conftest import standard_setup
from helpers import submit_client

REPORT_ADDRESS = "dmarc@reports.test"


def report(domain="example.test", rows=(("192.0.2.1", 7, "pass", "pass"), ("203.0.113.9", 2, "fail", "fail"))):
    records = "".join(
        f"<record><row><source_ip>{ip}</source_ip><count>{n}</count><policy_evaluated><disposition>none</disposition>"
        f"<dkim>{d}</dkim><spf>{s}</spf></policy_evaluated></row><identifiers><header_from>{domain}</header_from></identifiers></record>"
        for ip, n, d, s in rows
    )
    return (f'<?xml version="1.0" encoding="UTF-8" ?><feedback><report_metadata><org_name>google.com</org_name><report_id>r1</report_id>'
            f"<date_range><begin>1800000000</begin><end>1800086399</end></date_range></report_metadata>"
            f"<policy_published><domain>{domain}</domain><p>reject</p></policy_published>{records}</feedback>").encode()


def tweak(cfg):
    # The dev key carries every scope, dmarc:upload included.
    return cfg + f"dmarcReportAddress: {REPORT_ADDRESS}\n"


@pytest.fixture
def setup(workdir, dns_server, cleanup):
    return standard_setup(workdir, dns_server, cleanup, tweak=tweak)


def upload(relay, body, user=None, password=None):
    req = urllib.request.Request(f"https://127.0.0.1:{relay.http}/dmarc/reports", data=body, method="POST")
    cred = f"{user or relay.creds['username']}:{password or relay.creds['password']}"
    req.add_header("Authorization", "Basic " + base64.b64encode(cred.encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=10, context=relay.https_context()) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_http_upload_of_aggregate_reports(setup):
    dns, sink, relay = setup
    code, text = upload(relay, gzip.compress(report()))
    assert code == 202, text
    assert "aggregate report r1 from google.com for example.test: 2 record(s), 9 message(s)" in text
    m = relay.metrics()
    assert 'cascade_relay_dmarc_messages_total{disposition="none",dkim="pass",domain="example.test",spf="pass"} 7' in m
    assert 'cascade_relay_dmarc_source_messages_total{aligned="no",domain="example.test",source="203.0.113.9"} 2' in m
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("google.com!example.test!1800000000!1800086399.xml", report())
    assert upload(relay, buf.getvalue())[0] == 202

    code, text = upload(relay, report(domain="someone-else.test"))
    assert code == 403 and "not a domain of this key's tenant" in text
    code, text = upload(relay, b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "a">]><feedback>&a;</feedback>')
    assert code == 400 and "DOCTYPE declarations are not allowed" in text
    code, text = upload(relay, gzip.compress(b"\0" * (40 * 1024 * 1024)))
    assert code == 400 and "decompresses to more than 20 MiB" in text
    assert upload(relay, report(), password="wrong")[0] == 401
    assert 'cascade_relay_dmarc_reports_total{kind="unknown",result="refused"} 2' in relay.metrics()


def test_an_api_key_without_the_scope_cannot_upload(workdir, dns_server, cleanup):
    relay = standard_setup(workdir, dns_server, cleanup, tweak=lambda c: c.replace("  - dmarc:upload\n", "", 1))[2]
    code, text = upload(relay, report())
    assert code == 403 and "dmarc:upload" in text


def test_reports_mailed_to_the_report_address(setup):
    dns, sink, relay = setup
    msg = EmailMessage()
    msg["From"] = "Dev <dev@example.test>"
    msg["To"] = REPORT_ADDRESS
    msg["Subject"] = "Report domain: example.test Submitter: google.com"
    msg.set_content("This is an aggregate report from google.com.")
    msg.add_attachment(gzip.compress(report()), maintype="application", subtype="gzip", filename="google.com!example.test.xml.gz")
    c = submit_client(relay)
    c.mail("dev@example.test")
    c.rcpt(REPORT_ADDRESS)
    code, text = c.data(msg.as_bytes(policy=email.policy.SMTP))
    assert (code, text.decode().startswith("2.6.0 DMARC report accepted: aggregate report r1")) == (250, True), text

    arf = (b"From: dev@example.test\r\nTo: " + REPORT_ADDRESS.encode() + b"\r\nSubject: failure\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/report; report-type=feedback-report; boundary=\"f\"\r\n\r\n--f\r\nContent-Type: text/plain\r\n\r\nDMARC failure.\r\n"
           b"--f\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: auth-failure\r\nAuth-Failure: dmarc\r\nReported-Domain: example.test\r\nSource-IP: 203.0.113.9\r\n\r\n--f--\r\n")
    c.mail("dev@example.test")
    c.rcpt(REPORT_ADDRESS)
    assert c.data(arf)[0] == 250
    c.mail("dev@example.test")
    c.rcpt(REPORT_ADDRESS)
    code, text = c.data(b"From: dev@example.test\r\nSubject: nothing\r\n\r\njust text\r\n")
    assert code == 550 and text.decode().startswith("5.6.0 DMARC report refused: no DMARC report in the message")
    # The report address takes a message of its own.
    c.mail("dev@example.test")
    c.rcpt("rcpt@dest.test")
    assert c.docmd("RCPT", f"TO:<{REPORT_ADDRESS}>")[0] == 452
    c.quit()
    m = relay.metrics()
    assert 'cascade_relay_dmarc_failure_reports_total{domain="example.test",failure="dmarc"} 1' in m
    assert 'cascade_relay_dmarc_messages_total{disposition="none",dkim="fail",domain="example.test",spf="fail"} 2' in m
    assert not sink.messages, "reports are consumed, never delivered"


def test_large_uploads_do_not_stall_smtp_sessions(setup):
    """Four ~19 MiB reports (gzip) uploaded at once: decompressing and parsing run on the
    blocking pool, so an open SMTP session keeps answering while they are in flight."""
    import threading
    import time
    dns, sink, relay = setup
    row = ("192.0.2.1", 1, "pass", "pass")
    big = gzip.compress(report(rows=[row] * 80_000), compresslevel=1)
    c = submit_client(relay)
    done = []
    threads = [threading.Thread(target=lambda: done.append(upload(relay, big))) for _ in range(4)]
    started = time.monotonic()
    for t in threads:
        t.start()
    time.sleep(0.2)
    answered_during = []
    for _ in range(20):
        if len(done) == len(threads):
            break
        t0 = time.monotonic()
        assert c.noop() == (250, b"2.0.0 OK")
        answered_during.append(time.monotonic() - t0)
        time.sleep(0.05)
    for t in threads:
        t.join(60)
    elapsed = time.monotonic() - started
    c.quit()
    assert [code for code, _ in done] == [202] * 4, done
    # The session answered while the uploads were still being parsed, each time promptly
    # compared with how long the uploads took.
    assert answered_during, f"the uploads ({elapsed:.2f}s) ended before the session was asked"
    # (On the async workers, a NOOP here waited about a third of the whole upload time.)
    assert max(answered_during) < elapsed / 8, (answered_during, elapsed)


def schema_wrapped(domain="example.test"):
    """`<feedback>` inside `<xs:schema>`, as some large mailbox providers send it."""
    inner = report(domain).split(b"?>", 1)[1]
    return b'<?xml version="1.0" encoding="UTF-8"?>\n<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">\n' + inner + b"\n</xs:schema>\n"


def latin1(domain="example.test"):
    """Free-text fields in ISO-8859-1, not UTF-8."""
    return report(domain).replace(b"<org_name>google.com</org_name>", "<org_name>Télécom</org_name><extra_contact_info>réception</extra_contact_info>".encode("latin-1"))


def zipped(xml):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("provider!example.test!1800000000!1800086399.xml", xml)
    return buf.getvalue()


def test_reports_shaped_like_real_reporters_are_accepted_and_repairs_counted(setup):
    """Accepted as parsedmarc accepts them (gzip, zip, inside mail); each repair is counted; what
    is not a report is still refused."""
    dns, sink, relay = setup
    for xml in (schema_wrapped(), latin1()):
        for body in (gzip.compress(xml), zipped(xml)):
            code, text = upload(relay, body)
            assert code == 202, text
        msg = EmailMessage()
        msg["From"] = "Dev <dev@example.test>"
        msg["To"] = REPORT_ADDRESS
        msg["Subject"] = "Report domain: example.test"
        msg.set_content("Aggregate report attached.")
        msg.add_attachment(zipped(xml), maintype="application", subtype="zip", filename="report.zip")
        c = submit_client(relay)
        c.mail("dev@example.test")
        c.rcpt(REPORT_ADDRESS)
        code, text = c.data(msg.as_bytes(policy=email.policy.SMTP))
        c.quit()
        assert code == 250, text
    m = relay.metrics()
    assert 'cascade_relay_dmarc_report_repairs_total{repair="schema_wrapper"} 3' in m
    assert 'cascade_relay_dmarc_report_repairs_total{repair="invalid_utf8"} 3' in m
    not_a_report = b'<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"><xs:element name="feedback"/></xs:schema>'
    code, text = upload(relay, gzip.compress(not_a_report))
    assert code == 400 and "not a DMARC aggregate report" in text, (code, text)
