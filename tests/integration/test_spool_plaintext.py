"""Queued mail is encrypted: markers in subject, body and addresses are not found on disk."""
from conftest import standard_setup, wait_until


def test_spool_holds_no_plaintext(workdir, dns_server, cleanup):
    dns, sink, relay = standard_setup(workdir, dns_server, cleanup)
    sink.stop()  # the receiver is down: the message stays queued
    marker = "ZEBRA-MARKER-7731"
    r = relay.swaks(to=f"{marker.lower()}@dest.test", header=f"Subject: {marker} subject", body=f"body {marker} body")
    assert r.returncode == 0, r.stdout
    wait_until(lambda: relay.metric("cascade_relay_recipients_deferred_total") >= 1, 30, "a deferral")
    files = [p for p in (relay.dir / "spool").rglob("*") if p.is_file()]
    assert files, "the message should be queued"
    for p in files:
        data = p.read_bytes()
        for needle in (marker.encode(), marker.lower().encode(), relay.creds["password"].encode()):
            assert needle not in data, f"{needle!r} found in {p}"
    log = relay.log_text()
    assert relay.creds["password"] not in log and marker.lower() not in log
