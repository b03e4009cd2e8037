"""The tenant HTTP listener is HTTPS only (hyper behind the relay's TLS 1.2+ policy), HTTP/2 and
HTTP/1.1 by ALPN, with real clients (curl, httpx): a plaintext request gets no HTTP answer, a
POST is refused before its body is read, and request heads and bodies are bounded."""
import base64
import socket
import ssl
import subprocess
import time

import httpx
import pytest

from conftest import Relay


@pytest.fixture
def relay(workdir, cleanup):
    r = Relay(workdir).start()
    cleanup(r.stop)
    return r


def tls_socket(relay):
    raw = socket.create_connection(("127.0.0.1", relay.http), timeout=10)
    ctx = relay.https_context()
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx.wrap_socket(raw, server_hostname="127.0.0.1")


def read_answer(s, deadline=5.0):
    """What the server sent until it closed or `deadline` seconds passed."""
    s.settimeout(deadline)
    data = b""
    try:
        while chunk := s.recv(65536):
            data += chunk
            if b"\r\n\r\n" in data:
                break
    except (TimeoutError, socket.timeout, ssl.SSLError, ConnectionResetError):
        pass
    return data


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_plaintext_gets_no_http_answer(relay):
    s = socket.create_connection(("127.0.0.1", relay.http), timeout=10)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: relay\r\n\r\n")
    answer = read_answer(s)
    s.close()
    assert not answer.startswith(b"HTTP/"), answer[:80]


