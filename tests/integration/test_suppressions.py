"""Suppression lists against the running relay: a hard bounce (550 5.1.1 at a real sink's RCPT)
suppresses the address, so the next RCPT to it gets `550 5.1.1 <addr>: recipient suppressed
(bounced <date>)`, the send API lists it as `suppressed`, and a `message.suppressed` event
reaches the tenant's webhook; the list survives a restart; the API (httpx) lists, reads, adds,
removes, imports and exports entries; another tenant's key sees and changes nothing."""
import hashlib
import json

import httpx

from conftest import standard_setup, wait_until
from helpers import message, submit_client
from test_webhooks import hooked_relay

OTHER_SECRET = "cascade_sk_another-tenants-secret-0123456789abcdef"


def second_tenant(cfg):
    digest = hashlib.sha256(OTHER_SECRET.encode()).hexdigest()
    cfg = cfg.replace("tenants:\n", "tenants:\n- name: other\n  domains: []\n", 1)
    return cfg.replace("apiKeys:\n", f"apiKeys:\n- id: ck_00000000000000ff\n  tenant: other\n  secretHash: sha256:{digest}\n  scopes: [suppressions:manage]\n", 1)


def rcpt(relay, address):
    c = submit_client(relay)
    try:
        c.mail("dev@example.test")
        return c.rcpt(address)
    finally:
        c.quit()


def test_a_hard_bounce_suppresses_the_address_for_smtp_and_the_api(workdir, dns_server, cleanup):
    receiver, sink, relay = hooked_relay(workdir, dns_server, cleanup, second_tenant)
    sink.handler.reject_rcpts.add("nobody@dest.test")
    c = submit_client(relay)
    c.sendmail("dev@example.test", ["nobody@dest.test", "rcpt@dest.test"], message(subject="first"))
    c.quit()
    api = f"https://127.0.0.1:{relay.http}/v1"
    auth = (relay.creds["username"], relay.creds["password"])
    http = httpx.Client(verify=str(relay.dir / "tls.crt"), timeout=30, auth=auth)
    cleanup(http.close)
    entry = wait_until(lambda: (r := http.get(f"{api}/suppressions/nobody%40dest.test")).status_code == 200 and r.json(), 30, "the bounce suppressed")
    assert entry["reason"] == "bounce" and entry["messageId"] and "550 5.1.1" in entry["detail"], entry
    assert http.get(f"{api}/suppressions/rcpt@dest.test").status_code == 404, "a delivered address is not suppressed"

    code, text = rcpt(relay, "NoBody@dest.test")
    assert code == 550 and text.decode().startswith("5.1.1 <nobody@dest.test>: recipient suppressed (bounced 20"), text
    assert rcpt(relay, "rcpt@dest.test")[0] == 250
    body = {"from": "dev@example.test", "to": ["nobody@dest.test", "rcpt@dest.test"], "subject": "s", "text": "t"}
    r = http.post(f"{api}/messages", json=body)
    assert r.status_code == 202 and {x["address"]: x["status"] for x in r.json()["recipients"]} == {"rcpt@dest.test": "queued", "nobody@dest.test": "suppressed"}, r.text
    r = http.post(f"{api}/messages", json={**body, "to": ["nobody@dest.test"]})
    assert r.status_code == 422 and r.json()["detail"].startswith("/to: every recipient is suppressed"), r.text
    events = wait_until(lambda: [e for _, e in receiver.events() if e["type"] == "message.suppressed"] or None, 30, "message.suppressed")
    assert events[0]["data"]["recipient"] == "nobody@dest.test" and events[0]["data"]["reason"] == "bounce"

    # Another tenant's key, scoped for suppressions, sees and changes nothing of dev's list.
    other = httpx.Client(verify=str(relay.dir / "tls.crt"), timeout=30, auth=("ck_00000000000000ff", OTHER_SECRET))
    cleanup(other.close)
    assert other.get(f"{api}/suppressions").json()["items"] == []
    assert other.get(f"{api}/suppressions/nobody@dest.test").status_code == 404
    assert other.delete(f"{api}/suppressions/nobody@dest.test").status_code == 404
    assert http.get(f"{api}/suppressions/nobody@dest.test").status_code == 200, "still suppressed for dev"
    # The dev key lacks nothing; a key without the scope is refused.
    assert other.post(f"{api}/messages", json=body).status_code == 403

    relay.stop()
    relay.start()
    assert rcpt(relay, "nobody@dest.test")[0] == 550, "kept across a restart"


