"""The send API's structured messages, idempotency and status, against a running relay with real
clients (httpx over HTTP/2 and HTTP/1.1): `POST /v1/messages` reaches a real sink DKIM-verified
by python3-dkim, non-ASCII headers and binary attachments decoded byte-exact by Python's own
email parser, bcc never in a header; an `Idempotency-Key` replay delivers once, also across a
relay restart; `GET /v1/messages/{id}` follows a message (sent by the API or by SMTP) to
delivered and bounced, survives a restart, and is 404 to another tenant's key."""
import base64
import email
import email.policy
import hashlib
import os
import smtplib

import dkim
import httpx
import pytest

from conftest import standard_setup, wait_until
from helpers import tls_context

OTHER_SECRET = "cascade_sk_another-tenants-secret-0123456789abcdef"


def second_tenant(cfg):
    """A tenant `other` with a key of its own (id ck_00000000000000ff) that may use the API."""
    digest = hashlib.sha256(OTHER_SECRET.encode()).hexdigest()
    cfg = cfg.replace("tenants:\n", "tenants:\n- name: other\n  domains: []\n", 1)
    return cfg.replace("apiKeys:\n", f"apiKeys:\n- id: ck_00000000000000ff\n  tenant: other\n  secretHash: sha256:{digest}\n  scopes: [messages:send]\n", 1)


@pytest.fixture
def api(workdir, dns_server, cleanup):
    dns, sink, relay = standard_setup(workdir, dns_server, cleanup, tweak=second_tenant)
    base = f"https://127.0.0.1:{relay.http}/v1"
    auth = (relay.creds["username"], relay.creds["password"])
    return dns, sink, relay, base, auth


def client(relay, http2=True):
    return httpx.Client(http2=http2, verify=str(relay.dir / "tls.crt"), timeout=30)


def dns_lookup(dns):
    return lambda name, timeout=5: dns.txt(name.decode().rstrip("."))


PNG = bytes(range(256)) * 12 + b"\r\n.\r\n\x00\xff"


def structured():
    return {
        "from": {"name": "Zoë Ünïcode", "address": "dev@example.test"},
        "to": ["rcpt@dest.test"], "cc": [{"name": "Çé", "address": "cc@dest.test"}], "bcc": ["hidden@dest.test"],
        "replyTo": "help@example.test",
        "subject": "Grüße – ✓ 日本語",
        "text": "héllo wörld\n", "html": "<p>héllo <img src=\"cid:logo\"></p>",
        "headers": {"X-Campaign": "spring ☀"},
        "attachments": [
            {"filename": "bild ü.bin", "contentType": "application/octet-stream", "content": base64.b64encode(PNG).decode()},
            {"filename": "logo.png", "contentType": "image/png", "content": base64.b64encode(b"\x89PNG\r\n\x1a\n").decode(), "contentId": "logo"},
        ],
        "tags": {"campaign": "spring", "user": "42"},
    }


