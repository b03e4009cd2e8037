"""Delivery events to a real HTTPS webhook receiver (Python's http.server under a test CA made by
openssl), every request verified with the reference `standardwebhooks` library (PyPI): accepted,
delivered, hard bounce (550 5.1.1 at RCPT), deferred and soft bounce (451 at RCPT until maxAge),
with the ids and tags the send API returned; kill -9 with events pending loses none and the
retries carry the same `webhook-id`; `410 Gone` disables the endpoint; `Retry-After` is
honoured; `cascade-relay dev --webhook` signs with the secret it writes."""
import json
import os
import re
import signal
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from conftest import BINARY, free_port, make_certificate, pylib, standard_setup, wait_port, wait_until

pylib("standardwebhooks==1.1.0")
from standardwebhooks import Webhook  # noqa: E402

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


class Receiver:
    """An HTTP(S) endpoint on 127.0.0.1 that records every request and answers with the next
    entry of `answers` ((status, headers) pairs; 200 once they run out)."""

    def __init__(self, certs=None, delay=0):
        self.requests, self.answers, self.lock, self.arrived = [], [], threading.Lock(), 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                with outer.lock:
                    outer.arrived += 1
                time.sleep(delay)
                with outer.lock:
                    status, headers = outer.answers.pop(0) if outer.answers else (200, {})
                    outer.requests.append((time.monotonic(), dict(self.headers), body, status))
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if certs:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(certs[1]), str(certs[2]))
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self, status=200):
        """(headers, payload) of every request answered `status`, each verified."""
        with self.lock:
            seen = [(h, b) for _, h, b, s in self.requests if s == status]
        wh = Webhook(SECRET)
        return [(h, wh.verify(b, {k.lower(): v for k, v in h.items()})) for h, b in seen]

    def stop(self):
        self.server.shutdown()


def with_webhook(url, secret_file, ca=None, max_age=None, batch=False):
    def tweak(cfg):
        hook = f"  webhooks:\n  - name: hooks\n    url: {url}\n    secretFile: {secret_file}\n" + ("    batch: true\n" if batch else "")
        cfg = cfg.replace("apiKeys:\n", hook + "apiKeys:\n", 1)
        # Not dev's plain-loopback allowance: HTTPS, verified against the test CA.
        cfg = re.sub(r"\nwebhooks:\n(  .*\n)+", "\n", cfg)
        if ca:
            cfg += f"webhooks:\n  caFile: {ca}\n"
        if max_age:
            cfg = cfg.replace("maxAge: 5d", f"maxAge: {max_age}")
        return cfg
    return tweak


@pytest.fixture
def hooked(workdir, dns_server, cleanup):
    certs = make_certificate(workdir, "hooks")
    receiver = Receiver(certs)
    cleanup(receiver.stop)
    (workdir / "webhook.secret").write_text(SECRET + "\n")

    def setup(max_age=None, batch=False):
        hook = with_webhook(f"https://127.0.0.1:{receiver.port}/hook", workdir / "webhook.secret", ca=certs[0], max_age=max_age, batch=batch)
        dns, sink, relay = standard_setup(workdir, dns_server, cleanup, tweak=hook)
        return dns, sink, relay
    return receiver, setup


def send(relay, to, tags=None):
    auth = (relay.creds["username"], relay.creds["password"])
    body = {"from": "dev@example.test", "to": to, "subject": "events", "text": "x", "tags": tags or {}}
    r = httpx.post(f"https://127.0.0.1:{relay.http}/v1/messages", json=body, auth=auth, verify=str(relay.dir / "tls.crt"), timeout=30)
    assert r.status_code == 202, r.text
    return r.json()["id"]


def by_type(events):
    out = {}
    for h, e in events:
        out.setdefault(e["type"], []).append((h, e))
    return out


