"""Outbound STARTTLS to a receiver that offers it; TLS use is counted."""
from conftest import standard_setup, wait_until


def test_delivery_upgrades_to_tls_when_offered(workdir, dns_server, cleanup):
    dns, sink, relay = standard_setup(workdir, dns_server, cleanup, sink_tls=True)
    assert relay.swaks().returncode == 0
    msgs = wait_until(lambda: sink.messages, 30, "delivery to the TLS sink")
    assert msgs[0][3] is True, "the sink saw the message over plaintext"
    assert 'cascade_relay_outbound_connections_total{tls="true"} 1' in relay.metrics()


def test_connections_to_one_destination_are_reused(workdir, dns_server, cleanup):
    dns, sink, relay = standard_setup(workdir, dns_server, cleanup)
    for n in range(3):
        assert relay.swaks(header=f"Subject: reuse {n}").returncode == 0
        wait_until(lambda: len(sink.messages) == n + 1, 30, f"delivery {n}")
    metrics = relay.metrics()
    assert 'cascade_relay_outbound_connections_total{tls="false"} 1' in metrics, metrics
