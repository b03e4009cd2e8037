"""A key's messagesPerMinute is enforced by the running relay with 451 4.7.1."""
from conftest import standard_setup
from helpers import submit_client


def test_key_rate_limit(workdir, dns_server, cleanup):
    dns, sink, relay = standard_setup(workdir, dns_server, cleanup,
                                      tweak=lambda c: c.replace("messagesPerMinute: null", "messagesPerMinute: 2"))
    c = submit_client(relay)
    codes = []
    for _ in range(3):
        code, text = c.mail("dev@example.test")
        codes.append((code, text[:5]))
        c.rset()
    assert codes == [(250, b"2.0.0"), (250, b"2.0.0"), (451, b"4.7.1")], codes
    assert b"Rate limit of 2 messages per minute" in text
    c.quit()
