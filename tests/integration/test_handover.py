"""Scale-down without stranded mail, on loopback: two relays of one pool (one bundle: the same
spool key, DKIM keys and API keys; each its own spool). Relay A cannot reach its MX (a closed
port), so what it accepts stays queued; stopped with SIGTERM, it hands every queued message to
relay B, which delivers them. A spool directory left by a relay killed with SIGKILL is emptied by
`cascade-relay drain`, the mechanism the operator runs on orphaned spool volumes."""
import re
import subprocess
import time

from conftest import BINARY, Relay, free_port, standard_setup, wait_port, wait_until
from helpers import message, submit_client


def peer_of(a, name, mx_port, peers, admin):
    """Another relay on a's bundle: own ports (admin: `admin`), spool and audit; MX port
    `mx_port`; handover to the admin ports `peers`."""
    b = Relay.__new__(Relay)
    b.dir, b.creds, b.zone, b.proc = a.dir, a.creds, a.zone, None
    b.submission, b.submissions, b.http, b.admin = free_port(), free_port(), free_port(), admin
    cfg = a.config.read_text()
    for old, new in [(a.submission, b.submission), (a.submissions, b.submissions), (a.http, b.http), (a.admin, b.admin)]:
        cfg = cfg.replace(f"127.0.0.1:{old}", f"127.0.0.1:{new}")
    cfg = cfg.replace("  dir: spool\n", f"  dir: spool-{name}\n").replace("  dir: audit\n", f"  dir: audit-{name}\n")
    cfg = re.sub(r"mxPort: \d+", f"mxPort: {mx_port}", cfg)
    cfg += "handover:\n  peers: [%s]\n  timeout: 30s\n" % ", ".join(f"'127.0.0.1:{p}'" for p in peers)
    b.config = a.dir / f"serve-{name}.yaml"
    b.config.write_text(cfg)
    return b


def start(r, cleanup):
    r.log = open(r.dir / f"relay-{r.submission}.log", "ab")
    r.log_path = r.dir / f"relay-{r.submission}.log"
    r.proc = subprocess.Popen([str(BINARY), "serve", "--config", str(r.config)], stdout=r.log, stderr=r.log)
    cleanup(r.stop)
    wait_port(r.submission)
    return r


def queued(r, name):
    return sorted((r.dir / f"spool-{name}").glob("*.msg"))


def send(r, n, tag):
    c = submit_client(r)
    for i in range(n):
        c.sendmail("dev@example.test", [f"rcpt{i}@dest.test"], message(subject=f"{tag} {i}"))
    c.quit()