def test_every_outcome_is_a_signed_event_with_the_message_id_and_tags(hooked):
    receiver, setup = hooked
    _, sink, relay = setup(max_age="4s")
    sink.handler.reject_rcpts.add("nobody@dest.test")
    sink.handler.busy_rcpts.add("later@dest.test")
    msg_id = send(relay, ["rcpt@dest.test", "nobody@dest.test", "later@dest.test"], tags={"campaign": "spring"})
    def complete():
        t = by_type(receiver.events())
        return t if any(e["data"]["bounceType"] == "soft" for _, e in t.get("message.bounced", [])) else None
    got = wait_until(complete, 30, "every event")
    (_, accepted), = got["message.accepted"]
    assert accepted["data"]["messageId"] == msg_id and accepted["data"]["tags"] == {"campaign": "spring"}
    assert sorted(accepted["data"]["recipients"]) == ["later@dest.test", "nobody@dest.test", "rcpt@dest.test"]
    (_, delivered), = got["message.delivered"]
    assert delivered["data"]["recipient"] == "rcpt@dest.test" and delivered["data"]["smtp"]["code"] == 250
    bounces = {e["data"]["recipient"]: e["data"] for _, e in got["message.bounced"]}
    assert bounces["nobody@dest.test"]["bounceType"] == "hard" and bounces["nobody@dest.test"]["smtp"]["enhancedStatus"] == "5.1.1"
    assert bounces["later@dest.test"]["bounceType"] == "soft"
    deferred = [e["data"] for _, e in got["message.deferred"]]
    assert deferred and all(d["recipient"] == "later@dest.test" and d["smtp"]["code"] == 451 for d in deferred)
    for headers, event in receiver.events():
        assert event["data"]["messageId"] == msg_id and event["data"]["tenant"] == "dev"
        assert re.fullmatch(r"evt_[0-9a-f]+", headers["webhook-id"]) and headers["content-type"] == "application/json"
    ids = [h["webhook-id"] for h, _ in receiver.events()]
    assert len(ids) == len(set(ids)), "one id per event"
    # A forged or altered request fails the same verification.
    h, b = next((h, b) for _, h, b, _ in receiver.requests)
    with pytest.raises(Exception):
        Webhook(SECRET).verify(b.replace(b"dev", b"evil"), {k.lower(): v for k, v in h.items()})
    wait_until(lambda: f'cascade_relay_webhook_requests_total{{result="sent"}} {len(ids)}' in relay.metrics() or None, 10, "the sent count")


def test_kill_9_with_events_pending_loses_none_and_retries_keep_their_id(hooked):
    receiver, setup = hooked
    receiver.answers = [(503, {})] * 1000
    _, sink, relay = setup()
    ids = [send(relay, ["rcpt@dest.test"]) for _ in range(3)]
    wait_until(lambda: len(sink.messages) == 3 or None, 30, "delivery")
    def refused():
        with receiver.lock:
            w = {h["webhook-id"] for _, h, _, s in receiver.requests if s == 503}
        return w if len(w) >= 6 else None
    first = wait_until(refused, 30, "first attempts refused")
    relay.kill9()
    with receiver.lock:
        receiver.answers = []
    relay.start()
    def arrived():
        e = receiver.events(200)
        return e if len({h["webhook-id"] for h, _ in e}) >= 6 else None
    events = wait_until(arrived, 60, "every event after the restart")
    delivered = {h["webhook-id"] for h, _ in events}
    assert first <= delivered, "every refused event arrives after kill -9, under the same webhook-id"
    assert {e["data"]["messageId"] for _, e in events} == set(ids)
    assert sorted(e["type"] for _, e in events if e["type"] in ("message.accepted", "message.delivered")).count("message.accepted") == 3


def test_a_batching_endpoint_gets_the_events_due_in_one_signed_request(hooked):
    receiver, setup = hooked
    receiver.answers = [(503, {})]
    _, sink, relay = setup(batch=True)
    ids = [send(relay, ["rcpt@dest.test"]) for _ in range(3)]
    wait_until(lambda: len(sink.messages) == 3 or None, 30, "delivery")
    def batched():
        e = receiver.events(200)
        return e if sum(len(p) for _, p in e) >= 6 else None
    requests = wait_until(batched, 40, "the events after the 503")
    refused = [json.loads(b) for _, _, b, s in receiver.requests if s == 503]
    assert isinstance(refused[0], list) and refused[0], "the refused request was a batch too"
    # The retry (5 s later) carries everything due by then: the refused events and the rest.
    assert any(len(p) >= 2 for _, p in requests), [len(p) for _, p in requests]
    items = [e for _, p in requests for e in p]
    assert all(isinstance(p, list) and len(p) <= 100 for _, p in requests)
    assert all(h["webhook-id"].startswith("batch_") for h, _ in requests)
    assert {e["id"] for e in refused[0]} <= {e["id"] for e in items}, "a refused event arrives again under its own id"
    assert len({e["id"] for e in items}) == len(items), "each event once"
    assert {e["data"]["messageId"] for e in items} == set(ids)
    assert sorted(e["type"] for e in items).count("message.accepted") == 3 and sorted(e["type"] for e in items).count("message.delivered") == 3


