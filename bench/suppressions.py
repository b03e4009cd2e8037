"""A suppression list at its limit: one release `cascade-relay dev`, 100,000 entries imported
through `POST /v1/suppressions/import` (one NDJSON request, one durable write), then RCPT
round trips over one STARTTLS + AUTH session to suppressed and to unsuppressed addresses (the
lookup is a hash map; what is measured is the whole SMTP round trip), the relay's RSS before and
after, and its start time with the list on disk. Loopback only; not part of the tests.

    /usr/bin/python3 bench/suppressions.py          # ENTRIES=100000 RCPTS=2000
"""
import json
import os
import random
import re
import shutil
import smtplib
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
ENTRIES, RCPTS = int(os.environ.get("ENTRIES", 100_000)), int(os.environ.get("RCPTS", 2000))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, deadline=120):
    start = time.monotonic()
    while time.monotonic() - start < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return time.monotonic() - start
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(port)


def rss_mib(pid):
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


def rcpt_times(port, user, password, addresses):
    """Each RCPT's round trip, over sessions of 400 (a session takes at most limits.maxCommands)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    times, codes = [], set()
    for chunk in range(0, len(addresses), 400):
        c = smtplib.SMTP("127.0.0.1", port, timeout=30)
        c.starttls(context=ctx)
        c.login(user, password)
        for i, a in enumerate(addresses[chunk:chunk + 400]):
            if i % 50 == 0:
                c.rset()
                c.mail("dev@example.test")
            t = time.perf_counter()
            code, _ = c.rcpt(a)
            times.append((time.perf_counter() - t) * 1e6)
            codes.add(code)
        c.quit()
    return times, codes


def main():
    subprocess.run(["cargo", "build", "--release", "--locked", "--ignore-rust-version", "-p", "cascade-relay"], cwd=ROOT, check=True)
    work = Path(tempfile.mkdtemp(prefix="cascade-suppression-bench-"))
    ports = {k: free_port() for k in ("submission", "submissions", "http", "admin")}
    args = [str(ROOT / "target/release/cascade-relay"), "dev", "--data-dir", str(work)] + [x for k, p in ports.items() for x in (f"--{k}", f"127.0.0.1:{p}")]
    start = lambda: subprocess.Popen(args, stdout=open(work / "relay.log", "ab"), stderr=subprocess.STDOUT)
    relay = start()
    try:
        wait_port(ports["http"])
        user, password = re.search(r"-u '([^:]+):([^']+)'", (work / "relay.log").read_text()).groups()
        empty = rss_mib(relay.pid)
        listed = [f"user{i}@suppressed.example" for i in range(ENTRIES)]
        ndjson = "".join(json.dumps({"address": a, "reason": "bounce"}) + "\n" for a in listed)
        t = time.monotonic()
        r = httpx.post(f"https://127.0.0.1:{ports['http']}/v1/suppressions/import", content=ndjson, auth=(user, password), verify=str(work / "tls.crt"), timeout=600)
        imported = time.monotonic() - t
        assert r.status_code == 200 and r.json()["imported"] == ENTRIES, r.text[:500]
        full = rss_mib(relay.pid)
        hit, codes_hit = rcpt_times(ports["submission"], user, password, random.sample(listed, RCPTS))
        miss, codes_miss = rcpt_times(ports["submission"], user, password, [f"other{i}@dest.example" for i in range(RCPTS)])
        assert codes_hit == {550} and codes_miss == {250}, (codes_hit, codes_miss)
        relay.terminate()
        relay.wait(60)
        relay = start()
        started = wait_port(ports["submission"])
        time.sleep(1)
        loaded = rss_mib(relay.pid)
        print(f"{ENTRIES:,} suppression entries in one tenant; {RCPTS:,} RCPTs each way over STARTTLS + AUTH sessions:")
        print("| measure | value |\n|---|---|")
        print(f"| import (one NDJSON request, one durable write) | {imported:.2f} s |")
        print(f"| relay RSS, empty list → {ENTRIES:,} entries | {empty:.0f} → {full:.0f} MiB |")
        print(f"| RCPT to a suppressed address (550), p50 / p99 | {percentile(hit, 0.5):.0f} / {percentile(hit, 0.99):.0f} µs |")
        print(f"| RCPT to another address (250), p50 / p99 | {percentile(miss, 0.5):.0f} / {percentile(miss, 0.99):.0f} µs |")
        print(f"| restart until listening, list on disk | {started:.2f} s |")
        print(f"| relay RSS after that restart (the list loaded from disk) | {loaded:.0f} MiB |")
    finally:
        relay.terminate()
        relay.wait(60)
        if not os.environ.get("KEEP"):
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
