"""Abuse limits against the running relay, each answered as the RFCs say and naming the limit:
sessions per client address (421 4.7.0; other addresses unaffected), messages per minute per
tenant (451 4.7.1), recipients per minute per key (452 4.5.3), failed AUTH per key id across
addresses (454 4.7.0), and HTTP connections per client address (429)."""
import smtplib
import socket
import time

import pytest

from conftest import standard_setup
from helpers import tls_context


def tweak(cfg):
    for old, new in [("  maxSessionsPerClient: 50\n", "  maxSessionsPerClient: 3\n  tenantMessagesPerMinute: 2\n"), ("  maxAuthFailures: 5\n", "  maxAuthFailures: 2\n")]:
        assert old in cfg, old
        cfg = cfg.replace(old, new, 1)
    return cfg


@pytest.fixture
def relay(workdir, dns_server, cleanup):
    return standard_setup(workdir, dns_server, cleanup, tweak=tweak)[2]


def greeting(relay, source="127.0.0.1"):
    s = socket.create_connection(("127.0.0.1", relay.submission), timeout=10, source_address=(source, 0))
    return s, s.recv(1024).decode()


def client(relay, source="127.0.0.1", login=True, password=None):
    c = smtplib.SMTP("127.0.0.1", relay.submission, timeout=20, source_address=(source, 0))
    c.ehlo("client.test")
    c.starttls(context=tls_context())
    c.ehlo("client.test")
    if login:
        c.login(relay.creds["username"], password or relay.creds["password"])
    return c


def test_sessions_per_client_address(relay):
    held = [greeting(relay)[0] for _ in range(3)]
    s, text = greeting(relay)
    assert text.startswith("421 4.7.0 Too many connections from your address (limit 3)"), text
    s.close()
    other, text = greeting(relay, source="127.0.0.2")
    assert text.startswith("220"), "another address is not affected"
    other.close()
    held.pop().close()
    for _ in range(50):
        s, text = greeting(relay)
        s.close()
        if text.startswith("220"):
            break
        time.sleep(0.1)
    assert text.startswith("220"), "a closed session frees its slot"
    for h in held:
        h.close()
    assert relay.metric('cascade_relay_messages_rejected_total{reason="too_many_sessions_per_client"}') >= 1


def test_messages_per_minute_per_tenant(relay):
    c = client(relay)
    for _ in range(2):
        assert c.mail("dev@example.test")[0] == 250
        c.rset()
    code, text = c.mail("dev@example.test")
    assert (code, text.decode()) == (451, "4.7.1 Rate limit of 2 messages per minute for your tenant reached; try again later")
    c.quit()


def test_recipients_per_minute_per_key(workdir, dns_server, cleanup):
    relay = standard_setup(workdir, dns_server, cleanup, tweak=lambda cfg: cfg.replace("  revoked: false\n", "  revoked: false\n  recipientsPerMinute: 3\n", 1))[2]
    c = client(relay)
    assert c.mail("dev@example.test")[0] == 250
    for i in range(3):
        assert c.rcpt(f"r{i}@dest.test")[0] == 250
    code, text = c.rcpt("r9@dest.test")
    assert (code, text.decode()) == (452, "4.5.3 Recipient rate limit of 3 per minute for this API key reached; try again later")
    c.quit()


def test_failed_auth_per_key_id_across_addresses(relay):
    # maxAuthFailures 2 per address, so 4 per key id: one wrong secret each from four addresses.
    for i in range(4):
        c = client(relay, source=f"127.0.0.{10 + i}", login=False)
        with pytest.raises(smtplib.SMTPAuthenticationError):
            c.login(relay.creds["username"], "wrong")
        c.close()
    c = client(relay, source="127.0.0.20", login=False)
    with pytest.raises(smtplib.SMTPAuthenticationError) as e:
        c.login(relay.creds["username"], "another-guess")
    assert e.value.smtp_code == 454 and b"Too many failed authentications for this key" in e.value.smtp_error
    c.close()
    # The owner's correct secret still works: an attacker cannot lock a tenant out.
    c = client(relay, source="127.0.0.21")
    assert c.noop()[0] == 250
    c.quit()


def test_http_connections_per_client_address(relay):
    """The tenant HTTPS listener: 8 open connections per address; the 9th is closed at once
    (before any TLS handshake), and another address is served as usual."""
    import ssl
    held = [socket.create_connection(("127.0.0.1", relay.http), timeout=10) for _ in range(8)]
    try:
        s = socket.create_connection(("127.0.0.1", relay.http), timeout=10)
        assert s.recv(1024) == b"", "closed without an answer"
        s.close()
        other = socket.create_connection(("127.0.0.1", relay.http), timeout=10, source_address=("127.0.0.2", 0))
        tls = relay.https_context().wrap_socket(other, server_hostname="127.0.0.1")
        tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: relay\r\n\r\n")
        assert tls.recv(1024).startswith(b"HTTP/1.1 200")
        tls.close()
    finally:
        for h in held:
            h.close()


def test_a_client_within_its_session_limit_is_never_refused_under_churn(workdir, dns_server, cleanup):
    """50 workers, each one message per STARTTLS session, never more than `maxSessionsPerClient`
    (50) sessions at once: none may get `421 4.7.0`. A slot is free the moment the client's
    session ends, not after the server's own teardown."""
    import threading

    from helpers import message, submit_client
    dns, sink, relay = standard_setup(workdir, dns_server, cleanup)
    refused, errors = [], []

    def worker(n):
        for i in range(3):
            try:
                c = submit_client(relay)
                c.sendmail("dev@example.test", ["rcpt@dest.test"], message(subject=f"churn {n}-{i}"))
                c.quit()
            except smtplib.SMTPConnectError as e:
                refused.append(e)
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not refused, refused[:3]
    assert not errors, errors[:3]
    assert relay.metric('cascade_relay_messages_rejected_total{reason="too_many_sessions_per_client"}') == 0
