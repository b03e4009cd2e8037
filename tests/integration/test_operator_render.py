"""Without Kubernetes: example resources -> `cascade-operator render` -> `cascade-relay serve` ->
swaks with the rendered credentials -> a sink, with the DKIM signature verified by python3-dkim
against the rendered dns.zone served by a real DNS server. Rendering again keeps keys and
credentials."""
import json
import re
import subprocess

import dkim

from conftest import BINARY, ROOT, Relay, Sink, free_port, wait_until

OPERATOR = BINARY.parent / "cascade-operator"
EXAMPLE = ROOT / "examples" / "cascade.yaml"


def render(out):
    r = subprocess.run([str(OPERATOR), "render", "-f", str(EXAMPLE), "-o", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r


def test_rendered_bundle_runs_and_signs_verifiably(workdir, dns_server, cleanup):
    out = workdir / "out"
    render(out)
    creds = json.loads((out / "credentials" / "shop.web.json").read_text())
    dkim_key = (out / "relay" / "dkim-shop.shop-dkim.pem").read_bytes()
    render(out)  # idempotent: same keys, same credentials
    assert json.loads((out / "credentials" / "shop.web.json").read_text()) == creds
    assert (out / "relay" / "dkim-shop.shop-dkim.pem").read_bytes() == dkim_key

    zone = [l for l in (out / "dns.zone").read_text().splitlines() if l.strip()]
    dns = dns_server({"shop.example": zone + ["@ IN MX 10 mx.dest.test."], "dest.test": ["@ IN MX 10 mx.dest.test.", "mx IN A 127.0.0.1"]})
    sink = Sink(workdir).start()
    cleanup(sink.stop)

    # Run the rendered bundle on loopback ports, pointed at the test DNS server and sink.
    relay = Relay.__new__(Relay)
    relay.dir = out / "relay"
    relay.submission, relay.submissions, relay.http = free_port(), free_port(), free_port()
    relay.creds = creds
    cfg = (out / "relay" / "relay.yaml").read_text()
    cfg = cfg.replace("0.0.0.0:587", f"127.0.0.1:{relay.submission}").replace("0.0.0.0:465", f"127.0.0.1:{relay.submissions}")
    cfg = cfg.replace("0.0.0.0:9587", f"127.0.0.1:{relay.http}")
    cfg = cfg.replace("mxPort: 25", f"mxPort: {sink.port}").replace("nameservers: []", f"nameservers: ['127.0.0.1:{dns.port}']")
    relay.config = out / "relay" / "test.yaml"
    relay.config.write_text(cfg)
    relay.proc = None
    relay.start()
    cleanup(relay.stop)

    r = relay.swaks(sender="orders@shop.example", header="From: Shop <orders@shop.example>")
    assert r.returncode == 0, r.stdout
    data = wait_until(lambda: sink.messages, 30, "delivery")[0][2]
    assert re.search(rb"d=shop\.example", data)
    lookup = lambda name, timeout=5: dns.txt(name.decode().rstrip("."))
    assert dkim.verify(data, dnsfunc=lookup)
    # The key may send only as its tenant's domains.
    assert "550 5.7.1" in relay.swaks(sender="dev@example.test").stdout
