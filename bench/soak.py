"""Soak benchmark (loopback, bounded; not part of the tests): the relay under sustained load while
one client floods connections, another brute-forces AUTH, a third trickles bytes, and a second
tenant sends to a tarpit MX.

Setup: the `cascade-relay dev` bundle (release build) turned into MX delivery with two tenants:
`dev` (the well-behaved clients, to `dest.test`, whose MX is a fast sink on 127.0.0.1) and
`tarpit` (to `tarpit.test`, whose MX on 127.0.0.5 accepts connections and never answers), with
Knot on loopback serving both zones.

1. Capacity: well-behaved clients (STARTTLS, AUTH, 4 KB messages) as fast as they can for
   CAPACITY_S seconds.
2. Soak: the same clients paced at LOAD (0.8) of that capacity for DURATION_S (600) seconds,
   while 127.0.0.2 keeps FLOOD (300) connections open and reopens them, 127.0.0.3 tries wrong
   AUTH secrets as fast as it is answered, 127.0.0.4 keeps TRICKLE (40) sessions sending one byte
   every 2 s (half before AUTH, half inside DATA with the tarpit tenant's key), and the tarpit
   tenant submits TARPIT_RATE (20) messages/s that its MX never takes.
3. Report: accepted throughput of the well-behaved clients against the paced target (target:
   within 10%), the relay's RSS every 10 s (target: flat, last quarter within 10% + 16 MiB of
   the first), and lost messages (acknowledged for `dest.test` but not at its sink after the
   queue drained; target: zero). Exit 1 if a target is missed.

    /usr/bin/python3 bench/soak.py         # DURATION_S=600 CAPACITY_S=30 SESSIONS=20 FLOOD=300 TRICKLE=40
"""
import asyncio
import base64
import hashlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from load import reply  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
from conftest import Dns  # noqa: E402  (Knot on loopback, as the tests run it)
DURATION_S = int(os.environ.get("DURATION_S", 600))
CAPACITY_S = int(os.environ.get("CAPACITY_S", 30))
SESSIONS = int(os.environ.get("SESSIONS", 20))
FLOOD = int(os.environ.get("FLOOD", 300))
LOAD = float(os.environ.get("LOAD", 0.8))
TRICKLE = int(os.environ.get("TRICKLE", 40))
TARPIT_RATE = float(os.environ.get("TARPIT_RATE", 20))
SIZE = 4096
TARPIT_KEY = {"username": "ck_7a7a7a7a7a7a7a7a", "password": "cascade_sk_soak-tarpit-tenant-" + "x" * 32}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def tls():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def login(port, user, password, source="127.0.0.1"):
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    await reply(reader)
    writer.write(b"EHLO load.test\r\nSTARTTLS\r\n")
    await reply(reader)
    code, _ = await reply(reader)
    if code != 220:
        raise ConnectionError(f"STARTTLS {code}")
    await writer.start_tls(tls())
    writer.write(b"EHLO load.test\r\n")
    await reply(reader)
    token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
    writer.write(f"AUTH PLAIN {token}\r\n".encode())
    code, _ = await reply(reader)
    return reader, writer, code


class Sink:
    """A fast SMTP sink (pipelining, no TLS): counts the messages whose body says `soak` in a
    counter shared with the benchmark's process."""

    def __init__(self, received):
        self.received = received

    async def session(self, reader, writer):
        writer.write(b"220 sink ESMTP\r\n")
        try:
            while line := await reader.readline():
                verb = line[:4].upper()
                if verb in (b"EHLO", b"HELO"):
                    writer.write(b"250-sink\r\n250-PIPELINING\r\n250 SIZE 100000000\r\n")
                elif verb == b"DATA":
                    writer.write(b"354 go\r\n")
                    await writer.drain()
                    body = await reader.readuntil(b"\r\n.\r\n")
                    if b"Subject: soak" in body:
                        with self.received.get_lock():
                            self.received.value += 1
                    writer.write(b"250 2.0.0 ok\r\n")
                elif verb == b"QUIT":
                    writer.write(b"221 bye\r\n")
                    break
                else:
                    writer.write(b"250 ok\r\n")
                if not reader._buffer:  # noqa: SLF001 - flush only when no pipelined command waits
                    await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        writer.close()


async def tarpit_session(reader, writer):
    """The tarpit MX: takes the connection, never says a word."""
    try:
        await reader.read()
    except ConnectionError:
        pass
    writer.close()


class Stats:
    def __init__(self):
        self.acked = 0
        self.tarpit_acked = 0
        self.tarpit_refused = 0
        self.trickle_sessions = 0
        self.trickle_cut = 0
        self.refused = 0
        self.logins_refused = 0
        self.flood_opened = 0
        self.flood_refused = 0
        self.brute_tries = 0
        self.brute_blocked = 0