OTHER_SECRET = "cascade_sk_the-other-tenants-secret-0123456789abcd"


def test_a_tenant_whose_endpoint_hangs_delays_only_its_own_events(workdir, dns_server, cleanup):
    """dev's endpoint takes 12 s per request; dev's 16 events could fill every request slot of the
    relay. Another tenant's events still arrive within seconds: a tenant gets its share only."""
    import hashlib
    certs = make_certificate(workdir, "hooks")
    slow, fast = Receiver(certs, delay=12), Receiver(certs)
    cleanup(slow.stop)
    cleanup(fast.stop)
    (workdir / "webhook.secret").write_text(SECRET + "\n")
    hook = with_webhook(f"https://127.0.0.1:{slow.port}/hook", workdir / "webhook.secret", ca=certs[0])

    def two_tenants(cfg):
        cfg = hook(cfg)
        dkim = re.search(r"keyFile: (dkim-\S+\.pem)", cfg).group(1)
        other = (f"- name: other\n  domains:\n  - name: other.test\n    dkim:\n    - selector: cascade1\n      keyFile: {dkim}\n"
                 f"  webhooks:\n  - name: hooks\n    url: https://127.0.0.1:{fast.port}/hook\n    secretFile: {workdir / 'webhook.secret'}\n")
        cfg = cfg.replace("apiKeys:\n", other + "apiKeys:\n", 1)
        digest = hashlib.sha256(OTHER_SECRET.encode()).hexdigest()
        return cfg.replace("apiKeys:\n", f"apiKeys:\n- id: ck_00000000000000ee\n  tenant: other\n  secretHash: sha256:{digest}\n  scopes: [messages:send]\n", 1)
    _, sink, relay = standard_setup(workdir, dns_server, cleanup, tweak=two_tenants)
    for _ in range(8):
        send(relay, ["rcpt@dest.test"])
    wait_until(lambda: slow.arrived >= 1 or None, 30, "dev's endpoint busy")
    time.sleep(1)
    started = time.monotonic()
    r = httpx.post(f"https://127.0.0.1:{relay.http}/v1/messages", json={"from": "a@other.test", "to": ["rcpt@dest.test"], "subject": "other", "text": "x"},
                   auth=("ck_00000000000000ee", OTHER_SECRET), verify=str(relay.dir / "tls.crt"), timeout=30)
    assert r.status_code == 202, r.text
    wait_until(lambda: {e["type"] for _, e in fast.events()} >= {"message.accepted", "message.delivered"} or None, 10, "the other tenant's events")
    took = time.monotonic() - started
    assert took < 8, f"the other tenant waited {took:.1f}s behind dev's hanging endpoint"
    with slow.lock:
        in_flight = slow.arrived
    assert in_flight <= 4, f"dev had {in_flight} requests in flight at once: more than its share"


def test_410_disables_the_endpoint_and_retry_after_is_honoured(hooked, workdir):
    receiver, setup = hooked
    receiver.answers = [(429, {"Retry-After": "9"})]
    _, sink, relay = setup()
    send(relay, ["rcpt@dest.test"])
    wait_until(lambda: len(receiver.events(200)) >= 2 or None, 40, "events after the 429")
    with receiver.lock:
        refused = next(r for r in receiver.requests if r[3] == 429)
        again = next(r for r in receiver.requests if r[1]["webhook-id"] == refused[1]["webhook-id"] and r[3] == 200)
    assert again[0] - refused[0] >= 8.5, "Retry-After 9 s (the schedule alone says 4-6 s)"
    with receiver.lock:
        receiver.answers = [(410, {})]
    send(relay, ["rcpt@dest.test"])
    wait_until(lambda: any(s == 410 for _, _, _, s in receiver.requests) or None, 30, "the 410")
    wait_until(lambda: len(sink.messages) == 2 or None, 30, "the second message delivered")
    time.sleep(2)
    after_410 = len(receiver.requests)
    send(relay, ["rcpt@dest.test"])
    wait_until(lambda: len(sink.messages) == 3 or None, 30, "mail still delivered")
    time.sleep(2)
    assert len(receiver.requests) == after_410, "nothing sent after the 410"
    state = json.loads(subprocess.run(["curl", "-sS", "--cacert", str(relay.dir / "admin-ca.crt"), "--cert", str(relay.dir / "admin-client.crt"), "--key", str(relay.dir / "admin-client.key"),
                                       f"https://127.0.0.1:{relay.admin}/webhooks"], capture_output=True, text=True, timeout=30, check=True).stdout)
    assert state[0]["name"] == "hooks" and state[0]["disabledAt"] and state[0]["lastSuccess"], state
    assert 'cascade_relay_webhook_requests_total{result="gone"} 1' in relay.metrics()


