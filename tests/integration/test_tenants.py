"""Tenant isolation across two tenants, from resources to delivered mail: namespaces `shop`
(shop.example) and `blog` (blog.example) on one pool, rendered by `cascade-operator render` and
served by the relay. A key sends as its own tenant's domains only: every (key, domain, envelope or
header) cell of the matrix is proven against the running relay with smtplib, and a namespace that
claims or lists the other tenant's domain gets nothing."""
import json
import subprocess
import smtplib

import pytest

from conftest import Sink, wait_until
from helpers import tls_context
from test_operator_render import OPERATOR, EXAMPLE, assembled, render, run_rendered

BLOG = """
---
apiVersion: cascade-mail.com/v1alpha1
kind: SendingDomain
metadata: {name: blog, namespace: blog}
spec:
  domain: blog.example
  relayPool: {name: main, namespace: cascade-system}
---
# Lists the other tenant's domain next to its own: narrowed to blog.example.
apiVersion: cascade-mail.com/v1alpha1
kind: ApiKey
metadata: {name: writer, namespace: blog}
spec:
  allowedDomains: [blog.example, shop.example]
---
# Lists only the other tenant's domain: never served.
apiVersion: cascade-mail.com/v1alpha1
kind: ApiKey
metadata: {name: thief, namespace: blog}
spec:
  allowedDomains: [shop.example]
"""


@pytest.fixture
def world(workdir, dns_server, cleanup):
    resources = workdir / "resources.yaml"
    resources.write_text(EXAMPLE.read_text().replace("matchNames: [shop]", "matchNames: [shop, blog]").replace("shop: [shop.example]", "shop: [shop.example]\n    blog: [blog.example]") + BLOG)
    out = workdir / "out"
    render(out, [resources])
    keys = {name: json.loads((out / "credentials" / f"{name}.json").read_text()) for name in ("shop.web", "blog.writer")}
    sink = Sink(workdir).start()
    cleanup(sink.stop)
    dns = dns_server({"dest.test": ["@ IN MX 10 mx.dest.test.", "mx IN A 127.0.0.1"]})
    relay = run_rendered(out, keys["shop.web"], cleanup, mx_port=sink.port, dns_port=dns.port)
    return out, keys, sink, relay


def session(relay, creds):
    c = smtplib.SMTP("127.0.0.1", relay.submission, timeout=20)
    c.starttls(context=tls_context())
    c.login(creds["username"], creds["password"])
    return c


def attempt(relay, creds, envelope_domain, header_domain, subject):
    """Returns (stage, code): where the transaction ended and with what reply."""
    c = session(relay, creds)
    try:
        code, _ = c.mail(f"sender@{envelope_domain}")
        if code != 250:
            return "MAIL", code
        assert c.rcpt("rcpt@dest.test")[0] == 250
        code, _ = c.data(f"From: <sender@{header_domain}>\r\nTo: <rcpt@dest.test>\r\nSubject: {subject}\r\n\r\nbody\r\n".encode())
        return "DATA", code
    finally:
        c.quit()


OWN = {"shop.web": "shop.example", "blog.writer": "blog.example"}
MATRIX = [(key, env, hdr) for key in OWN for env in OWN.values() for hdr in OWN.values()]


def test_a_key_sends_as_its_own_tenants_domains_only(world):
    out, keys, sink, relay = world
    delivered = []
    for key, env, hdr in MATRIX:
        subject = f"matrix {key} {env} {hdr}"
        stage, code = attempt(relay, keys[key], env, hdr, subject)
        own = OWN[key]
        if env != own:
            assert (stage, code) == ("MAIL", 550), (key, env, hdr)
        elif hdr != own:
            assert (stage, code) == ("DATA", 550), (key, env, hdr)
        else:
            assert (stage, code) == ("DATA", 250), (key, env, hdr)
            delivered.append(subject)
    assert len(delivered) == 2
    wait_until(lambda: len(sink.messages) >= 2, 30, "the two allowed messages at the sink")
    subjects = sorted(m[2].split(b"Subject: ")[1].split(b"\r\n")[0].decode() for m in sink.messages)
    assert subjects == sorted(delivered)
    # Each is signed by its own tenant's domain.
    for m in sink.messages:
        tenant_domain = "shop.example" if b"matrix shop.web" in m[2] else "blog.example"
        assert f"d={tenant_domain}".encode() in m[2]


def test_a_key_listing_only_another_tenants_domain_cannot_send(world):
    out, keys, sink, relay = world
    config = assembled(out)
    thief = json.loads((out / "credentials" / "blog.thief.json").read_text())
    # Narrowed to blog's own domains, of which it lists none: refused by the relay, AUTH fails.
    entry = config.split(f"id: {thief['username']}")[1].split("- id:")[0]
    assert "revoked: true" in entry, entry
    c = smtplib.SMTP("127.0.0.1", relay.submission, timeout=20)
    c.starttls(context=tls_context())
    with pytest.raises(smtplib.SMTPAuthenticationError) as e:
        c.login(thief["username"], thief["password"])
    assert e.value.smtp_code == 535
    c.quit()
    # The writer listed shop.example too: narrowed away.
    writer = config.split(f"id: {keys['blog.writer']['username']}")[1].split("- id:")[0]
    assert "blog.example" in writer and "shop.example" not in writer


def test_a_claim_on_another_tenants_domain_takes_nothing(workdir):
    """A squatter's claim proves nothing, however old its file says it is: the pool assigns
    shop.example to namespace shop, so shop keeps it and render tells the squatter how ownership
    is proven. Even a passed challenge (--verified-claims) does not beat the pool's assignment."""
    resources = workdir / "resources.yaml"
    stolen = """
---
apiVersion: cascade-mail.com/v1alpha1
kind: SendingDomain
metadata: {name: stolen, namespace: blog, creationTimestamp: "2000-01-01T00:00:00Z"}
spec:
  domain: shop.example
  relayPool: {name: main, namespace: cascade-system}
"""
    resources.write_text(EXAMPLE.read_text().replace("matchNames: [shop]", "matchNames: [shop, blog]").replace("shop: [shop.example]", "shop: [shop.example]\n    blog: [blog.example]") + BLOG + stolen)
    claims = workdir / "verified-claims"
    claims.write_text("# the squatter's challenge passed\nblog/stolen\n")
    for extra in ([], ["--verified-claims", str(claims)]):
        out = workdir / f"out{len(extra)}"
        r = subprocess.run([str(OPERATOR), "render", "-f", str(resources), "-o", str(out), *extra], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        yaml = assembled(out)
        assert "- name: shop\n  domains:\n  - name: shop.example" in yaml, yaml
        assert "- name: blog\n  domains:\n  - name: blog.example" in yaml, yaml
        assert yaml.count("name: shop.example") == 1, yaml
        reason = "DomainConflict" if extra else "OwnershipUnverified"
        assert f"not served: SendingDomain blog/stolen: {reason}" in r.stdout, r.stdout