async def submit(reader, writer, sender, rcpt, body):
    """One pipelined transaction in an authenticated session; whether the message was accepted."""
    writer.write(b"MAIL FROM:<" + sender + b">\r\nRCPT TO:<" + rcpt + b">\r\nDATA\r\n")
    codes = [(await reply(reader))[0] for _ in range(3)]
    if codes != [250, 250, 354]:
        writer.write(b"RSET\r\n")
        await reply(reader)
        return False
    writer.write(body)
    return (await reply(reader))[0] == 250


async def well_behaved(port, creds, stats, deadline, interval):
    """One session submitting a message every `interval` seconds (0: back to back)."""
    body = b"From: <dev@example.test>\r\nTo: <sink@dest.test>\r\nSubject: soak\r\n\r\n" + (b"x" * 76 + b"\r\n") * (SIZE // 78) + b".\r\n"
    next_at = time.monotonic()
    writer = None
    while time.monotonic() < deadline:
        try:
            if writer is None:
                # (Re)connect: sessions end after maxCommands, as a real client's do.
                reader, writer, code = await login(port, creds["username"], creds["password"])
                if code != 235:
                    stats.logins_refused += 1
                    writer.close()
                    writer = None
                    await asyncio.sleep(0.5)
                    continue
            if interval:
                next_at += interval
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            if await submit(reader, writer, b"dev@example.test", b"sink@dest.test", body):
                stats.acked += 1
            else:
                stats.refused += 1
        except ConnectionError:
            writer = None
    if writer is not None:
        writer.write(b"QUIT\r\n")
        writer.close()


async def flood(port, stats, deadline):
    """127.0.0.2 holds up to FLOOD idle connections, reopening each as it closes."""
    async def one():
        while time.monotonic() < deadline:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=("127.0.0.2", 0))
                stats.flood_opened += 1
                line = await asyncio.wait_for(reader.readline(), 10)
                if not line.startswith(b"220"):
                    stats.flood_refused += 1
                    writer.close()
                    await asyncio.sleep(0.2)
                    continue
                await asyncio.sleep(2)  # idle, then go and come back
                writer.close()
            except (OSError, asyncio.TimeoutError):
                await asyncio.sleep(0.2)
    await asyncio.gather(*(one() for _ in range(FLOOD)))


async def brute(port, creds, stats, deadline):
    """127.0.0.3 guesses secrets for the real key id, one after another."""
    while time.monotonic() < deadline:
        try:
            reader, writer, code = await login(port, creds["username"], f"cascade_sk_guess{stats.brute_tries}", source="127.0.0.3")
            stats.brute_tries += 1
            writer.close()
        except (OSError, ConnectionError, AssertionError):
            stats.brute_blocked += 1
            await asyncio.sleep(0.05)


async def trickle(port, stats, deadline):
    """127.0.0.4: sessions that stay under every per-read timeout by sending one byte every 2 s,
    half before AUTH (a command) and half inside DATA (with the tarpit tenant's key)."""
    async def one(in_data):
        while time.monotonic() < deadline:
            try:
                if in_data:
                    reader, writer, code = await login(port, TARPIT_KEY["username"], TARPIT_KEY["password"], source="127.0.0.4")
                    writer.write(b"MAIL FROM:<t@tarpit-sender.test>\r\nRCPT TO:<v@tarpit.test>\r\nDATA\r\nFrom: <t@tarpit-sender.test>\r\n\r\n")
                    for _ in range(3):
                        await reply(reader)
                else:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=("127.0.0.4", 0))
                    await reply(reader)
                stats.trickle_sessions += 1
                while time.monotonic() < deadline:
                    writer.write(b"x" if in_data else b"N")
                    await writer.drain()
                    await asyncio.sleep(2)
                    if reader.at_eof() or reader._buffer:  # noqa: SLF001 - the relay answered: cut off
                        stats.trickle_cut += 1
                        break
                writer.close()
            except (OSError, ConnectionError, asyncio.IncompleteReadError):
                stats.trickle_cut += 1
                await asyncio.sleep(0.5)
    await asyncio.gather(*(one(i % 2 == 1) for i in range(TRICKLE)))


