"""Delivery SSRF: MX and address answers come from whoever controls the recipient domain. A
domain whose MX points into private, loopback, link-local or metadata space (directly, as an IP
literal, or IPv4-mapped in AAAA) is never connected to; each recipient fails permanently and the
sender's DSN says only "destination address not allowed". Knot on loopback serves the records."""
import pytest

from conftest import SilentListener, standard_setup, wait_until

HOSTILE = {
    "lan.test": ["@ IN MX 10 mx.lan.test.", "mx IN A 10.0.0.5"],
    "meta.test": ["@ IN MX 10 mx.meta.test.", "mx IN A 169.254.169.254"],
    "literal.test": ["@ IN MX 10 10.0.0.5."],
    "loop.test": ["@ IN MX 10 mx.loop.test.", "mx IN A 127.0.0.2"],
    "mapped.test": ["@ IN MX 10 mx.mapped.test.", "mx IN AAAA ::ffff:127.0.0.2"],
    "cgnat.test": ["@ IN MX 10 mx.cgnat.test.", "mx IN A 100.64.0.9"],
    "implicit.test": ["@ IN A 192.168.1.10"],
}


@pytest.mark.parametrize("domain", sorted(HOSTILE))
def test_hostile_mx_is_never_connected_and_the_dsn_names_no_address(workdir, dns_server, cleanup, domain):
    dns, sink, relay = standard_setup(workdir, dns_server, cleanup, zones=HOSTILE)
    trap = SilentListener("127.0.0.2", sink.port)
    cleanup(trap.stop)
    assert relay.swaks(to=f"victim@{domain}").returncode == 0
    msgs = wait_until(lambda: sink.messages, 30, "the bounce at the sender's MX")
    mail_from, rcpts, data, _ = msgs[0]
    assert mail_from in ("", "<>") and rcpts == ["dev@example.test"]
    assert f"Final-Recipient: rfc822; victim@{domain}\r\nAction: failed".encode() in data
    assert b"destination address not allowed" in data
    for leak in (b"10.0.0.5", b"169.254", b"127.0.0.2", b"100.64", b"192.168", b"refused", b"Connection"):
        assert leak not in data, leak
    assert trap.connections == 0
    assert relay.metric('cascade_relay_messages_rejected_total{reason="destination_not_allowed"}') >= 1
    # The sink got the bounce only: nothing was delivered for the hostile domain.
    assert not [m for m in sink.messages if any(r.endswith(domain) for r in m[1])]


def test_an_allow_entry_lets_an_internal_hub_through(workdir, dns_server, cleanup):
    """`allowedDestinationCidrs` is the way to an internal mail hub: here 127.0.0.2."""
    tweak = lambda cfg: cfg.replace("allowedDestinationCidrs: [127.0.0.1/32]", "allowedDestinationCidrs: [127.0.0.1/32, 127.0.0.2/32]")
    dns, sink, relay = standard_setup(workdir, dns_server, cleanup, zones=HOSTILE, tweak=tweak)
    trap = SilentListener("127.0.0.2", sink.port)
    cleanup(trap.stop)
    assert relay.swaks(to="victim@loop.test").returncode == 0
    wait_until(lambda: trap.connections > 0, 30, "a connection to the allowed hub")
