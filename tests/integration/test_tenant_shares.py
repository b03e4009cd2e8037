"""One tenant cannot starve another. Tenant `shop` sends 64 messages to a tarpit MX (it accepts
connections and never answers) and then goes over its queue share (`451 4.3.1`, set in the
RelayPool); meanwhile tenant `blog`'s mail is accepted and reaches a healthy sink within seconds,
because a destination and a tenant each get only their share of the delivery slots."""
import json
import time

from conftest import SilentListener, Sink, wait_until
from test_operator_render import EXAMPLE, render, run_rendered
from test_tenants import BLOG, session

TARPIT_MESSAGES = 64


def test_a_tarpit_tenant_does_not_starve_another(workdir, dns_server, cleanup):
    resources = workdir / "resources.yaml"
    pool = EXAMPLE.read_text().replace("matchNames: [shop]", "matchNames: [shop, blog]").replace("shop: [shop.example]", "shop: [shop.example]\n    blog: [blog.example]")
    pool = pool.replace("  delivery:\n    mode: mx\n", f"  limits:\n    tenantQueuedMessages: {TARPIT_MESSAGES}\n  delivery:\n    mode: mx\n", 1)
    resources.write_text(pool + BLOG)
    out = workdir / "out"
    render(out, [resources])
    keys = {name: json.loads((out / "credentials" / f"{name}.json").read_text()) for name in ("shop.web", "blog.writer")}
    sink = Sink(workdir).start()
    cleanup(sink.stop)
    tarpit = SilentListener("127.0.0.3", sink.port)
    cleanup(tarpit.stop)
    dns = dns_server({
        "dest.test": ["@ IN MX 10 mx.dest.test.", "mx IN A 127.0.0.1"],
        "tarpit.test": ["@ IN MX 10 mx.tarpit.test.", "mx IN A 127.0.0.3"],
    })
    allow = lambda cfg: cfg.replace("allowedDestinationCidrs: [127.0.0.1/32]", "allowedDestinationCidrs: [127.0.0.1/32, 127.0.0.3/32]")
    relay = run_rendered(out, keys["shop.web"], cleanup, mx_port=sink.port, dns_port=dns.port, tweak=allow)
    assert f"tenantQueuedMessages: {TARPIT_MESSAGES}" in relay.config.read_text()
    cleanup(tarpit.stop)  # runs before the relay's stop: its stuck deliveries end at once

    shop = session(relay, keys["shop.web"])
    for i in range(TARPIT_MESSAGES):
        shop.sendmail("sender@shop.example", [f"victim{i}@tarpit.test"], f"From: <sender@shop.example>\r\nSubject: tarpit {i}\r\n\r\nbody\r\n".encode())
    # The tarpit holds the destination's share of the slots, no more.
    wait_until(lambda: tarpit.connections >= 20, 30, "deliveries stuck in the tarpit")
    time.sleep(1)
    assert tarpit.connections == 20, tarpit.connections
    # Over its queue share, shop is refused for now ...
    code, text = shop.mail("sender@shop.example")
    assert (code, text) == (451, f"4.3.1 Your tenant has {TARPIT_MESSAGES} messages queued on this relay, its share; try again later".encode())
    shop.quit()
    assert relay.metric('cascade_relay_messages_rejected_total{reason="tenant_queue"}') == 1

    # ... while blog is accepted and delivered at once.
    started = time.monotonic()
    blog = session(relay, keys["blog.writer"])
    blog.sendmail("sender@blog.example", ["rcpt@dest.test"], b"From: <sender@blog.example>\r\nSubject: not starved\r\n\r\nbody\r\n")
    blog.quit()
    wait_until(lambda: [m for m in sink.messages if b"not starved" in m[2]], 10, "the other tenant's mail at the healthy sink")
    assert time.monotonic() - started < 10
