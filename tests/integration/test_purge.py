"""Queued mail of a domain deleted from its tenant is purged (the operator lists the domain under
`retiredDomains` when a SendingDomain is deleted): not delivered, not bounced, gone from the spool.
A domain the tenant still serves is never purged."""
import re

from conftest import standard_setup, wait_until

RETIRED = "retiredDomains:\n- name: example.test\n  tenant: dev\n"


def queued(relay):
    return list((relay.dir / "spool").glob("*.msg"))


def test_mail_of_a_deleted_domain_is_purged_from_the_queue(workdir, dns_server, cleanup):
    dns, sink, relay = standard_setup(workdir, dns_server, cleanup)
    sink.handler.temp_failures = 10_000  # the receiver defers everything: mail stays queued
    for _ in range(3):
        assert relay.swaks().returncode == 0
    wait_until(lambda: relay.metric("cascade_relay_recipients_deferred_total") >= 3, 30, "deferrals")
    assert len(queued(relay)) == 3
    good = relay.config.read_text()

    # Listed as retired while the tenant still serves it: nothing is purged.
    relay.config.write_text(good + RETIRED)
    wait_until(lambda: relay.metric('cascade_relay_config_reloads_total{result="ok"}') >= 1, 15, "reload")
    assert len(queued(relay)) == 3 and relay.metric("cascade_relay_messages_purged_total") == 0

    # Deleted from the tenant and retired: purged at once, without a bounce.
    without = re.sub(r"  domains:\n  - name: example.test\n(    .*\n)+", "  domains: []\n", good)
    assert without != good
    relay.config.write_text(without + RETIRED)
    wait_until(lambda: relay.metric("cascade_relay_messages_purged_total") == 3, 15, "purge")
    wait_until(lambda: not queued(relay), 10, "spool emptied")
    assert relay.metric("cascade_relay_recipients_bounced_total") == 0
    assert not sink.messages
    log = relay.log_text()
    assert "queued message purged" in log and "dev@example.test" not in log  # addresses masked