async def tarpit_tenant(port, stats, deadline):
    """The second tenant submits TARPIT_RATE messages/s to a domain whose MX never answers."""
    body = b"From: <t@tarpit-sender.test>\r\nSubject: tarpit\r\n\r\n" + (b"y" * 76 + b"\r\n") * 13 + b".\r\n"
    writer = None
    next_at = time.monotonic()
    while time.monotonic() < deadline:
        try:
            if writer is None:
                reader, writer, code = await login(port, TARPIT_KEY["username"], TARPIT_KEY["password"], source="127.0.0.6")
            next_at += 1 / TARPIT_RATE
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            if await submit(reader, writer, b"t@tarpit-sender.test", b"victim@tarpit.test", body):
                stats.tarpit_acked += 1
            else:
                stats.tarpit_refused += 1
        except ConnectionError:
            writer = None


async def measure(port, creds, seconds, rate, hostile):
    """The well-behaved sessions here; the attackers, when `hostile`, in a process of their own,
    so the load generator's interpreter is not what limits the well-behaved throughput."""
    import multiprocessing
    stats = Stats()
    deadline = time.monotonic() + seconds
    interval = SESSIONS / rate if rate else 0
    attackers = None
    if hostile:
        # Spawned, not forked: a fork would inherit this running event loop.
        ctx = multiprocessing.get_context("spawn")
        results = ctx.Queue()
        attackers = ctx.Process(target=attack, args=(port, creds, seconds, results))
        attackers.start()
    start = time.monotonic()
    await asyncio.gather(*(well_behaved(port, creds, stats, deadline, interval) for _ in range(SESSIONS)))
    elapsed = time.monotonic() - start
    if attackers is not None:
        for name, value in (await asyncio.get_running_loop().run_in_executor(None, results.get, True, 120)).items():
            setattr(stats, name, value)
        attackers.join(30)
    return stats, elapsed


def attack(port, creds, seconds, results):
    """The attackers' process: flood, brute force, trickle and the tarpit tenant."""
    async def run():
        stats = Stats()
        deadline = time.monotonic() + seconds
        tasks = [flood(port, stats, deadline), brute(port, creds, stats, deadline), trickle(port, stats, deadline), tarpit_tenant(port, stats, deadline)]
        try:
            # Bounded: an attacker blocked on a reply the relay never sends is cut off.
            await asyncio.wait_for(asyncio.gather(*tasks), seconds + 15)
        except asyncio.TimeoutError:
            print("attackers still running at the deadline; cut off", file=sys.stderr, flush=True)
        return stats
    stats = asyncio.run(run())
    results.put({k: v for k, v in vars(stats).items() if k != "acked" and k != "refused" and k != "logins_refused"})


async def sample_rss(pid, samples, deadline):
    while time.monotonic() < deadline:
        samples.append(rss_kib(pid))
        await asyncio.sleep(10)


async def soak(port, creds, pid, rate):
    samples = []
    deadline = time.monotonic() + DURATION_S
    (stats, elapsed), _ = await asyncio.gather(measure(port, creds, DURATION_S, rate, True), sample_rss(pid, samples, deadline))
    return stats, elapsed, samples


def two_tenants(cfg_path, sink_port, dns_port):
    """The dev bundle with MX delivery and a second tenant, `tarpit`, with its own key."""
    import yaml
    cfg = yaml.safe_load(cfg_path.read_text())
    dev = cfg["tenants"][0]
    domain = dict(dev["domains"][0], name="tarpit-sender.test")
    cfg["tenants"].append({"name": "tarpit", "domains": [domain]})
    key = dict(cfg["apiKeys"][0], id=TARPIT_KEY["username"], tenant="tarpit", secretHash="sha256:" + hashlib.sha256(TARPIT_KEY["password"].encode()).hexdigest())
    key.pop("allowedDomains", None)
    cfg["apiKeys"].append(key)
    cfg["delivery"] = {"mode": "mx", "mxPort": sink_port, "nameservers": [f"127.0.0.1:{dns_port}"],
                       "allowedDestinationCidrs": ["127.0.0.1/32", "127.0.0.5/32"], "retry": {"initial": "1s", "maxDelay": "2s", "maxAge": "5d"}}
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))


async def serve_peers(sink, port):
    """The sink on 127.0.0.1 and the tarpit on 127.0.0.5, until the process is terminated."""
    servers = [await asyncio.start_server(sink.session, "127.0.0.1", port), await asyncio.start_server(tarpit_session, "127.0.0.5", port)]
    await asyncio.gather(*(s.serve_forever() for s in servers))


def start_peers(port):
    """The sink and the tarpit in a process of their own; returns (received count, stop)."""
    import multiprocessing
    ctx = multiprocessing.get_context("fork")
    received = ctx.Value("q", 0)

    def run():
        sink = Sink(received)
        asyncio.run(serve_peers(sink, port))

    proc = ctx.Process(target=run, daemon=True)
    proc.start()
    return received, proc.terminate


