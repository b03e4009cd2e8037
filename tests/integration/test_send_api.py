"""The HTTP send API, `POST /v1/messages/raw`, on the tenant HTTPS listener with real clients
(httpx over HTTP/2 and HTTP/1.1, curl): a raw message reaches a real sink DKIM-verified by
python3-dkim, binary content byte-exact; refusals are RFC 9457 problems naming the field (401
with WWW-Authenticate, 403 for a missing scope or a foreign domain, 413, 422, 429), and a refused
request queues nothing."""
import base64
import json
import subprocess

import dkim
import httpx
import pytest

from conftest import standard_setup, wait_until


def dns_lookup(dns):
    return lambda name, timeout=5: dns.txt(name.decode().rstrip("."))


def raw(content, sender="dev@example.test", to=("rcpt@dest.test",)):
    return {"from": sender, "to": list(to), "content": base64.b64encode(content).decode()}


MESSAGE = (b"From: dev@example.test\r\nTo: rcpt@dest.test\r\nSubject: =?utf-8?b?R3LDvMOfZQ==?=\r\n"
           b"MIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
           + base64.encodebytes(bytes(range(256))).replace(b"\n", b"\r\n"))


@pytest.fixture
def api(workdir, dns_server, cleanup):
    # A 1 MiB message limit keeps the oversized case small.
    dns, sink, relay = standard_setup(workdir, dns_server, cleanup, tweak=lambda c: c.replace("maxMessageSize: 25MiB", "maxMessageSize: 1MiB"))
    url = f"https://127.0.0.1:{relay.http}/v1/messages/raw"
    auth = (relay.creds["username"], relay.creds["password"])
    return dns, sink, relay, url, auth


@pytest.mark.parametrize("http2", [True, False])
def test_a_raw_send_is_queued_signed_and_delivered_byte_exact(api, http2):
    dns, sink, relay, url, auth = api
    with httpx.Client(http2=http2, verify=str(relay.dir / "tls.crt"), timeout=30) as c:
        r = c.post(url, json=raw(MESSAGE, to=["rcpt@dest.test", "rcpt@DEST.TEST", "other@dest.test"]), auth=auth)
        assert r.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["id"] and [x["status"] for x in body["recipients"]] == ["queued", "queued"], body
    msgs = wait_until(lambda: sink.messages if len(sink.messages) == 1 else None, 30, "delivery to the sink")
    mail_from, rcpts, data, _tls = msgs[0]
    assert mail_from == "dev@example.test" and sorted(rcpts) == ["other@dest.test", "rcpt@dest.test"]
    assert data.startswith(b"DKIM-Signature: v=1; a=rsa-sha256;") and dkim.verify(data, dnsfunc=dns_lookup(dns))
    assert not dkim.verify(data.replace(b"Subject: =?utf-8", b"Subject: =?UTF-8"), dnsfunc=dns_lookup(dns)), "the check is not vacuous"
    assert f"id {body['id']}".encode() in data, "the Received: header names the queue id the API returned"
    attachment = data.split(b"\r\n\r\n", 1)[1]
    assert base64.b64decode(attachment) == bytes(range(256)), "binary content byte-exact"


def test_curl_with_a_bearer_key_and_lf_line_ends(api):
    dns, sink, relay, url, auth = api
    lf = b"From: dev@example.test\nTo: rcpt@dest.test\nSubject: lf\n\nline one\nline two\n"
    r = subprocess.run(["curl", "-sS", "--cacert", str(relay.dir / "tls.crt"), "-H", f"Authorization: Bearer {auth[0]}:{auth[1]}",
                        "-H", "content-type: application/json", "--data-binary", json.dumps(raw(lf)), "-w", " %{http_code}", url],
                       capture_output=True, text=True, timeout=30)
    body, code = r.stdout.rsplit(" ", 1)
    assert code == "202", r.stdout + r.stderr
    msgs = wait_until(lambda: sink.messages, 30, "delivery to the sink")
    assert msgs[0][2].endswith(b"\r\nline one\r\nline two\r\n") and dkim.verify(msgs[0][2], dnsfunc=dns_lookup(dns))


