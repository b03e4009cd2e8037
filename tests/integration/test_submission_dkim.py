"""swaks (STARTTLS + AUTH) -> relay -> MX lookup in a real DNS server -> aiosmtpd sink; the DKIM
signature verifies with python3-dkim against the record the relay published, fetched from DNS."""
import dkim

from conftest import standard_setup, wait_until


def dns_lookup(dns):
    def lookup(name, timeout=5):
        return dns.txt(name.decode().rstrip("."))
    return lookup


def test_signed_message_reaches_the_sink_and_verifies(workdir, dns_server, cleanup):
    dns, sink, relay = standard_setup(workdir, dns_server, cleanup)
    r = relay.swaks(header="Subject: first message")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "250 2.0.0 OK queued as" in r.stdout
    msgs = wait_until(lambda: sink.messages, 30, "delivery to the sink")
    mail_from, rcpts, data, _tls = msgs[0]
    assert mail_from == "dev@example.test" and rcpts == ["rcpt@dest.test"]
    assert data.startswith(b"DKIM-Signature: v=1; a=rsa-sha256;")
    assert b"\r\nReceived: from " in data
    assert dkim.verify(data, dnsfunc=dns_lookup(dns)), "python3-dkim rejected the signature"
    # A modified body must fail: the verification above is not vacuous.
    assert not dkim.verify(data.replace(b"This is a test mailing", b"This is a forged mailing"), dnsfunc=dns_lookup(dns))
    assert relay.metric("cascade_relay_messages_accepted_total") == 1
    wait_until(lambda: relay.metric("cascade_relay_recipients_delivered_total") == 1, 10, "delivered metric")


def test_implicit_tls_listener_accepts_submission(workdir, dns_server, cleanup):
    dns, sink, relay = standard_setup(workdir, dns_server, cleanup)
    r = relay.swaks("--tls-on-connect", "--server", f"127.0.0.1:{relay.submissions}", tls=False)
    assert r.returncode == 0, r.stdout + r.stderr
    wait_until(lambda: sink.messages, 30, "delivery to the sink")
