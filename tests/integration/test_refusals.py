"""What the relay refuses, each with its RFC reply, against the running relay."""
import smtplib
import socket

import pytest

from conftest import standard_setup
from helpers import message, submit_client, tls_context


@pytest.fixture
def relay(workdir, dns_server, cleanup):
    return standard_setup(workdir, dns_server, cleanup)[2]


def test_auth_before_starttls_is_refused(relay):
    r = relay.swaks(tls=False)
    assert r.returncode != 0
    assert "530 5.7.0 Must issue a STARTTLS command first" in r.stdout + r.stderr or "Host did not advertise authentication" in r.stdout + r.stderr
    c = smtplib.SMTP("127.0.0.1", relay.submission, timeout=10)
    code, caps = c.ehlo("client.test")
    assert b"STARTTLS" in caps and b"AUTH" not in caps
    assert c.docmd("AUTH", "PLAIN AGZvbwBiYXI=") == (530, b"5.7.0 Must issue a STARTTLS command first")
    assert c.docmd("MAIL", "FROM:<dev@example.test>")[0] == 530
    c.quit()


def test_wrong_password_is_refused(relay):
    c = submit_client(relay, login=False)
    with pytest.raises(smtplib.SMTPAuthenticationError) as e:
        c.login(relay.creds["username"], "cascade_sk_not-the-secret")
    assert e.value.smtp_code == 535 and e.value.smtp_error.startswith(b"5.7.8")
    c.quit()


def test_foreign_envelope_sender_is_refused(relay):
    r = relay.swaks(sender="ceo@bank.test")
    assert "550 5.7.1 Sender address domain is not authorized" in r.stdout
    assert r.returncode != 0


def test_foreign_from_header_is_refused(relay):
    c = submit_client(relay)
    with pytest.raises(smtplib.SMTPDataError) as e:
        c.sendmail("dev@example.test", ["rcpt@dest.test"], message(sender="ceo@bank.test"))
    assert e.value.smtp_code == 550 and b"From: header domain is not authorized" in e.value.smtp_error
    c.quit()


def test_bare_lf_smuggling_payload_is_refused(relay):
    c = submit_client(relay)
    assert c.mail("dev@example.test")[0] == 250
    assert c.rcpt("rcpt@dest.test")[0] == 250
    assert c.docmd("DATA")[0] == 354
    payload = (b"From: dev@example.test\r\nSubject: s\r\n\r\nhello\n.\nMAIL FROM:<dev@example.test>\r\n"
               b"RCPT TO:<victim@dest.test>\r\nDATA\r\nFrom: dev@example.test\r\n\r\nsmuggled\r\n.\r\n")
    c.sock.sendall(payload)
    code, text = c.getreply()
    assert code == 550 and b"bare LF or CR" in text
    assert c.getreply()[0] == 421
    with pytest.raises(smtplib.SMTPServerDisconnected):
        c.noop()
    assert relay.metric('cascade_relay_messages_accepted_total') == 0


def test_a_domain_the_operator_refuses_gets_550_with_the_reason(workdir, dns_server, cleanup):
    """The operator sets `refuse` on a domain whose DKIM record is not verified in DNS (with
    `dnsVerification: enforce`); the client learns why."""
    why = "its DKIM record is not verified in DNS (no DKIM record at cascade1._domainkey.example.test.)"
    tweak = lambda cfg: cfg.replace("  - name: example.test\n", f"  - name: example.test\n    refuse: '{why}'\n", 1)
    relay = standard_setup(workdir, dns_server, cleanup, tweak=tweak)[2]
    c = submit_client(relay)
    code, text = c.docmd("MAIL", "FROM:<dev@example.test>")
    assert (code, text.decode()) == (550, f"5.7.1 Not sending for example.test: {why}")
    c.quit()


MALFORMED_HEADERS = [
    # A body that starts without the empty line after the headers.
    (b"From: dev@example.test\r\nSubject: s\r\nhello, this is the body\r\n", 3, b"neither a header field nor a folded continuation"),
    (b"From: dev@example.test\r\nthis line has no colon\r\n\r\nbody\r\n", 2, b"neither a header field nor a folded continuation"),
    (b" From: dev@example.test\r\n\r\nbody\r\n", 1, b"a continuation with no field before it"),
    (b"From: dev@example.test\r\nBad Name: x\r\n\r\nbody\r\n", 2, b"neither a header field nor a folded continuation"),
]


@pytest.mark.parametrize("body,line,what", MALFORMED_HEADERS, ids=["no-empty-line", "no-colon", "leading-continuation", "space-in-name"])
def test_a_malformed_header_section_is_refused_with_its_line(relay, body, line, what):
    """Such a message would be signed as it is and fail DKIM at strict verifiers (python3-dkim
    cannot parse it); it is refused at the end of DATA instead, naming the line."""
    c = submit_client(relay)
    with pytest.raises(smtplib.SMTPDataError) as e:
        c.sendmail("dev@example.test", ["rcpt@dest.test"], body)
    assert e.value.smtp_code == 550
    assert e.value.smtp_error.startswith(b"5.6.0 Message header line %d is " % line + what)
    # The session stays usable: a well-formed message goes through.
    c.sendmail("dev@example.test", ["rcpt@dest.test"], message(subject="well formed"))
    c.quit()
    assert relay.metric('cascade_relay_messages_rejected_total{reason="header_section"}') == 1