def problem(r, status):
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"] == "application/problem+json", r.headers
    p = r.json()
    assert p["status"] == status and p["title"] and p["detail"], p
    return p["detail"]


def test_refusals_name_the_field_and_queue_nothing(api):
    dns, sink, relay, url, auth = api
    good = raw(b"From: dev@example.test\r\nSubject: x\r\n\r\nx\r\n")
    with httpx.Client(http2=True, verify=str(relay.dir / "tls.crt"), timeout=30) as c:
        r = c.post(url, json=good)
        assert "Basic" in r.headers["www-authenticate"] and "Bearer" in r.headers["www-authenticate"]
        problem(r, 401)
        problem(c.post(url, json=good, auth=(auth[0], "wrong")), 401)
        problem(c.post(url, json=good, headers={"Authorization": f"Bearer {auth[0]}"}), 401)
        cases = [
            ({**good, "to": ["rcpt@dest.test", "not an address"]}, "/to/1: not an address"),
            ({**good, "to": []}, "/to: at least one"),
            ({**good, "from": "nobody"}, "/from: not an address"),
            ({**good, "content": "%%%"}, "/content: not base64"),
            ({**good, "extra": 1}, "unknown field"),
            (raw(b"From: dev@example.test\r\n\r\nbare\rcr\r\n"), "/content: the message contains a bare CR"),
            (raw(b"From: dev@example.test\r\n\r\nnul\0\r\n"), "/content: the message contains a NUL"),
            (raw(b"From: dev@example.test\r\n\r\n" + b"a" * 2000 + b"\r\n"), "/content: the message has a line longer"),
            (raw(b"From: someone@elsewhere.test\r\n\r\nx\r\n"), "/content: From: header domain is not authorized"),
        ]
        for body, detail in cases:
            assert detail in problem(c.post(url, json=body, auth=auth), 422), (body, detail)
        assert "/from: Sender address domain is not authorized" in problem(c.post(url, json={**good, "from": "x@elsewhere.test"}, auth=auth), 403)
        problem(c.post(url, content=b"{not json", auth=auth, headers={"content-type": "application/json"}), 422)
        big = raw(b"From: dev@example.test\r\n\r\n" + (b"a" * 900 + b"\r\n") * 1300)
        assert "/content: the message is larger than the limit" in problem(c.post(url, json=big, auth=auth), 413)
    assert relay.metric("cascade_relay_messages_accepted_total") == 0
    assert 'reason="bare_line_ending"' in relay.metrics() and 'reason="sender_domain"' in relay.metrics()
    audit = "".join(p.read_text() for p in (relay.dir / "audit").glob("audit-*.jsonl"))
    assert '"event":"api.request"' in audit.replace(" ", "") and "cascade_sk_" not in audit, "requests audited, secrets never"


def test_a_key_without_the_scope_gets_403_and_the_rate_limit_429(workdir, dns_server, cleanup):
    def tweak(cfg):
        cfg = cfg.replace("  - messages:send\n", "", 1)
        return cfg
    _, _, relay = standard_setup(workdir, dns_server, cleanup, tweak=tweak)
    url = f"https://127.0.0.1:{relay.http}/v1/messages/raw"
    auth = (relay.creds["username"], relay.creds["password"])
    good = raw(b"From: dev@example.test\r\nSubject: x\r\n\r\nx\r\n")
    with httpx.Client(verify=str(relay.dir / "tls.crt"), timeout=30) as c:
        assert "messages:send" in problem(c.post(url, json=good, auth=auth), 403)
    relay.stop()
    relay.config.write_text(relay.config.read_text().replace("  - smtp:submit\n", "  - smtp:submit\n  - messages:send\n", 1).replace("messagesPerMinute: null", "messagesPerMinute: 2"))
    relay.start()
    with httpx.Client(verify=str(relay.dir / "tls.crt"), timeout=30) as c:
        codes = [c.post(url, json=good, auth=auth) for _ in range(3)]
    assert [r.status_code for r in codes] == [202, 202, 429], [r.text for r in codes]
    assert codes[2].headers["retry-after"] == "60" and "Rate limit of 2 messages per minute" in problem(codes[2], 429)
