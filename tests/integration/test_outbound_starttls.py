"""Outbound STARTTLS to a receiver that offers it; TLS use is counted."""
from conftest import standard_setup, wait_until


def test_delivery_upgrades_to_tls_when_offered(workdir, dns_server, cleanup):
    dns, sink, relay = standard_setup(workdir, dns_server, cleanup, sink_tls=True)
    assert relay.swaks().returncode == 0
    msgs = wait_until(lambda: sink.messages, 30, "delivery to the TLS sink")
    assert msgs[0][3] is True, "the sink saw the message over plaintext"
    assert 'cascade_relay_outbound_connections_total{tls="yes"} 1' in relay.metrics()