@pytest.mark.parametrize("http2", [True, False])
def test_a_structured_send_reaches_the_sink_decoded_byte_exact(api, http2):
    dns, sink, relay, base, auth = api
    with client(relay, http2) as c:
        r = c.post(f"{base}/messages", json=structured(), auth=auth)
        assert r.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
    assert r.status_code == 202, r.text
    body = r.json()
    assert [x["address"] for x in body["recipients"]] == ["rcpt@dest.test", "cc@dest.test", "hidden@dest.test"]
    msgs = wait_until(lambda: sink.messages if len(sink.messages) == 1 else None, 30, "delivery to the sink")
    mail_from, rcpts, data, _tls = msgs[0]
    assert mail_from == "dev@example.test" and sorted(rcpts) == ["cc@dest.test", "hidden@dest.test", "rcpt@dest.test"]
    assert dkim.verify(data, dnsfunc=dns_lookup(dns)), "DKIM-verified by python3-dkim"
    head = data.split(b"\r\n\r\n", 1)[0]
    assert head.isascii() and b"hidden@dest.test" not in head.lower() and b"\nbcc:" not in head.lower(), "bcc never in a header"
    m = email.message_from_bytes(data, policy=email.policy.default)
    assert m["Subject"] == "Grüße – ✓ 日本語"
    assert m["From"].addresses[0].display_name == "Zoë Ünïcode" and m["From"].addresses[0].addr_spec == "dev@example.test"
    assert m["Cc"].addresses[0].display_name == "Çé" and str(m["Reply-To"]) == "help@example.test"
    assert m["X-Campaign"] == "spring ☀"
    assert m["Message-ID"] == f"<{body['id']}@localhost>"
    assert m.get_body(("plain",)).get_content() == "héllo wörld\n"
    assert "héllo" in m.get_body(("html",)).get_content()
    parts = {p.get_filename() or p["Content-ID"]: p for p in m.walk() if p.get_content_disposition() in ("attachment", "inline") and not p.is_multipart()}
    assert parts["bild ü.bin"].get_payload(decode=True) == PNG, "binary attachment byte-exact"
    assert parts["<logo>"].get_payload(decode=True) == b"\x89PNG\r\n\x1a\n", "inline part by content id"
    assert b"campaign" not in data and b"spring\r\n" not in data, "tags never reach recipients"


def test_header_injection_is_refused_and_nothing_is_queued(api):
    dns, sink, relay, base, auth = api
    with client(relay) as c:
        for field, value in [("subject", "hi\r\nBcc: victim@dest.test"), ("headers", {"X-A": "v\nBcc: victim@dest.test"}), ("headers", {"Received": "forged"}),
                             ("from", {"name": "A\r\nBcc: x@y.test", "address": "dev@example.test"})]:
            r = c.post(f"{base}/messages", json={**structured(), field: value}, auth=auth)
            assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json", r.text
            assert r.json()["detail"].startswith(f"/{field}"), r.text
        r = c.post(f"{base}/messages", json={**structured(), "from": "someone@elsewhere.test"}, auth=auth)
        assert r.status_code == 403 and r.json()["detail"].startswith("/from"), r.text
    assert relay.metric("cascade_relay_messages_accepted_total") == 0


def test_an_idempotent_replay_delivers_once_across_a_relay_restart(api):
    dns, sink, relay, base, auth = api
    message = {**structured(), "attachments": [], "subject": "once"}
    key = {"Idempotency-Key": "order-7f3a"}
    with client(relay) as c:
        first = c.post(f"{base}/messages", json=message, auth=auth, headers=key)
        assert first.status_code == 202, first.text
        again = c.post(f"{base}/messages", json=message, auth=auth, headers=key)
        assert (again.status_code, again.json(), again.headers.get("idempotent-replayed")) == (202, first.json(), "true")
        other = c.post(f"{base}/messages", json={**message, "subject": "different"}, auth=auth, headers=key)
        assert other.status_code == 422 and "Idempotency-Key" in other.json()["detail"], other.text
        bad = c.post(f"{base}/messages", json=message, auth=auth, headers={"Idempotency-Key": "x" * 300})
        assert bad.status_code == 422 and bad.json()["detail"].startswith("Idempotency-Key"), bad.text
    wait_until(lambda: len(sink.messages) == 1 or None, 30, "the first delivery")
    relay.stop()
    relay.start()
    with client(relay) as c:
        after = c.post(f"{base}/messages", json=message, auth=auth, headers=key)
        assert (after.status_code, after.json()) == (202, first.json()), after.text
        raw_key = {"Idempotency-Key": "order-7f3a-raw"}
        raw = {"from": "dev@example.test", "to": ["rcpt@dest.test"], "content": base64.b64encode(b"From: dev@example.test\r\nSubject: raw\r\n\r\nx\r\n").decode()}
        r1, r2 = (c.post(f"{base}/messages/raw", json=raw, auth=auth, headers=raw_key) for _ in range(2))
        assert r1.status_code == r2.status_code == 202 and r1.json()["id"] == r2.json()["id"]
    wait_until(lambda: len(sink.messages) == 2 or None, 30, "the raw send's delivery")
    assert [m[2].count(b"Subject: once") for m in sink.messages] == [1, 0], "the replays sent nothing"
    assert relay.metric("cascade_relay_messages_accepted_total") == 1, "since the restart: the raw message, once"


