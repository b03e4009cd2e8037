"""The HTTP send API next to SMTP on the same relay, the same machine and the same messages:
`cascade-relay dev` (release build; STARTTLS + AUTH or HTTPS + Basic, DKIM RSA-2048, fsynced
encrypted spool, captured to the outbox), N messages of SIZE bytes over SESSIONS concurrent
SMTP sessions (bench/load.py, one TLS session each, many messages per session) and then over
STREAMS (8: the listener's bound on bodies in progress) concurrent HTTP/2 requests on one
connection (httpx, `POST /v1/messages/raw`).
Prints accepted messages/second for each. Loopback only; not part of the tests.

    /usr/bin/python3 bench/api-vs-smtp.py        # N=3000 SESSIONS=40 SIZE=4096
"""
import asyncio
import base64
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
N, SESSIONS, SIZE = int(os.environ.get("N", 3000)), int(os.environ.get("SESSIONS", 40)), int(os.environ.get("SIZE", 4096))
# The tenant listener reads at most 8 request bodies at once (more get 503 + Retry-After).
STREAMS = int(os.environ.get("STREAMS", 8))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    """user + system CPU of a process so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_port(port, deadline=30):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(port)


async def http_load(url, auth, ca, content):
    body = {"from": "dev@example.test", "to": ["sink@dest.test"], "content": base64.b64encode(content).decode()}
    counter, acked = [0], [0]

    async def worker(client):
        while counter[0] < N:
            counter[0] += 1
            r = await client.post(url, json=body, auth=auth)
            acked[0] += r.status_code == 202
            if r.status_code != 202:
                raise RuntimeError(f"{r.status_code} {r.text}")

    # One HTTP/2 connection per 8 workers (the relay allows 16 streams per connection).
    clients = [httpx.AsyncClient(http2=True, verify=ca, timeout=60) for _ in range((STREAMS + 7) // 8)]
    start = time.monotonic()
    await asyncio.gather(*(worker(clients[i // 8]) for i in range(STREAMS)))
    elapsed = time.monotonic() - start
    for c in clients:
        await c.aclose()
    return acked[0], elapsed


def main():
    subprocess.run(["cargo", "build", "--release", "--locked", "--ignore-rust-version", "-p", "cascade-relay"], cwd=ROOT, check=True)
    work = Path(tempfile.mkdtemp(prefix="cascade-api-bench-"))
    ports = {k: free_port() for k in ("submission", "submissions", "http", "admin")}
    args = [str(ROOT / "target/release/cascade-relay"), "dev", "--data-dir", str(work)] + [x for k, p in ports.items() for x in (f"--{k}", f"127.0.0.1:{p}")]
    log = open(work / "relay.log", "wb")
    relay = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_port(ports["http"])
        banner = (work / "relay.log").read_text()
        user, password = re.search(r"-u '([^:]+):([^']+)'", banner).groups()
        head = b"From: <dev@example.test>\r\nTo: <sink@dest.test>\r\nSubject: load\r\n\r\n"
        content = head + (b"x" * 76 + b"\r\n") * max(1, (SIZE - len(head)) // 78)
        cpu0 = cpu_seconds(relay.pid)
        smtp = subprocess.run(["/usr/bin/python3", str(ROOT / "bench/load.py"), "--port", str(ports["submission"]), "--user", user, "--password", password,
                               "--sessions", str(SESSIONS), "--messages", str(N), "--size", str(SIZE), "--rcpt", "sink@dest.test"], capture_output=True, text=True, check=True)
        s = json.loads(smtp.stdout)
        cpu1 = cpu_seconds(relay.pid)
        acked, seconds = asyncio.run(http_load(f"https://127.0.0.1:{ports['http']}/v1/messages/raw", (user, password), str(work / "tls.crt"), content))
        cpu2 = cpu_seconds(relay.pid)
        client_cpu = os.times()
        client_cpu = client_cpu.user + client_cpu.system
        print(f"{N} messages of {SIZE} bytes ({SESSIONS} SMTP sessions, {STREAMS} HTTP/2 streams), accepted (signed and fsynced) per second:")
        print("| path | msg/s | relay CPU ms/msg |\n|---|---|---|")
        print(f"| SMTP (STARTTLS + AUTH, pipelined per session) | {s['acknowledged'] / s['seconds']:,.0f} | {(cpu1 - cpu0) * 1000 / max(1, s['acknowledged']):.2f} |")
        print(f"| HTTP API (HTTP/2 + Basic, POST /v1/messages/raw) | {acked / seconds:,.0f} | {(cpu2 - cpu1) * 1000 / max(1, acked):.2f} |")
        print(f"(the HTTP client, Python httpx in this process, used {client_cpu * 1000 / max(1, acked):.2f} ms CPU per message)")
        if s["errors"] or acked != N:
            print(f"errors: smtp {s['errors']}, http accepted {acked} of {N}")
    finally:
        relay.terminate()
        relay.wait(30)
        if not os.environ.get("KEEP"):
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
