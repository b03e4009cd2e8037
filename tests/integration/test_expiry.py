"""A recipient still deferred at `maxAge` fails permanently and is bounced with the last error."""
from conftest import standard_setup, wait_until


def test_deferred_past_max_age_bounces(workdir, dns_server, cleanup):
    # Nothing listens on 127.0.0.2 (allowed as a destination, so the connection is tried and fails).
    zones = {"down.test": ["@ IN MX 10 mx.down.test.", "mx IN A 127.0.0.2"]}
    dns, sink, relay = standard_setup(workdir, dns_server, cleanup, zones=zones,
                                      tweak=lambda c: c.replace("maxAge: 5d", "maxAge: 3s").replace("[127.0.0.1/32]", "[127.0.0.1/32, 127.0.0.2/32]"))
    assert relay.swaks(to="user@down.test").returncode == 0
    msgs = wait_until(lambda: sink.messages, 60, "the bounce after maxAge")
    data = msgs[0][2]
    assert msgs[0][1] == ["dev@example.test"]
    assert b"Final-Recipient: rfc822; user@down.test" in data and b"gave up after 3s" in data
    assert relay.metric("cascade_relay_recipients_deferred_total") >= 1