def test_the_api_adds_removes_pages_imports_and_exports(workdir, dns_server, cleanup):
    _, sink, relay = standard_setup(workdir, dns_server, cleanup)
    api = f"https://127.0.0.1:{relay.http}/v1"
    http = httpx.Client(verify=str(relay.dir / "tls.crt"), timeout=30, auth=(relay.creds["username"], relay.creds["password"]))
    cleanup(http.close)
    r = http.put(f"{api}/suppressions/Optout@Dest.test", json={"detail": "asked to stop"})
    assert r.status_code == 201 and r.json()["address"] == "optout@dest.test" and r.json()["reason"] == "manual", r.text
    assert http.put(f"{api}/suppressions/optout@dest.test", json={"reason": "complaint"}).status_code == 200
    code, text = rcpt(relay, "optout@dest.test")
    assert code == 550 and b"recipient suppressed (complained" in text, text
    for bad, detail in [({"reason": "spite"}, "/reason"), ({"expiresAt": "2000-01-01T00:00:00Z"}, "/expiresAt"), ({"address": "x@y.test"}, "/address"), ({"detail": "a\nb"}, "/detail")]:
        r = http.put(f"{api}/suppressions/a@dest.test", json=bad)
        assert r.status_code == 422 and r.json()["detail"].startswith(detail), r.text
    assert http.put(f"{api}/suppressions/not-an-address").status_code == 422
    ndjson = "\n".join(json.dumps({"address": f"user{i}@dest.test", "reason": "bounce"}) for i in range(250)) + "\n" + '{"address": "broken"}\n{"nope": 1}\n'
    r = http.post(f"{api}/suppressions/import", content=ndjson, headers={"content-type": "application/x-ndjson"})
    assert r.status_code == 200 and r.json()["imported"] == 250 and [e["line"] for e in r.json()["errors"]] == [251, 252], r.text
    seen, cursor = [], None
    for _ in range(10):
        page = http.get(f"{api}/suppressions", params={"reason": "bounce", "limit": 100, **({"cursor": cursor} if cursor else {})}).json()
        seen += [e["address"] for e in page["items"]]
        cursor = page["nextCursor"]
        if not cursor:
            break
    assert len(seen) == 250 and len(set(seen)) == 250 and seen == sorted(seen)
    export = http.get(f"{api}/suppressions/export")
    assert export.headers["content-type"] == "application/x-ndjson" and len(export.text.splitlines()) == 251
    assert http.delete(f"{api}/suppressions/optout@dest.test").status_code == 204
    assert http.delete(f"{api}/suppressions/optout@dest.test").status_code == 404
    assert rcpt(relay, "optout@dest.test")[0] == 250, "removed: mail flows again"
    assert http.get(f"{api}/suppressions", params={"reason": "spite"}).status_code == 422
    audit = "".join(p.read_text() for p in (relay.dir / "audit").glob("audit-*.jsonl"))
    assert '"suppression.added"' in audit and '"suppression.removed"' in audit and "optout@dest.test" not in audit, "changes audited, addresses masked"


def arf(message_id, recipient):
    """A feedback report as a mailbox provider sends one (RFC 5965), returning the headers."""
    return (f"From: fbl@isp.example\r\nTo: feedback@example.test\r\nSubject: FW: complaint\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: multipart/report; report-type=feedback-report; boundary=\"part\"\r\n\r\n"
            f"--part\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report.\r\n"
            f"--part\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\nUser-Agent: isp-fbl/2.1\r\nVersion: 1\r\n"
            f"Original-Mail-From: <dev@example.test>\r\nOriginal-Rcpt-To: <{recipient}>\r\nArrival-Date: Thu, 3 Dec 2026 09:00:00 +0000\r\n\r\n"
            f"--part\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <{message_id}>\r\nFrom: dev@example.test\r\nTo: {recipient}\r\nSubject: hello\r\n\r\n"
            f"--part--\r\n").encode()