def main():
    subprocess.run(["cargo", "build", "-q", "--release", "--locked", "--ignore-rust-version", "-p", "cascade-relay"], cwd=ROOT, check=True)
    work = Path(tempfile.mkdtemp(prefix="cascade-soak-"))
    binary = str(ROOT / "target/release/cascade-relay")
    port, admin, mx_port = free_port(), free_port(), free_port()
    # The dev bundle, made once, then served as a two-tenant MX relay.
    prep = subprocess.Popen([binary, "dev", "--data-dir", str(work / "dev"), "--submission", f"127.0.0.1:{port}", "--submissions", f"127.0.0.1:{free_port()}",
                             "--http", f"127.0.0.1:{free_port()}", "--admin", f"127.0.0.1:{admin}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        if (work / "dev" / "credentials.json").exists():
            break
        time.sleep(0.1)
    prep.send_signal(signal.SIGTERM)
    prep.wait(60)
    (work / "dns").mkdir()
    dns = Dns(work / "dns")
    dns.set_zone("dest.test", ["@ IN MX 10 mx.dest.test.", "mx IN A 127.0.0.1"])
    dns.set_zone("tarpit.test", ["@ IN MX 10 mx.tarpit.test.", "mx IN A 127.0.0.5"])
    dns.start()
    received, stop_peers = start_peers(mx_port)
    two_tenants(work / "dev" / "relay.yaml", mx_port, dns.port)
    log = open(work / "relay.log", "w")
    proc = subprocess.Popen([binary, "serve", "--config", str(work / "dev" / "relay.yaml")], stdout=subprocess.DEVNULL, stderr=log)
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        creds = json.loads((work / "dev" / "credentials.json").read_text())
        base, secs = asyncio.run(measure(port, creds, CAPACITY_S, 0, False))
        capacity = base.acked / secs
        target = LOAD * capacity
        # Start the soak from an empty queue: the capacity run's backlog would otherwise still be
        # delivered during the soak, on the same two cores.
        drain_by = time.monotonic() + 300
        while time.monotonic() < drain_by and received.value < base.acked:
            time.sleep(0.5)
        print(f"capacity: {capacity:.1f} msg/s ({base.acked} in {secs:.0f}s, {SESSIONS} sessions); soak at {target:.1f} msg/s for {DURATION_S}s "
              f"with a flood, a brute force, {TRICKLE} trickling sessions and a tarpit tenant at {TARPIT_RATE:g} msg/s", flush=True)
        stats, elapsed, samples = asyncio.run(soak(port, creds, proc.pid, target))
        print(f"soak done: {stats.acked} accepted; waiting for the sink", flush=True)
        achieved = stats.acked / elapsed
        acked_total = base.acked + stats.acked
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and received.value < acked_total:
            time.sleep(1)
        delivered = received.value
        q = max(1, len(samples) // 4)
        first, last = sorted(samples[:q])[q // 2], sorted(samples[-q:])[q // 2]
        within = abs(achieved - target) <= 0.1 * target
        flat = last <= first * 1.1 + 16 * 1024
        lost = acked_total - delivered
        print(json.dumps({
            "capacity_msg_s": round(capacity, 1), "target_msg_s": round(target, 1), "achieved_msg_s": round(achieved, 1),
            "refused": stats.refused, "logins_refused": stats.logins_refused, "flood_connections": stats.flood_opened, "flood_refused": stats.flood_refused,
            "brute_force_tries": stats.brute_tries, "brute_force_blocked": stats.brute_blocked,
            "trickle_sessions": stats.trickle_sessions, "trickle_cut_off": stats.trickle_cut,
            "tarpit_tenant_accepted": stats.tarpit_acked, "tarpit_tenant_refused": stats.tarpit_refused,
            "rss_kib_first_quarter": first, "rss_kib_last_quarter": last, "rss_kib_samples": samples, "acknowledged": acked_total, "delivered": delivered,
        }, indent=1))
        print(f"throughput under attack: {achieved:.1f} msg/s vs target {target:.1f} ({(achieved / target - 1) * 100:+.1f}%): {'OK' if within else 'MISSED'} (within 10%)")
        print(f"memory: {first / 1024:.0f} MiB -> {last / 1024:.0f} MiB: {'OK' if flat else 'MISSED'} (flat)")
        print(f"lost messages: {lost}: {'OK' if lost == 0 else 'MISSED'} (zero)")
        sys.exit(0 if within and flat and lost == 0 else 1)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        stop_peers()
        dns.stop()
        if not os.environ.get("KEEP"):
            subprocess.run(["rm", "-rf", str(work)])


if __name__ == "__main__":
    main()