def status(c, base, auth, msg_id):
    r = c.get(f"{base}/messages/{msg_id}", auth=auth)
    assert r.status_code == 200, r.text
    return r.json()


def test_status_follows_messages_to_delivered_and_bounced_and_is_hidden_from_another_tenant(api):
    dns, sink, relay, base, auth = api
    sink.handler.reject_rcpts.add("nobody@dest.test")
    sink.handler.temp_failures = 1000  # deferred until the sink recovers
    with client(relay) as c:
        sent = c.post(f"{base}/messages", json={**structured(), "to": ["rcpt@dest.test", "nobody@dest.test"], "cc": [], "bcc": []}, auth=auth)
        assert sent.status_code == 202, sent.text
        msg_id = sent.json()["id"]
        def when(predicate):
            s = status(c, base, auth, msg_id)
            return s if predicate(s["recipients"]) else None
        deferred = wait_until(lambda: when(lambda rs: rs[0]["status"] == "deferred"), 30, "a deferral")
        assert "451" in deferred["recipients"][0]["lastReply"] and deferred["tags"] == {"campaign": "spring", "user": "42"}
        with sink.handler.lock:
            sink.handler.temp_failures = 0
        final = wait_until(lambda: when(lambda rs: all(r["status"] in ("delivered", "bounced") for r in rs)), 30, "the final states")
        by = {r["address"]: r for r in final["recipients"]}
        assert by["rcpt@dest.test"]["status"] == "delivered" and by["nobody@dest.test"]["status"] == "bounced"
        assert "550" in by["nobody@dest.test"]["lastReply"]
        # Another tenant's key, valid and scoped, sees nothing; nor does a made-up id.
        hidden = c.get(f"{base}/messages/{msg_id}", auth=("ck_00000000000000ff", OTHER_SECRET))
        assert hidden.status_code == 404 and hidden.headers["content-type"] == "application/problem+json", hidden.text
        assert c.get(f"{base}/messages/{os.urandom(10).hex()}", auth=auth).status_code == 404
        assert c.get(f"{base}/messages/{msg_id}").status_code == 401
        assert c.get(f"{base}/messages/{msg_id}", auth=(auth[0], "wrong")).status_code == 401
    # A message sent by SMTP is found by the id its 250 named.
    s = smtplib.SMTP("127.0.0.1", relay.submission, timeout=20)
    s.starttls(context=tls_context())
    s.login(*auth)
    s.mail("dev@example.test")
    s.rcpt("rcpt@dest.test")
    code, reply = s.data(b"From: dev@example.test\r\nSubject: by smtp\r\n\r\nx\r\n")
    s.quit()
    smtp_id = reply.decode().split()[-1]
    assert code == 250
    with client(relay) as c:
        wait_until(lambda: status(c, base, auth, smtp_id)["recipients"][0]["status"] == "delivered" or None, 30, "the SMTP message delivered")
    relay.stop()
    relay.start()
    with client(relay, http2=False) as c:
        assert {r["status"] for r in status(c, base, auth, msg_id)["recipients"]} == {"delivered", "bounced"}, "kept across a restart"
        assert status(c, base, auth, smtp_id)["recipients"][0]["status"] == "delivered"
    assert b"nobody@dest.test" not in (relay.dir / "spool" / "state.redb").read_bytes(), "the state database is sealed"
