"""Destinations from DNS: implicit MX (A record only), null MX (RFC 7505) and a domain that does
not exist, each with its outcome."""
import pytest

from conftest import standard_setup, wait_until

ZONES = {
    "nomx.test": ["@ IN A 127.0.0.1"],
    "nullmx.test": ["@ IN MX 0 ."],
}


@pytest.fixture
def setup(workdir, dns_server, cleanup):
    return standard_setup(workdir, dns_server, cleanup, zones=ZONES)


def test_domain_without_mx_gets_its_a_record(setup):
    dns, sink, relay = setup
    assert relay.swaks(to="user@nomx.test").returncode == 0
    msgs = wait_until(lambda: sink.messages, 30, "delivery via implicit MX")
    assert msgs[0][1] == ["user@nomx.test"]


@pytest.mark.parametrize("rcpt, reason", [("user@nullmx.test", b"null MX"), ("user@nowhere.dest.test", b"does not exist")])
def test_undeliverable_domains_bounce_at_once(setup, rcpt, reason):
    dns, sink, relay = setup
    assert relay.swaks(to=rcpt).returncode == 0
    msgs = wait_until(lambda: sink.messages, 30, "the bounce")
    mail_from, rcpts, data, _ = msgs[0]
    assert mail_from in ("", "<>") and rcpts == ["dev@example.test"]
    assert f"Final-Recipient: rfc822; {rcpt}".encode() in data and reason in data, data.decode(errors="replace")
    assert relay.metric("cascade_relay_recipients_deferred_total") == 0
