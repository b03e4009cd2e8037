"""`cascade-relay dev`: no files needed; prints credentials and a swaks command that works; mail
lands DKIM-signed in outbox/; a restart keeps keys, credentials and the queue."""
import json
import re
import shlex
import signal
import subprocess

from conftest import BINARY, free_port, wait_port, wait_until


def start(data_dir, ports):
    sub, subs, http, admin = ports
    proc = subprocess.Popen([str(BINARY), "dev", "--data-dir", str(data_dir), "--submission", f"127.0.0.1:{sub}",
                             "--submissions", f"127.0.0.1:{subs}", "--http", f"127.0.0.1:{http}", "--admin", f"127.0.0.1:{admin}"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    wait_port(sub)
    return proc


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=40)
    return out


def test_dev_mode_end_to_end_and_restart(workdir):
    data = workdir / "dev"
    ports = (free_port(), free_port(), free_port(), free_port())
    proc = start(data, ports)
    try:
        creds = json.loads((data / "credentials.json").read_text())
        dkim_key = (data / "dkim-example.test-cascade1.pem").read_bytes()
        zone = (data / "dns.zone").read_text()
        assert "cascade1._domainkey.example.test. 300 IN TXT" in zone and "v=spf1" in zone and "_dmarc.example.test." in zone
        import urllib.request
        import ssl
        tenant = ssl.create_default_context(cafile=str(data / "tls.crt"))
        assert urllib.request.urlopen(f"https://127.0.0.1:{ports[2]}/readyz", timeout=5, context=tenant).status == 200
        # Metrics live on the admin listener only (HTTPS under the dev admin authority); the
        # tenant-facing one does not serve them.
        admin = ssl.create_default_context(cafile=str(data / "admin-ca.crt"))
        assert b"cascade_relay_smtp_sessions" in urllib.request.urlopen(f"https://127.0.0.1:{ports[3]}/metrics", timeout=5, context=admin).read()

        import urllib.error
        try:
            urllib.request.urlopen(f"https://127.0.0.1:{ports[2]}/metrics", timeout=5, context=tenant)
            raise AssertionError("/metrics served on the tenant listener")
        except urllib.error.HTTPError as e:
            assert e.code == 404
    finally:
        out = stop(proc)
    assert creds["username"] in out and creds["password"] in out
    swaks_line = next(l for l in out.splitlines() if l.strip().startswith("swaks "))
    r = subprocess.run(shlex.split(swaks_line), capture_output=True, text=True, timeout=60)
    assert r.returncode != 0, "relay is stopped: the command must fail now"

    proc = start(data, ports)
    try:
        assert json.loads((data / "credentials.json").read_text()) == creds
        assert (data / "dkim-example.test-cascade1.pem").read_bytes() == dkim_key
        r = subprocess.run(shlex.split(swaks_line), capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout
        # The printed admin curl line works as printed (mutual TLS with the dev client certificate).
        curl_line = next(l for l in out.splitlines() if l.strip().startswith("curl ") and "/dmarc/summary" in l)
        summary = subprocess.run(shlex.split(curl_line), capture_output=True, timeout=30)
        assert summary.returncode == 0 and summary.stdout.strip().startswith(b"{"), summary
        # So does the printed send-API line: 202 with the queue id, captured in outbox/ signed.
        api_line = next(l for l in out.splitlines() if l.strip().startswith("curl ") and "/v1/messages/raw" in l)
        sent = subprocess.run(shlex.split(api_line), capture_output=True, timeout=30)
        api_id = json.loads(sent.stdout)["id"]
        api_eml = wait_until(lambda: list((data / "outbox").glob(f"{api_id}.eml")), 20, "the API message captured")[0]
        assert api_eml.read_bytes().startswith(b"DKIM-Signature: v=1; a=rsa-sha256; s=cascade1; d=example.test;")
        queued = re.search(r"queued as (\w+)", r.stdout).group(1)
        eml = wait_until(lambda: list((data / "outbox").glob(f"{queued}.eml")), 20, "the captured message")[0]
        assert eml.read_bytes().startswith(b"DKIM-Signature: v=1; a=rsa-sha256; s=cascade1; d=example.test;")
    finally:
        stop(proc)