def test_dev_sends_every_event_to_the_webhook_it_was_given(workdir, cleanup):
    receiver = Receiver()
    cleanup(receiver.stop)
    data = workdir / "dev"
    ports = {k: free_port() for k in ("submission", "submissions", "http", "admin")}
    args = [str(BINARY), "dev", "--data-dir", str(data), "--webhook", f"http://127.0.0.1:{receiver.port}/hook"] + [x for k, p in ports.items() for x in (f"--{k}", f"127.0.0.1:{p}")]
    log = open(workdir / "dev.log", "wb")
    proc = subprocess.Popen(args, stdout=log, stderr=log)
    cleanup(lambda: (proc.send_signal(signal.SIGTERM), proc.wait(30)))
    wait_port(ports["http"], proc=proc, log=workdir / "dev.log")
    secret = (data / "webhook.secret").read_text().strip()
    assert secret.startswith("whsec_") and oct(os.stat(data / "webhook.secret").st_mode & 0o777) == "0o600"
    assert "webhook.secret" in (workdir / "dev.log").read_text()
    creds = json.loads((data / "credentials.json").read_text())
    r = httpx.post(f"https://127.0.0.1:{ports['http']}/v1/messages", json={"from": "dev@example.test", "to": ["someone@example.net"], "subject": "s", "text": "t"},
                   auth=(creds["username"], creds["password"]), verify=str(data / "tls.crt"), timeout=30)
    assert r.status_code == 202, r.text
    wait_until(lambda: len(receiver.requests) >= 2 or None, 30, "accepted and delivered events")
    wh = Webhook(secret)
    types = sorted(wh.verify(b, {k.lower(): v for k, v in h.items()})["type"] for _, h, b, _ in receiver.requests)
    assert types == ["message.accepted", "message.delivered"], types


def hooked_relay(workdir, dns_server, cleanup, tweak=lambda c: c):
    """A receiver under a test CA and a relay sending the dev tenant's events there (after
    `tweak`): (receiver, sink, relay)."""
    certs = make_certificate(workdir, "hooks")
    receiver = Receiver(certs)
    cleanup(receiver.stop)
    (workdir / "webhook.secret").write_text(SECRET + "\n")
    hook = with_webhook(f"https://127.0.0.1:{receiver.port}/hook", workdir / "webhook.secret", ca=certs[0])
    _, sink, relay = standard_setup(workdir, dns_server, cleanup, tweak=lambda c: hook(tweak(c)))
    return receiver, sink, relay


def test_a_suspended_key_is_an_event(workdir, dns_server, cleanup):
    from helpers import message, submit_client
    from test_anomalies import tweak as suspending
    receiver, sink, relay = hooked_relay(workdir, dns_server, cleanup, suspending)
    c = submit_client(relay)
    for i in range(3):
        c.sendmail("dev@example.test", ["rcpt@dest.test"], message(subject=f"burst {i}"))
    assert c.mail("dev@example.test")[0] == 535

    def suspended():
        return [e for _, e in receiver.events() if e["type"] == "key.suspended"] or None
    (event,) = wait_until(suspended, 30, "the key.suspended event")
    assert event["data"]["keyId"] == relay.creds["username"] and event["data"]["tenant"] == "dev" and event["data"]["kind"] == "rate"
    assert relay.creds["password"] not in json.dumps(event)