def test_a_stopping_relay_hands_its_queue_to_a_peer_and_a_dead_ones_spool_is_drained(workdir, dns_server, cleanup):
    dns, sink, base = standard_setup(workdir, dns_server, cleanup)
    base.stop()
    closed = free_port()  # nothing listens: A's deliveries are deferred
    a_admin, b_admin = free_port(), free_port()
    # Each lists every relay of the pool, itself included (as the headless Service does).
    b = peer_of(base, "b", sink.port, [a_admin, b_admin], b_admin)
    a = peer_of(base, "a", closed, [a_admin, b_admin], a_admin)
    start(b, cleanup)
    start(a, cleanup)

    send(a, 5, "handover")
    wait_until(lambda: len(queued(a, "a")) == 5 and "delivery attempt" in a.log_path.read_text(), 30, "A's deliveries deferred")
    assert not sink.messages
    a.stop()
    assert a.proc.returncode == 0
    assert queued(a, "a") == [], "A's spool is empty after the handover"
    log = a.log_path.read_text()
    assert '"handed_over":5' in log and "the queue was handed to peer relays" in log, log[-2000:]
    msgs = wait_until(lambda: len([m for m in sink.messages if b"handover" in m[2]]) >= 5 and sink.messages, 60, "B delivering A's queue")
    subjects = sorted(re.search(rb"Subject: (handover \d)", m[2]).group(1) for m in msgs if b"handover" in m[2])
    assert subjects == [f"handover {i}".encode() for i in range(5)]
    assert all(b"DKIM-Signature:" in m[2] for m in msgs), "signed once, by A, and passed on as is"
    assert 'cascade_relay_messages_handed_over_total{direction="received"} 5' in b.metrics()

    # A relay killed outright leaves its spool behind; drain hands it over.
    a2 = start(peer_of(base, "a", closed, [b.admin], free_port()), cleanup)
    send(a2, 3, "drained")
    wait_until(lambda: len(queued(a2, "a")) == 3, 30, "three queued at A")
    a2.kill9()
    r = subprocess.run([str(BINARY), "drain", "--config", str(a2.config), "--spool", str(a2.dir / "spool-a"), "--timeout", "30s"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "3 message(s) handed over, 0 left" in r.stdout, r.stdout + r.stderr
    assert queued(a2, "a") == []
    wait_until(lambda: len([m for m in sink.messages if b"drained" in m[2]]) == 3, 60, "B delivering the drained spool")


def test_a_replayed_handover_is_not_delivered_twice_and_an_unsealed_one_is_refused(workdir, dns_server, cleanup):
    """A captured handover (here: what relay A sends to a recording peer) replayed to relay B is
    stored and delivered once; the same request again, or after B delivered it, queues nothing.
    A request without the sealed claim, with a claim for another file, or with a stale time is
    refused with 401."""
    import http.client
    import http.server
    import ssl
    import threading

    dns, sink, base = standard_setup(workdir, dns_server, cleanup)
    base.stop()
    captured = []

    class Recorder(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            captured.append((self.path, self.headers["Authorization"], body))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    recorder = http.server.HTTPServer(("127.0.0.1", 0), Recorder)
    # A peer of the pool: the relay certificate, client certificates verified by the authority.
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(base.dir / "admin-ca.crt"))
    tls.load_cert_chain(str(base.dir / "admin.crt"), str(base.dir / "admin.key"))
    tls.verify_mode = ssl.CERT_REQUIRED
    recorder.socket = tls.wrap_socket(recorder.socket, server_side=True)
    threading.Thread(target=recorder.serve_forever, daemon=True).start()
    cleanup(recorder.shutdown)
    a = start(peer_of(base, "a", free_port(), [recorder.server_address[1]], free_port()), cleanup)
    send(a, 1, "replayed")
    wait_until(lambda: len(queued(a, "a")) == 1, 30, "one message queued at A")
    a.stop()
    assert len(captured) == 1, captured
    path, claim, body = captured[0]
    assert claim.startswith("Cascade-Handover "), claim

    b = start(peer_of(base, "b", sink.port, [], free_port()), cleanup)

    def post(p, auth, data, cert="admin"):
        c = http.client.HTTPSConnection("127.0.0.1", b.admin, timeout=30, context=b.admin_context(cert))
        c.request("POST", p, body=data, headers={"Authorization": auth} if auth else {})
        r = c.getresponse()
        out = (r.status, r.read().decode())
        c.close()
        return out

    # Only a relay of the pool may hand over: no client certificate, or the operator's, is 403
    # before the claim is looked at.
    assert post(path, claim, body, cert=None)[0] == 403
    assert post(path, claim, body, cert="admin-client")[0] == 403
    assert post(path, None, body)[0] == 401
    assert post(path, claim, body[:-1] + bytes([body[-1] ^ 1]))[0] == 401, "a claim is bound to its file"
    stale = re.sub(r"at=\d+", "at=1000", path)
    assert post(stale, claim, body)[0] == 401, "a stale claim"
    assert post(path, claim, body) == (200, "stored\n")
    assert post(path, claim, body) == (200, "already queued or finished here\n"), "replayed while queued"
    wait_until(lambda: len([m for m in sink.messages if b"replayed" in m[2]]) == 1, 60, "B delivering it")
    wait_until(lambda: queued(b, "b") == [], 30, "B's spool empty after delivery")
    assert post(path, claim, body) == (200, "already queued or finished here\n"), "replayed after delivery"
    time.sleep(2)
    assert len([m for m in sink.messages if b"replayed" in m[2]]) == 1, "delivered once"
    assert 'cascade_relay_messages_handed_over_total{direction="replayed"} 2' in b.metrics()


def test_any_relay_of_the_pool_answers_for_a_message_another_one_took(workdir, dns_server, cleanup):
    import httpx
    _, sink, base = standard_setup(workdir, dns_server, cleanup)
    base.stop()
    a_admin, b_admin = free_port(), free_port()
    a = start(peer_of(base, "a", sink.port, [a_admin, b_admin], a_admin), cleanup)
    b = start(peer_of(base, "b", sink.port, [a_admin, b_admin], b_admin), cleanup)
    auth = (base.creds["username"], base.creds["password"])
    with httpx.Client(verify=str(base.dir / "tls.crt"), timeout=30) as c:
        sent = c.post(f"https://127.0.0.1:{a.http}/v1/messages", json={"from": "dev@example.test", "to": ["rcpt@dest.test"], "subject": "via A", "text": "x"}, auth=auth)
        assert sent.status_code == 202, sent.text
        msg_id = sent.json()["id"]
        wait_until(lambda: sink.messages, 30, "A's delivery")

        def at_b():
            r = c.get(f"https://127.0.0.1:{b.http}/v1/messages/{msg_id}", auth=auth)
            return r.json() if r.status_code == 200 and r.json()["recipients"][0]["status"] == "delivered" else None
        # B never held the message: it asked A over the pool's mutual TLS.
        assert wait_until(at_b, 30, "B answering for A's message")["id"] == msg_id
        assert c.get(f"https://127.0.0.1:{b.http}/v1/messages/0123456789abcdef0123", auth=auth).status_code == 404
    # Peers' lookups need a pool certificate: a client without one is refused at A's admin port.
    r = subprocess.run(["curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}", f"https://127.0.0.1:{a_admin}/messages/{msg_id}"], capture_output=True, text=True, timeout=30)
    assert r.stdout == "403", r.stdout + r.stderr
