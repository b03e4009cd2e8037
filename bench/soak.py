"""Soak benchmark (loopback, bounded; not part of the tests): the relay under sustained load while
one client floods connections and another brute-forces AUTH.

1. Capacity: well-behaved clients (STARTTLS, AUTH, 4 KB messages) as fast as they can for
   CAPACITY_S seconds against `cascade-relay dev` (release build; delivery to its outbox).
2. Soak: the same clients paced at LOAD (0.8) of that capacity for DURATION_S (600) seconds,
   while 127.0.0.2 keeps FLOOD (300) connections open and reopens them, and 127.0.0.3 tries
   wrong AUTH secrets as fast as it is answered.
3. Report: delivered throughput of the well-behaved clients against the paced target (target:
   within 10%), the relay's RSS every 10 s (target: flat, last quarter within 10% + 16 MiB of
   the first), and lost messages (acknowledged but not in the outbox after the queue drained;
   target: zero). Exit 1 if a target is missed.

    python3 bench/soak.py                  # DURATION_S=600 CAPACITY_S=30 SESSIONS=20 FLOOD=300
"""
import asyncio
import base64
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
DURATION_S = int(os.environ.get("DURATION_S", 600))
CAPACITY_S = int(os.environ.get("CAPACITY_S", 30))
SESSIONS = int(os.environ.get("SESSIONS", 20))
FLOOD = int(os.environ.get("FLOOD", 300))
LOAD = float(os.environ.get("LOAD", 0.8))
SIZE = 4096


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


class Stats:
    def __init__(self):
        self.acked = 0
        self.refused = 0
        self.logins_refused = 0
        self.flood_opened = 0
        self.flood_refused = 0
        self.brute_tries = 0
        self.brute_blocked = 0


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
            writer.write(b"MAIL FROM:<dev@example.test>\r\nRCPT TO:<sink@dest.test>\r\nDATA\r\n")
            codes = [(await reply(reader))[0] for _ in range(3)]
            if codes != [250, 250, 354]:
                stats.refused += 1
                writer.write(b"RSET\r\n")
                await reply(reader)
                continue
            writer.write(body)
            code, _ = await reply(reader)
            if code == 250:
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


async def measure(port, creds, seconds, rate, hostile):
    stats = Stats()
    deadline = time.monotonic() + seconds
    interval = SESSIONS / rate if rate else 0
    tasks = [well_behaved(port, creds, stats, deadline, interval) for _ in range(SESSIONS)]
    if hostile:
        tasks += [flood(port, stats, deadline), brute(port, creds, stats, deadline)]
    start = time.monotonic()
    await asyncio.gather(*tasks)
    return stats, time.monotonic() - start


async def sample_rss(pid, samples, deadline):
    while time.monotonic() < deadline:
        samples.append(rss_kib(pid))
        await asyncio.sleep(10)


async def soak(port, creds, pid, rate):
    samples = []
    deadline = time.monotonic() + DURATION_S
    (stats, elapsed), _ = await asyncio.gather(measure(port, creds, DURATION_S, rate, True), sample_rss(pid, samples, deadline))
    return stats, elapsed, samples


def main():
    subprocess.run(["cargo", "build", "-q", "--release", "--locked", "--ignore-rust-version", "-p", "cascade-relay"], cwd=ROOT, check=True)
    work = Path(tempfile.mkdtemp(prefix="cascade-soak-"))
    port, admin = free_port(), free_port()
    log = open(work / "relay.log", "w")
    proc = subprocess.Popen([str(ROOT / "target/release/cascade-relay"), "dev", "--data-dir", str(work / "dev"), "--submission", f"127.0.0.1:{port}",
                             "--submissions", f"127.0.0.1:{free_port()}", "--http", f"127.0.0.1:{free_port()}", "--admin", f"127.0.0.1:{admin}"],
                            stdout=subprocess.DEVNULL, stderr=log)
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
        print(f"capacity: {capacity:.1f} msg/s ({base.acked} in {secs:.0f}s, {SESSIONS} sessions); soak at {target:.1f} msg/s for {DURATION_S}s with a flood and a brute force", flush=True)
        stats, elapsed, samples = asyncio.run(soak(port, creds, proc.pid, target))
        achieved = stats.acked / elapsed
        acked_total = base.acked + stats.acked
        outbox = work / "dev" / "outbox"
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and len(list(outbox.glob("*.eml"))) < acked_total:
            time.sleep(1)
        delivered = len(list(outbox.glob("*.eml")))
        q = max(1, len(samples) // 4)
        first, last = sorted(samples[:q])[q // 2], sorted(samples[-q:])[q // 2]
        within = abs(achieved - target) <= 0.1 * target
        flat = last <= first * 1.1 + 16 * 1024
        lost = acked_total - delivered
        print(json.dumps({
            "capacity_msg_s": round(capacity, 1), "target_msg_s": round(target, 1), "achieved_msg_s": round(achieved, 1),
            "refused": stats.refused, "logins_refused": stats.logins_refused, "flood_connections": stats.flood_opened, "flood_refused": stats.flood_refused,
            "brute_force_tries": stats.brute_tries, "brute_force_blocked": stats.brute_blocked,
            "rss_kib_first_quarter": first, "rss_kib_last_quarter": last, "rss_kib_samples": samples, "acknowledged": acked_total, "delivered": delivered,
        }, indent=1))
        print(f"throughput under attack: {achieved:.1f} msg/s vs target {target:.1f} ({(achieved / target - 1) * 100:+.1f}%): {'OK' if within else 'MISSED'} (within 10%)")
        print(f"memory: {first / 1024:.0f} MiB -> {last / 1024:.0f} MiB: {'OK' if flat else 'MISSED'} (flat)")
        print(f"lost messages: {lost}: {'OK' if lost == 0 else 'MISSED'} (zero)")
        sys.exit(0 if within and flat and lost == 0 else 1)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        log.close()
        if not os.environ.get("KEEP"):
            subprocess.run(["rm", "-rf", str(work)])


if __name__ == "__main__":
    main()
