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


def render(out, files=(EXAMPLE,)):
    args = [a for f in files for a in ("-f", str(f))]
    r = subprocess.run([str(OPERATOR), "render", *args, "-o", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r


def assembled(out):
    """The rendered configuration as a relay assembles it: relay.yaml, then each tenant shard."""
    relay = out / "relay"
    return "\n---\n".join([(relay / "relay.yaml").read_text()] + [p.read_text() for p in sorted(relay.glob("tenant-*.yaml"))])


def run_rendered(out, creds, cleanup, mx_port=25, dns_port=None, tweak=None):
    """Runs the rendered bundle on loopback ports, pointed at the test DNS server and sink."""
    relay = Relay.__new__(Relay)
    relay.dir = out / "relay"
    relay.submission, relay.submissions, relay.http, relay.admin = free_port(), free_port(), free_port(), free_port()
    relay.creds = creds
    cfg = (out / "relay" / "relay.yaml").read_text()
    cfg = cfg.replace("0.0.0.0:587", f"127.0.0.1:{relay.submission}").replace("0.0.0.0:465", f"127.0.0.1:{relay.submissions}")
    cfg = cfg.replace("0.0.0.0:9587", f"127.0.0.1:{relay.http}").replace("0.0.0.0:9588", f"127.0.0.1:{relay.admin}")
    # The test sink is on loopback, which delivery refuses unless allowed.
    cfg = re.sub(r"(\n( +))mxPort: 25\n", lambda m: f"{m.group(1)}mxPort: {mx_port}{m.group(1)}allowedDestinationCidrs: [127.0.0.1/32]\n", cfg)
    if dns_port:
        cfg = cfg.replace("nameservers: []", f"nameservers: ['127.0.0.1:{dns_port}']")
    if tweak:
        cfg = tweak(cfg)
    relay.config = out / "relay" / "test.yaml"
    relay.config.write_text(cfg)
    relay.proc = None
    relay.start()
    cleanup(relay.stop)
    return relay


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

    relay = run_rendered(out, creds, cleanup, mx_port=sink.port, dns_port=dns.port)

    r = relay.swaks(sender="orders@shop.example", header="From: Shop <orders@shop.example>")
    assert r.returncode == 0, r.stdout
    data = wait_until(lambda: sink.messages, 30, "delivery")[0][2]
    assert re.search(rb"d=shop\.example", data)
    lookup = lambda name, timeout=5: dns.txt(name.decode().rstrip("."))
    assert dkim.verify(data, dnsfunc=lookup)
    # The key may send only as its tenant's domains.
    assert "550 5.7.1" in relay.swaks(sender="dev@example.test").stdout


def test_a_smarthost_with_credentials_from_a_secret(workdir, cleanup):
    """The pool's smarthost credentialsSecret (here a Secret document next to the resources)
    becomes the relay's AUTH username, password file and CA: delivery is verified TLS + AUTH."""
    sink = Sink(workdir, auth=("relayuser", "s3cret-pass")).start()
    cleanup(sink.stop)
    pool = EXAMPLE.read_text().replace(
        "    mode: mx\n    tls: opportunistic\n",
        f"    mode: smarthost\n    smarthost:\n      address: 127.0.0.1:{sink.port}\n      tls: required\n      credentialsSecret: upstream\n",
    )
    assert "credentialsSecret" in pool
    resources = workdir / "resources.yaml"
    resources.write_text(pool)
    secret = workdir / "secret.yaml"
    ca = "\n".join("      " + l for l in sink.cert.read_text().splitlines())
    secret.write_text(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: upstream, namespace: cascade-system}\n"
        f"stringData:\n  username: relayuser\n  password: s3cret-pass\n  ca.crt: |\n{ca}\n"
    )
    out = workdir / "out"
    render(out, [resources, secret])
    assert (out / "relay" / "smarthost.password").read_text() == "s3cret-pass"
    assert "s3cret-pass" not in (out / "relay" / "relay.yaml").read_text()
    creds = json.loads((out / "credentials" / "shop.web.json").read_text())
    relay = run_rendered(out, creds, cleanup)
    assert relay.swaks(sender="orders@shop.example", header="From: Shop <orders@shop.example>").returncode == 0
    msgs = wait_until(lambda: sink.messages, 30, "delivery through the smarthost")
    assert msgs[0][3] is True  # over TLS
    assert sink.logins == [("relayuser", True)]
    assert "s3cret-pass" not in relay.log_text()

    # Without the Secret, render says what is missing.
    r = subprocess.run([str(OPERATOR), "render", "-f", str(resources), "-o", str(workdir / "out2")], capture_output=True, text=True)
    assert r.returncode != 0 and 'Secret "upstream" not found' in r.stderr, r.stderr


def test_unassigned_domains_are_served_only_once_their_ownership_is_proven(workdir, dns_server):
    """Without the pool's assignment a claim must pass its DNS challenge: render reports it
    (exit 0, or 1 with --strict) and serves it once --verified-claims lists it or the record is
    in DNS (--nameserver, a real DNS server)."""
    resources = workdir / "resources.yaml"
    resources.write_text(EXAMPLE.read_text().replace("  assignedDomains:\n    shop: [shop.example]\n", ""))
    served = lambda out: "name: shop.example" in assembled(out)

    r = render(workdir / "out0", [resources])
    assert not served(workdir / "out0")
    m = re.search(r'not served: SendingDomain shop/shop: OwnershipUnverified: .*publish TXT _cascade-challenge\.shop\.example\. "(cascade-verification=[0-9a-f]{32})"', r.stdout)
    assert m, r.stdout
    token = m.group(1)
    strict = subprocess.run([str(OPERATOR), "render", "-f", str(resources), "-o", str(workdir / "out0"), "--strict"], capture_output=True, text=True)
    assert strict.returncode == 1 and "not served (--strict)" in strict.stderr, strict.stderr

    claims = workdir / "claims"
    claims.write_text("shop/shop\n")
    ok = subprocess.run([str(OPERATOR), "render", "-f", str(resources), "-o", str(workdir / "out1"), "--verified-claims", str(claims), "--strict"], capture_output=True, text=True)
    assert ok.returncode == 0 and served(workdir / "out1"), ok.stdout + ok.stderr
    claims.write_text("shop shop\n")
    bad = subprocess.run([str(OPERATOR), "render", "-f", str(resources), "-o", str(workdir / "out1"), "--verified-claims", str(claims)], capture_output=True, text=True)
    assert bad.returncode == 1 and "line 1: expected NAMESPACE/NAME" in bad.stderr, bad.stderr

    for record, proven in ((f'"{token}x"', False), (f'"{token}"', True)):
        dns = dns_server({"shop.example": [f"_cascade-challenge TXT {record}"]})
        out = workdir / f"out-dns-{proven}"
        r = subprocess.run([str(OPERATOR), "render", "-f", str(resources), "-o", str(out), "--nameserver", f"127.0.0.1:{dns.port}"], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and served(out) == proven, r.stdout + r.stderr