def test_a_complaint_is_an_event_and_suppresses_the_recipient(workdir, dns_server, cleanup):
    receiver, sink, relay = hooked_relay(workdir, dns_server, cleanup, second_tenant)
    api = f"https://127.0.0.1:{relay.http}/v1"
    http = httpx.Client(verify=str(relay.dir / "tls.crt"), timeout=30, auth=(relay.creds["username"], relay.creds["password"]))
    cleanup(http.close)
    sent = http.post(f"{api}/messages", json={"from": "dev@example.test", "to": ["reader@dest.test"], "subject": "news", "text": "t", "tags": {"list": "news"}})
    assert sent.status_code == 202, sent.text
    msg_id = sent.json()["id"]
    wait_until(lambda: sink.messages, 30, "delivery")
    report = arf(f"{msg_id}@localhost", "reader@dest.test")
    other = httpx.post(f"{api}/feedback", content=report, auth=("ck_00000000000000ff", OTHER_SECRET), verify=str(relay.dir / "tls.crt"), timeout=30)
    assert other.status_code == 422 and "not one of this tenant's" in other.json()["detail"], "another tenant cannot complain about dev's mail"
    assert http.post(f"{api}/feedback", content=b"From: x@y.test\r\n\r\nnot a report\r\n").status_code == 422
    assert http.post(f"{api}/feedback", content=arf(f"{msg_id}@localhost", "stranger@dest.test")).status_code == 422, "not a recipient of it"
    r = http.post(f"{api}/feedback", content=report, headers={"content-type": "message/rfc822"})
    assert r.status_code == 202 and r.json() == {"messageId": msg_id, "recipient": "reader@dest.test", "feedbackType": "abuse", "suppressed": True}, r.text
    entry = http.get(f"{api}/suppressions/reader@dest.test").json()
    assert entry["reason"] == "complaint" and entry["messageId"] == msg_id
    code, text = rcpt(relay, "reader@dest.test")
    assert code == 550 and b"recipient suppressed (complained" in text, text
    events = wait_until(lambda: [e for _, e in receiver.events() if e["type"] == "message.complained"] or None, 30, "message.complained")
    assert events[0]["data"] == {"messageId": msg_id, "tenant": "dev", "recipient": "reader@dest.test", "tags": {"list": "news"}, "feedbackType": "abuse"}


def test_reads_and_list_changes_are_rate_limited_per_key_and_sends_are_not(workdir, dns_server, cleanup):
    """A key's API requests other than sends (status reads ask every peer of the pool; list
    changes write) are limited per key: over `apiRequestsPerMinute` they get 429 with
    Retry-After, another key does not, and sending goes on."""
    import re
    limited = lambda c: second_tenant(re.sub(r"apiRequestsPerMinute: \d+", "apiRequestsPerMinute: 5", c))
    _, sink, relay = standard_setup(workdir, dns_server, cleanup, tweak=limited)
    api = f"https://127.0.0.1:{relay.http}/v1"
    http = httpx.Client(verify=str(relay.dir / "tls.crt"), timeout=30, auth=(relay.creds["username"], relay.creds["password"]))
    cleanup(http.close)
    codes = [http.get(f"{api}/messages/0123456789abcdef0123").status_code for _ in range(3)]
    codes += [http.put(f"{api}/suppressions/a{i}@dest.test", json={"reason": "manual"}).status_code for i in range(2)]
    assert codes == [404, 404, 404, 201, 201], codes
    over = http.get(f"{api}/suppressions")
    assert over.status_code == 429 and over.headers["retry-after"] == "60" and "more than 5 requests in a minute" in over.json()["detail"], over.text
    assert http.delete(f"{api}/suppressions/a0@dest.test").status_code == 429
    other = httpx.get(f"{api}/suppressions", auth=("ck_00000000000000ff", OTHER_SECRET), verify=str(relay.dir / "tls.crt"), timeout=30)
    assert other.status_code == 200, "another key has its own allowance"
    sent = http.post(f"{api}/messages", json={"from": "dev@example.test", "to": ["rcpt@dest.test"], "subject": "s", "text": "t"})
    assert sent.status_code == 202, "sends are metered per message, not by this limit"
    assert 'cascade_relay_messages_rejected_total{reason="api_rate"} 2' in relay.metrics()


