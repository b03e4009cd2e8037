"""Erasure of one address on a running relay (`POST /erase` on the admin listener, mutual TLS with
the pool's client certificate): queued mail to it is failed and masked — a message with no other
pending recipient is purged, without a bounce, one with others keeps them queued — its finished
messages' status keeps the record with the address masked, the tenant's suppression list loses
it, and the audit trail records the erasure with the address masked. Without the client
certificate, or with a bad body, nothing happens."""
import http.client
import json
import re
import smtplib
import socket

import httpx

from conftest import standard_setup, wait_until
from helpers import tls_context

GONE = "gone@dest.test"


def admin_post(relay, path, body, cert="admin-client"):
    name = re.search(r"relayName: (\S+)", relay.config.read_text()).group(1).strip("'\"")

    class Connection(http.client.HTTPSConnection):
        def connect(self):
            self.sock = self._context.wrap_socket(socket.create_connection((self.host, self.port), self.timeout), server_hostname=name)

    c = Connection("127.0.0.1", relay.admin, timeout=30, context=relay.admin_context(cert))
    try:
        c.request("POST", path, body=body, headers={"content-type": "application/json"})
        r = c.getresponse()
        return r.status, r.read().decode()
    finally:
        c.close()


def send(relay, rcpts, subject):
    """One message over SMTP; the queue id its 250 names."""
    s = smtplib.SMTP("127.0.0.1", relay.submission, timeout=20)
    s.starttls(context=tls_context())
    s.login(relay.creds["username"], relay.creds["password"])
    s.mail("dev@example.test")
    for r in rcpts:
        s.rcpt(r)
    code, reply = s.data(f"From: dev@example.test\r\nSubject: {subject}\r\n\r\nx\r\n".encode())
    s.quit()
    assert code == 250, reply
    return reply.decode().split()[-1]


def test_an_erasure_reaches_queued_mail_statuses_and_the_suppression_list(workdir, dns_server, cleanup):
    _, sink, relay = standard_setup(workdir, dns_server, cleanup)
    sink.handler.busy_rcpts.update({GONE, "keep@dest.test"})  # 451 at RCPT: both stay queued
    only = send(relay, [GONE], "only to the erased address")
    both = send(relay, [GONE, "keep@dest.test"], "to both")
    wait_until(lambda: relay.metric("cascade_relay_recipients_deferred_total") >= 3, 30, "deferrals")
    api = f"https://127.0.0.1:{relay.http}/v1"
    auth = (relay.creds["username"], relay.creds["password"])
    web = httpx.Client(verify=str(relay.dir / "tls.crt"), timeout=30, auth=auth)
    cleanup(web.close)
    assert web.put(f"{api}/suppressions/{GONE}", json={"reason": "manual"}).status_code in (200, 201)

    # Refused without the pool's client certificate, and for a body that is not an erasure.
    status, _ = admin_post(relay, "/erase", json.dumps({"address": GONE}), cert=None)
    assert status == 403
    status, text = admin_post(relay, "/erase", json.dumps({"address": "not an address"}))
    assert status == 400 and "address" in text, text
    assert len(list((relay.dir / "spool").glob("*.msg"))) == 2

    status, text = admin_post(relay, "/erase", json.dumps({"address": "Gone@Dest.Test", "tenant": "dev"}))
    assert status == 200, text
    counts = json.loads(text)
    assert counts == {"queuedMessagesPurged": 1, "queuedRecipientsErased": 2, "statusesMasked": 0, "suppressionsRemoved": 1, "eventsMasked": 0}, counts

    # The purged message: finished, the address masked, nothing bounced; the other still queued for keep@.
    def recipients(msg_id):
        r = web.get(f"{api}/messages/{msg_id}")
        assert r.status_code == 200, r.text
        return {x["address"]: x for x in r.json()["recipients"]}

    gone = wait_until(lambda: recipients(only).get("g***@dest.test"), 10, "the purged message's masked status")
    assert gone["lastReply"] == "erased on request" and gone["status"] != "delivered", gone
    rest = recipients(both)
    assert set(rest) == {"g***@dest.test", "keep@dest.test"} and rest["keep@dest.test"]["status"] in ("queued", "deferred"), rest
    assert len(list((relay.dir / "spool").glob("*.msg"))) == 1
    assert web.get(f"{api}/suppressions/{GONE}").status_code == 404
    # keep@ is delivered once the receiver takes it; the erased address never is.
    with sink.handler.lock:
        sink.handler.busy_rcpts.clear()
    wait_until(lambda: recipients(both)["keep@dest.test"]["status"] == "delivered" or None, 30, "keep@ delivered")
    assert all(GONE not in rcpts for _, rcpts, _, _ in sink.messages), "the erased address got mail"
    assert relay.metric("cascade_relay_recipients_bounced_total") == 0

    # A second erasure finds the finished records (now masked already) and nothing queued.
    status, text = admin_post(relay, "/erase", json.dumps({"address": GONE}))
    assert json.loads(text)["queuedMessagesPurged"] == 0
    audit = "".join(p.read_text() for p in (relay.dir / "audit").glob("audit-*.jsonl"))
    records = [json.loads(line) for line in audit.splitlines() if '"erasure"' in line]
    assert records and records[0]["data"]["address"] == "g***@dest.test", records
    assert GONE not in audit and GONE not in relay.log_text()


def test_pending_webhook_events_lose_the_address_on_disk_and_on_the_wire(workdir, dns_server, cleanup):
    """Events the tenant's endpoint has not taken yet (it answers 503) are masked where they wait,
    on disk; their retries, after the erasure, carry the masked address only."""
    from test_webhooks import hooked_relay
    receiver, sink, relay = hooked_relay(workdir, dns_server, cleanup)
    receiver.answers.extend([(503, {})] * 100)
    sink.handler.busy_rcpts.update({GONE, "keep@dest.test"})
    send(relay, [GONE, "keep@dest.test"], "events")

    def refused():
        ids = {h["webhook-id"] for h, e in receiver.events(503) if GONE in json.dumps(e)}
        return ids if len(ids) >= 3 else None  # accepted, and deferred for each recipient
    waiting = wait_until(refused, 30, "three events refused by the endpoint")
    status, text = admin_post(relay, "/erase", json.dumps({"address": GONE, "tenant": "dev"}))
    assert status == 200, text
    assert json.loads(text)["eventsMasked"] >= len(waiting), text
    with receiver.lock:
        receiver.answers.clear()

    def retried():
        got = {h["webhook-id"]: e for h, e in receiver.events(200)}
        return got if waiting <= set(got) else None
    got = wait_until(retried, 30, "the refused events retried and taken")
    with receiver.lock:
        sent = [b.decode() for _, _, b, s in receiver.requests if s == 200]
    assert all(GONE not in b.lower() for b in sent), "an event after the erasure named the address"
    accepted = next(e for i, e in got.items() if i in waiting and e["type"] == "message.accepted")
    assert sorted(accepted["data"]["recipients"]) == ["g***@dest.test", "keep@dest.test"], accepted
