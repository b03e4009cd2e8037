"""Real peers for the relay's integration tests, all on 127.0.0.1 with OS-chosen ports.

- `dns`: a Knot DNS server serving zones this suite writes (MX records, the relay's DKIM record).
- `Sink`: an aiosmtpd receiver, optionally offering STARTTLS and answering 4xx a number of times.
- `Relay`: `cascade-relay serve` on a config derived from a `cascade-relay dev` bundle, in MX mode
  pointed at the DNS server and the sink's port.

Every wait is bounded; every process is stopped at the end of its test.
"""
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as AioSMTP

ROOT = Path(__file__).resolve().parents[2]
BINARY = Path(os.environ.get("CASCADE_RELAY_BIN", ROOT / "target" / "debug" / "cascade-relay"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=15.0, proc=None, log=None):
    """Until something listens on `port`; with `proc`, fails at once (with `log`'s tail) when
    the process exited instead."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if proc is not None and proc.poll() is not None:
                tail = Path(log).read_text(errors="replace")[-3000:] if log else ""
                raise RuntimeError(f"the process exited ({proc.returncode}) before listening on {port}:\n{tail}")
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def wait_until(predicate, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError(f"{what} not reached within {timeout}s")


# ---------------------------------------------------------------- DNS (Knot)

class Dns:
    def __init__(self, workdir):
        self.dir = Path(workdir)
        self.port = free_port()
        self.zones = {}
        self.proc = None

    def set_zone(self, origin, records):
        """records: zone-file lines relative to nothing (absolute names)."""
        self.zones[origin] = records

    def start(self):
        (self.dir / "db").mkdir(exist_ok=True)
        zones_conf = ""
        for origin, records in self.zones.items():
            body = f"$ORIGIN {origin}.\n$TTL 60\n@ IN SOA ns.{origin}. admin.{origin}. 1 60 60 600 60\n@ IN NS ns.{origin}.\nns IN A 127.0.0.1\n"
            body += "\n".join(records) + "\n"
            (self.dir / f"{origin}.zone").write_text(body)
            zones_conf += f"  - domain: {origin}\n"
        conf = (
            f"server:\n  listen: 127.0.0.1@{self.port}\n  rundir: {self.dir}\n\n"
            f"database:\n  storage: {self.dir / 'db'}\n\n"
            f"template:\n  - id: default\n    storage: {self.dir}\n    file: \"%s.zone\"\n\n"
            f"zone:\n{zones_conf}"
        )
        (self.dir / "knot.conf").write_text(conf)
        self.log = open(self.dir / "knot.log", "w")
        self.proc = subprocess.Popen(["knotd", "-c", str(self.dir / "knot.conf")], stdout=self.log, stderr=subprocess.STDOUT)
        wait_until(self._answers, 15, "knot answering")

    def _answers(self):
        try:
            origin = next(iter(self.zones))
            self.resolver().resolve(origin, "SOA")
            return True
        except Exception:
            return False

    def resolver(self):
        import dns.resolver
        r = dns.resolver.Resolver(configure=False)
        r.nameservers = ["127.0.0.1"]
        r.port = self.port
        r.lifetime = 3
        return r

    def txt(self, name):
        answer = self.resolver().resolve(name, "TXT")
        return b"".join(b"".join(rr.strings) for rr in answer)

    def stop(self):
        if self.proc:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


# ---------------------------------------------------------------- SMTP sink (aiosmtpd)

class SinkHandler:
    def __init__(self):
        self.messages = []  # (mail_from, rcpt_tos, data bytes, tls bool)
        self.temp_failures = 0
        self.reject_rcpts = set()
        self.busy_rcpts = set()  # answered 451 at RCPT
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.reject_rcpts:
            return "550 5.1.1 No such user here (test sink)"
        if address in self.busy_rcpts:
            return "451 4.2.1 Mailbox busy, try later (test sink)"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            if self.temp_failures > 0:
                self.temp_failures -= 1
                return "451 4.3.0 try again later (test sink)"
            self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content, session.ssl is not None))
        return "250 2.0.0 OK (test sink)"


def make_certificate(d, name):
    """A throwaway CA and a server certificate it issued. Returns (ca.crt, leaf.crt, leaf.key)."""
    ca_key, ca, key, csr, leaf = (d / f"{name}-ca.key", d / f"{name}-ca.crt", d / f"{name}.key", d / f"{name}.csr", d / f"{name}.crt")
    run = lambda *a: subprocess.run(list(a), check=True, capture_output=True)
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca), "-days", "2", "-subj", f"/CN={name} test CA")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", "/CN=mx.dest.test")
    ext = d / f"{name}.ext"
    ext.write_text("subjectAltName=DNS:mx.dest.test,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
    run("openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial", "-out", str(leaf), "-days", "2", "-extfile", str(ext))
    return ca, leaf, key


class Sink:
    """aiosmtpd on 127.0.0.1. `tls`: offer STARTTLS with a certificate for `mx.dest.test` and
    IP 127.0.0.1 issued by a fresh CA (`self.cert` is the CA's PEM, what a client trusts). `auth`: (user, password) it
    requires, over TLS only."""

    def __init__(self, workdir, tls=False, auth=None, name="sink"):
        self.port = free_port()
        self.handler = SinkHandler()
        self.logins = []
        kwargs = {}
        if tls or auth:
            self.cert, leaf, key = make_certificate(Path(workdir), name)
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(str(leaf), str(key))
            kwargs = {"tls_context": ctx, "require_starttls": False}
        if auth:
            from aiosmtpd.smtp import AuthResult

            def authenticator(server, session, envelope, mechanism, data):
                ok = (data.login.decode(), data.password.decode()) == auth
                self.logins.append((data.login.decode(), ok))
                return AuthResult(success=ok)
            kwargs.update(authenticator=authenticator, auth_required=True, auth_require_tls=True)
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, server_hostname="mx.dest.test", **kwargs)

    def start(self):
        self.controller.start()
        return self

    def stop(self):
        self.controller.stop()

    @property
    def messages(self):
        with self.handler.lock:
            return list(self.handler.messages)


# ---------------------------------------------------------------- the relay

class Relay:
    """A relay whose bundle comes from `cascade-relay dev`; `configure` points it at DNS and a sink."""

    def __init__(self, workdir):
        self.dir = Path(workdir) / "relay"
        self.submission, self.submissions, self.http, self.admin = free_port(), free_port(), free_port(), free_port()
        # `dev` writes the bundle, then serves: start it, wait for the listener, stop it.
        proc = subprocess.Popen([str(BINARY), "dev", "--data-dir", str(self.dir), "--submission", f"127.0.0.1:{self.submission}",
                                 "--submissions", f"127.0.0.1:{self.submissions}", "--http", f"127.0.0.1:{self.http}", "--admin", f"127.0.0.1:{self.admin}"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            wait_port(self.submission)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        self.creds = json.loads((self.dir / "credentials.json").read_text())
        self.zone = (self.dir / "dns.zone").read_text()
        self.config = self.dir / "serve.yaml"
        self.config.write_text((self.dir / "relay.yaml").read_text())
        self.proc = None

    def configure(self, dns, sink, tweak=None):
        cfg = (self.dir / "relay.yaml").read_text()
        delivery = (
            "delivery:\n  mode: mx\n  mxPort: %d\n  nameservers:\n  - 127.0.0.1:%d\n"
            # The sink is on loopback, which delivery refuses unless allowed.
            "  allowedDestinationCidrs: [127.0.0.1/32]\n"
            "  retry:\n    initial: 1s\n    maxDelay: 2s\n    maxAge: 5d\n" % (sink.port, dns.port)
        )
        cfg = re.sub(r"delivery:\n(  .*\n)+", delivery, cfg)
        if tweak:
            cfg = tweak(cfg)
        self.config.write_text(cfg)
        return self

    def start(self):
        self.log = open(self.dir / "relay.log", "ab")
        self.proc = subprocess.Popen([str(BINARY), "serve", "--config", str(self.config)], stdout=self.log, stderr=self.log)
        wait_port(self.submission, proc=self.proc, log=self.dir / "relay.log")
        return self

    def kill9(self):
        self.proc.kill()
        self.proc.wait(10)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(40)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def https_context(self):
        """Verifies the tenant HTTPS listener: the relay's own (dev, self-signed) certificate."""
        return ssl.create_default_context(cafile=str(self.dir / "tls.crt"))

    def admin_context(self, cert="admin-client"):
        """Verifies the admin listener against the pool's admin authority and presents the client
        certificate `cert` (`admin-client`: the operator's kind; `admin`: a relay's; None: none)."""
        ctx = ssl.create_default_context(cafile=str(self.dir / "admin-ca.crt"))
        if cert:
            ctx.load_cert_chain(str(self.dir / f"{cert}.crt"), str(self.dir / f"{cert}.key"))
        return ctx

    def admin_get(self, path, cert="admin-client"):
        """GET on the admin listener (mutual TLS, the relay verified under the pool's relay name
        from its configuration, as the operator does): the body; raises on a status but 200."""
        import http.client
        name = re.search(r"relayName: (\S+)", self.config.read_text()).group(1).strip("'\"")

        class Connection(http.client.HTTPSConnection):
            def connect(self):
                self.sock = self._context.wrap_socket(socket.create_connection((self.host, self.port), self.timeout), server_hostname=name)

        c = Connection("127.0.0.1", self.admin, timeout=5, context=self.admin_context(cert))
        try:
            c.request("GET", path)
            r = c.getresponse()
            body = r.read().decode()
            assert r.status == 200, (r.status, body)
            return body
        finally:
            c.close()

    def metrics(self):
        # Prometheus' way: HTTPS, the server verified, no client certificate.
        return self.admin_get("/metrics", cert=None)

    def metric(self, name):
        """The sample `name` (with its labels, as `x{reason="y"}`), or, for a bare name, the sum
        over its label sets (the per-tenant counters); 0 when there is none."""
        text = self.metrics()
        m = re.search(r"^" + re.escape(name) + r" (\S+)$", text, re.M)
        if m:
            return float(m.group(1))
        if "{" in name:
            return 0.0
        return sum(float(v) for v in re.findall(r"^" + re.escape(name) + r"\{[^}]*\} (\S+)$", text, re.M))

    def log_text(self):
        return (self.dir / "relay.log").read_bytes().decode(errors="replace")

    def dkim_zone_records(self):
        """The relay's dns.zone lines, for the `example.test` zone."""
        return [l.replace(".example.test.", "").replace("example.test.", "@") for l in self.zone.splitlines() if l.strip()]

    def swaks(self, *extra, to="rcpt@dest.test", sender="dev@example.test", tls=True, auth=True, body=None, header=None, timeout=60):
        cmd = ["swaks", "--server", f"127.0.0.1:{self.submission}", "--from", sender, "--to", to, "--timeout", "20"]
        if tls:
            cmd.append("--tls")
        if auth:
            cmd += ["--auth", "PLAIN", "--auth-user", self.creds["username"], "--auth-password", self.creds["password"]]
        if body is not None:
            cmd += ["--body", body]
        if header is not None:
            cmd += ["--header", header]
        cmd += list(extra)
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def workdir():
    with tempfile.TemporaryDirectory(prefix="cascade-it-") as d:
        yield Path(d)


@pytest.fixture
def dns_server(workdir):
    servers = []

    def make(zones):
        d = workdir / f"dns{len(servers)}"
        d.mkdir()
        s = Dns(d)
        for origin, recs in zones.items():
            s.set_zone(origin, recs)
        s.start()
        servers.append(s)
        return s
    yield make
    for s in servers:
        s.stop()


@pytest.fixture
def cleanup():
    stack = []
    yield stack.append
    for stop in reversed(stack):
        try:
            stop()
        except Exception:
            pass


def standard_setup(workdir, dns_server, cleanup, sink_tls=False, tweak=None, zones=None, extra_example=()):
    """DNS with `dest.test MX 10 mx.dest.test -> 127.0.0.1` and the relay's DKIM/SPF/DMARC
    records; a sink; the relay in MX mode. Returns (dns, sink, relay), all running."""
    sink = Sink(workdir, tls=sink_tls).start()
    cleanup(sink.stop)
    relay = Relay(workdir)
    all_zones = {
        "dest.test": ["@ IN MX 10 mx.dest.test.", "mx IN A 127.0.0.1"],
        "example.test": relay.dkim_zone_records() + ["@ IN MX 10 mx.dest.test."] + list(extra_example),
    }
    all_zones.update(zones or {})
    dns = dns_server(all_zones)
    relay.configure(dns, sink, tweak).start()
    cleanup(relay.stop)
    return dns, sink, relay


def pylib(spec):
    """Puts a pure-Python PyPI test peer (`name==version`) on sys.path, fetched once into the cache."""
    import sys
    out = subprocess.run(["bash", str(ROOT / "tests/integration/pylib.sh"), spec], capture_output=True, text=True, timeout=300, check=True)
    path = out.stdout.strip()
    if path not in sys.path:
        sys.path.insert(0, path)


def module_setup(workdir, tweak=None):
    """`standard_setup` for a module-scoped fixture: yields (sink, relay), then stops everything."""
    stops, dns_servers = [], []

    def dns_server(zones):
        (workdir / "dns").mkdir(exist_ok=True)
        d = Dns(workdir / "dns")
        for origin, records in zones.items():
            d.set_zone(origin, records)
        d.start()
        dns_servers.append(d)
        return d

    _, sink, relay = standard_setup(workdir, dns_server, stops.append, tweak=tweak)
    yield sink, relay
    for stop in reversed(stops):
        stop()
    for d in dns_servers:
        d.stop()


class SilentListener:
    """A TCP listener on `ip:port` that accepts connections, counts and holds them, and never
    says a word: a tarpit MX, or a trap that must never see a connection."""

    def __init__(self, ip, port):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((ip, port))
        self.sock.listen(256)
        self.sock.settimeout(0.2)
        self.held = []
        self.stopped = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopped:
            try:
                self.held.append(self.sock.accept()[0])
            except (socket.timeout, OSError):
                pass

    @property
    def connections(self):
        return len(self.held)

    def stop(self):
        self.stopped = True
        self.thread.join(2)
        for s in self.held:
            s.close()
        self.sock.close()