def test_a_feedback_report_by_mail_to_another_relay_of_the_pool_is_taken(workdir, dns_server, cleanup):
    """Two relays of one pool (one bundle, own spools): relay A sends and finishes the message;
    the tenant forwards the provider's report by mail to the pool's feedback address through
    relay B, which finds the message on A over the admin channel and suppresses the recipient."""
    import smtplib

    from conftest import free_port
    from test_handover import peer_of, start
    _, sink, base = standard_setup(workdir, dns_server, cleanup)
    base.stop()
    a_admin, b_admin = free_port(), free_port()
    a = peer_of(base, "a", sink.port, [a_admin, b_admin], a_admin)
    b = peer_of(base, "b", sink.port, [a_admin, b_admin], b_admin)
    for r in (a, b):
        r.config.write_text(r.config.read_text() + "feedbackAddress: feedback@pool.test\n")
        start(r, cleanup)
    sent = httpx.post(f"https://127.0.0.1:{a.http}/v1/messages", json={"from": "dev@example.test", "to": ["reader@dest.test"], "subject": "news", "text": "t"},
                      auth=(a.creds["username"], a.creds["password"]), verify=str(a.dir / "tls.crt"), timeout=30)
    assert sent.status_code == 202, sent.text
    msg_id = sent.json()["id"]
    wait_until(lambda: any(b"news" in m[2] for m in sink.messages), 30, "delivery by relay A")

    c = submit_client(b)
    code, text = c.mail("dev@example.test")[0], None
    assert c.rcpt("feedback@pool.test")[0] == 250
    code, text = c.rcpt("someone@dest.test")
    assert code == 452 and b"take a message of their own" in text, text
    c.rset()
    try:
        c.sendmail("dev@example.test", ["feedback@pool.test"], b"From: x@y.test\r\nSubject: hi\r\n\r\nnot a report\r\n")
        raise AssertionError("a non-report was taken")
    except smtplib.SMTPDataError as e:
        assert e.smtp_code == 550 and e.smtp_error.startswith(b"5.6.0 feedback report refused: not a feedback report"), e
    try:
        c.sendmail("dev@example.test", ["feedback@pool.test"], arf(f"{msg_id}@localhost", "stranger@dest.test"))
        raise AssertionError("a report naming a stranger was taken")
    except smtplib.SMTPDataError as e:
        assert e.smtp_code == 550 and b"not a recipient" in e.smtp_error, e
    c.mail("dev@example.test")
    c.rcpt("feedback@pool.test")
    code, text = c.data(arf(f"{msg_id}@localhost", "reader@dest.test"))
    c.quit()
    assert code == 250 and text.decode() == f"2.6.0 feedback report accepted: abuse from message {msg_id}, recipient suppressed", text
    entry = httpx.get(f"https://127.0.0.1:{b.http}/v1/suppressions/reader@dest.test", auth=(b.creds["username"], b.creds["password"]), verify=str(b.dir / "tls.crt"), timeout=30)
    assert entry.status_code == 200 and entry.json()["reason"] == "complaint" and entry.json()["messageId"] == msg_id, entry.text
    assert rcpt(b, "reader@dest.test")[0] == 550
    assert not any(b"not a report" in m[2] or b"feedback-report" in m[2] for m in sink.messages), "reports are never delivered"