@pytest.mark.parametrize("version,flag", [("2", "--http2"), ("1.1", "--http1.1")])
def test_curl_over_http2_and_http11_verifies_the_relay(relay, version, flag):
    r = subprocess.run(["curl", "-sS", flag, "--cacert", str(relay.dir / "tls.crt"), "-o", "/dev/null", "-D", "-", "-w", "%{http_version} %{http_code}",
                        f"https://127.0.0.1:{relay.http}/readyz"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.rstrip().endswith(f"{version} 200"), r.stdout
    assert "strict-transport-security: max-age=31536000" in r.stdout.lower()
    # TLS below 1.2 is refused.
    old = subprocess.run(["curl", "-sS", "--tlsv1.1", "--tls-max", "1.1", "--cacert", str(relay.dir / "tls.crt"), f"https://127.0.0.1:{relay.http}/readyz"],
                         capture_output=True, text=True, timeout=30)
    assert old.returncode != 0


def test_httpx_over_http2_posts_are_authenticated(relay):
    with httpx.Client(http2=True, verify=str(relay.dir / "tls.crt"), timeout=10) as c:
        url = f"https://127.0.0.1:{relay.http}/dmarc/reports"
        r = c.post(url, content=b"<feedback/>")
        assert r.http_version == "HTTP/2" and r.status_code == 401 and r.headers["www-authenticate"].startswith("Basic")
        r = c.post(url, content=b"<feedback/>", headers={"Authorization": basic(relay.creds["username"], "cascade_sk_wrong")})
        assert r.status_code == 401, r.text
        assert c.get(f"https://127.0.0.1:{relay.http}/nothing").status_code == 404


def test_a_key_without_the_scope_is_authenticated_then_forbidden(workdir, cleanup):
    r = Relay(workdir)
    r.config.write_text(r.config.read_text().replace("  - dmarc:upload\n", "", 1))
    r.start()
    cleanup(r.stop)
    with httpx.Client(http2=True, verify=str(r.dir / "tls.crt"), timeout=10) as c:
        answer = c.post(f"https://127.0.0.1:{r.http}/dmarc/reports", content=b"not a report", headers={"Authorization": basic(r.creds["username"], r.creds["password"])})
        assert answer.status_code == 403 and "dmarc:upload" in answer.text, answer.text


def test_a_post_is_refused_before_its_body_is_read(relay):
    """10 MiB announced, nothing sent: the refusal comes at once, the body is never awaited."""
    for auth, code in [(None, b"401"), (basic(relay.creds["username"], "cascade_sk_wrong"), b"401")]:
        s = tls_socket(relay)
        head = f"POST /dmarc/reports HTTP/1.1\r\nHost: relay\r\nContent-Length: {10 * 1024 * 1024}\r\n"
        head += f"Authorization: {auth}\r\n" if auth else ""
        started = time.monotonic()
        s.sendall((head + "\r\n").encode())
        answer = read_answer(s)
        s.close()
        assert answer.startswith(b"HTTP/1.1 " + code), answer[:120]
        assert time.monotonic() - started < 3


@pytest.fixture
def uploader(workdir, cleanup):
    """A relay whose dev key may upload DMARC reports (it carries every scope), with a 1 MiB
    message limit, so the listener's body limit is the 10 MiB a report may have (the send API
    would take a larger message's base64)."""
    r = Relay(workdir)
    r.config.write_text(r.config.read_text().replace("maxMessageSize: 25MiB", "maxMessageSize: 1MiB"))
    r.start()
    cleanup(r.stop)
    return r


def test_bodies_and_heads_are_bounded(uploader):
    relay = uploader
    good = basic(relay.creds["username"], relay.creds["password"])
    # Announced larger than the limit: 413 before any of it is sent.
    s = tls_socket(relay)
    s.sendall(f"POST /dmarc/reports HTTP/1.1\r\nHost: relay\r\nAuthorization: {good}\r\nContent-Length: {11 * 1024 * 1024}\r\n\r\n".encode())
    assert read_answer(s).startswith(b"HTTP/1.1 413")
    s.close()
    # Streamed (chunked) past the limit: cut off at the limit with 413.
    with httpx.Client(verify=str(relay.dir / "tls.crt"), timeout=30) as c:
        def chunks():
            for _ in range(11):
                yield b"x" * (1024 * 1024)
        try:
            r = c.post(f"https://127.0.0.1:{relay.http}/dmarc/reports", content=chunks(), headers={"Authorization": good})
            assert r.status_code == 413, r.status_code
        except (httpx.WriteError, httpx.RemoteProtocolError, httpx.ReadError):
            pass  # the server answered 413 and closed while the client was still sending
    # Too many headers: 431. Too large a head: 431, or closed while the client is still sending
    # it; either way never served.
    for head, may_close in [(b"".join(b"X-%d: y\r\n" % i for i in range(200)), False), (b"X-Big: " + b"a" * 70000 + b"\r\n", True)]:
        s = tls_socket(relay)
        try:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: relay\r\n" + head + b"\r\n")
            answer = read_answer(s)
        except (ssl.SSLError, BrokenPipeError, ConnectionResetError):
            answer = b""
        s.close()
        assert answer.startswith(b"HTTP/1.1 431") or (may_close and answer == b""), answer[:80]


def test_bodies_in_progress_are_bounded_per_listener(uploader):
    """Eight authorized uploads that dribble their bodies, each from its own loopback address
    (under the per-address cap), hold the listener's body slots: the ninth POST gets 503 with
    Retry-After before its body is read; once they end, a POST is served again."""
    relay = uploader
    good = basic(relay.creds["username"], relay.creds["password"])
    ctx = relay.https_context()
    ctx.set_alpn_protocols(["http/1.1"])

    def dribbling(source):
        raw = socket.create_connection(("127.0.0.1", relay.http), timeout=10, source_address=(source, 0))
        s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        s.sendall(f"POST /dmarc/reports HTTP/1.1\r\nHost: relay\r\nAuthorization: {good}\r\nContent-Length: 1000000\r\n\r\n".encode() + b"x" * 1000)
        return s

    holders = [dribbling(f"127.0.0.{i}") for i in range(2, 10)]
    time.sleep(1)  # the relay has taken their slots
    with httpx.Client(verify=str(relay.dir / "tls.crt"), timeout=10) as c:
        r = c.post(f"https://127.0.0.1:{relay.http}/dmarc/reports", content=b"<feedback/>", headers={"Authorization": good})
        assert r.status_code == 503 and r.headers["retry-after"] == "1", (r.status_code, r.text)
        assert c.get(f"https://127.0.0.1:{relay.http}/healthz").status_code == 200, "GETs need no body slot"
        for s in holders:
            s.close()
        deadline = time.monotonic() + 10
        while (r := c.post(f"https://127.0.0.1:{relay.http}/dmarc/reports", content=b"<feedback/>", headers={"Authorization": good})).status_code == 503:
            assert time.monotonic() < deadline, "body slots never freed"
            time.sleep(0.2)
        assert r.status_code in (400, 422), (r.status_code, r.text)  # served: the report is refused as a report


def test_a_slow_head_is_cut_off(relay):
    """A client that never finishes its request head is disconnected after the 10 s header timeout."""
    s = tls_socket(relay)
    s.sendall(b"GET /healthz HTTP/1.1\r\n")
    started = time.monotonic()
    s.settimeout(20)
    try:
        data = s.recv(1024)
    except (ssl.SSLError, ConnectionResetError):
        data = b""
    waited = time.monotonic() - started
    s.close()
    assert not data.startswith(b"HTTP/1.1 200") and 5 < waited < 16, (data[:60], waited)
