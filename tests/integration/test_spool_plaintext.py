"""Secrets at rest and in logs: mail with marker strings in the sender and recipient addresses,
the subject and the body, sent with a known API key, leaves none of them (nor the key's secret)
in any file the relay wrote (spool, logs, configuration bundle; the owner's credentials file
from `dev` aside), nor in any file `cascade-operator render` wrote but the credentials."""
import json
import subprocess

from conftest import BINARY, ROOT, standard_setup, wait_until

OPERATOR = BINARY.parent / "cascade-operator"


def files_under(d, skip=()):
    return [p for p in d.rglob("*") if p.is_file() and p.name not in skip]


def test_no_marker_or_secret_in_any_file_the_relay_wrote(workdir, dns_server, cleanup):
    dns, sink, relay = standard_setup(workdir, dns_server, cleanup)
    sink.stop()  # the receiver is down: the message stays queued
    marker = "ZEBRA-MARKER-7731"
    sender = "zebra-sender-7731@example.test"
    r = relay.swaks(sender=sender, to=f"{marker.lower()}@dest.test", header=f"Subject: {marker} subject", body=f"body {marker} body")
    assert r.returncode == 0, r.stdout
    wait_until(lambda: relay.metric("cascade_relay_recipients_deferred_total") >= 1, 30, "a deferral")
    assert list((relay.dir / "spool").rglob("*.msg")), "the message should be queued"
    needles = [marker.encode(), marker.lower().encode(), sender.encode(), b"zebra-sender", relay.creds["password"].encode()]
    checked = files_under(relay.dir, skip={"credentials.json"})
    assert any(p.name == "relay.log" for p in checked) and any(p.name == "relay.yaml" for p in checked)
    for p in checked:
        data = p.read_bytes()
        for needle in needles:
            assert needle not in data, f"{needle!r} found in {p}"


def test_render_writes_the_secret_only_into_the_owners_credentials(workdir):
    out = workdir / "out"
    r = subprocess.run([str(OPERATOR), "render", "-f", str(ROOT / "examples" / "cascade.yaml"), "-o", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    password = json.loads((out / "credentials" / "shop.web.json").read_text())["password"].encode()
    for p in files_under(out):
        if p.parent.name != "credentials":
            assert password not in p.read_bytes(), f"the API key secret is in {p}"
    assert password not in (r.stdout + r.stderr).encode()
