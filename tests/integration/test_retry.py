"""A 4xx from the receiver defers the recipient; the retry delivers it."""
from conftest import standard_setup, wait_until


def test_temporary_failure_is_retried_and_delivered(workdir, dns_server, cleanup):
    dns, sink, relay = standard_setup(workdir, dns_server, cleanup)
    sink.handler.temp_failures = 2
    assert relay.swaks().returncode == 0
    wait_until(lambda: sink.messages, 60, "delivery after retries")
    assert relay.metric("cascade_relay_recipients_deferred_total") == 2
    wait_until(lambda: relay.metric("cascade_relay_recipients_delivered_total") == 1, 10, "delivered metric")
    wait_until(lambda: not list((relay.dir / "spool").glob("*.msg")), 10, "spool emptied")
