"""The audit trail: authentications (with the client address), policy rejections, accepted
messages and their outcomes become HMAC-chained JSON lines with masked addresses and no secrets;
`cascade-relay audit verify` passes the untouched trail and points at any edited, removed or
reordered record; checkpoints go to the normal log."""
import json
import smtplib
import subprocess

import pytest

from conftest import BINARY, standard_setup, wait_until
from helpers import submit_client


def verify(relay, files):
    return subprocess.run([str(BINARY), "audit", "verify", "--key", str(relay.dir / "audit.key"), *map(str, files)], capture_output=True, text=True)


def test_audit_records_chain_and_tampering_is_found(workdir, dns_server, cleanup):
    dns, sink, relay = standard_setup(workdir, dns_server, cleanup)
    c = submit_client(relay, login=False)
    with pytest.raises(smtplib.SMTPAuthenticationError):
        c.login(relay.creds["username"], "wrong-secret")
    c.quit()
    assert relay.swaks(sender="dev@example.test", to="someone@dest.test").returncode == 0
    assert "550 5.7.1" in relay.swaks(sender="dev@elsewhere.test").stdout
    wait_until(lambda: sink.messages, 30, "delivery")
    files = sorted((relay.dir / "audit").glob("audit-*.jsonl"))
    wait_until(lambda: any('"message.outcome"' in f.read_text() for f in files), 15, "the outcome record")

    records = [json.loads(l) for f in files for l in f.read_text().splitlines()]
    events = [r["event"] for r in records]
    for e in ["auth.failure", "auth.success", "message.accepted", "message.outcome", "policy.reject"]:
        assert e in events, events
    failure = next(r for r in records if r["event"] == "auth.failure")
    assert failure["data"]["client"] == "127.0.0.1" and failure["data"]["reason"] == "bad_secret"
    accepted = next(r for r in records if r["event"] == "message.accepted")
    assert accepted["data"]["sender"] == "d***@example.test" and accepted["data"]["recipients"] == ["s***@dest.test"]
    text = "".join(f.read_text() for f in files)
    for secret in [relay.creds["password"], "wrong-secret", "dev@example.test", "someone@dest.test"]:
        assert secret not in text, secret
    assert "audit checkpoint" in relay.log_text()

    r = verify(relay, files)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{len(records)} record(s) from sequence 1" in r.stdout

    # Edit one record: found at its line.
    target = files[-1]
    lines = target.read_text().splitlines()
    assert len(lines) >= 3
    original = target.read_text()
    edited = lines[1].replace('"event":"', '"event":"x', 1)
    assert edited != lines[1]
    target.write_text("\n".join([lines[0], edited] + lines[2:]) + "\n")
    r = verify(relay, files)
    assert r.returncode == 1 and f"{target}:2: the record does not match its mac" in r.stdout, r.stdout
    # Remove one: the next record says so.
    target.write_text("\n".join([lines[0]] + lines[2:]) + "\n")
    r = verify(relay, files)
    assert r.returncode == 1 and f"{target}:2: sequence" in r.stdout, r.stdout
    # Swap two.
    target.write_text("\n".join([lines[1], lines[0]] + lines[2:]) + "\n")
    assert verify(relay, files).returncode == 1
    target.write_text(original)
    assert verify(relay, files).returncode == 0


def anchor(relay):
    return json.loads(relay.admin_get("/audit/anchor"))


def test_the_anchor_on_the_admin_api_shows_a_cut_tail(workdir, dns_server, cleanup):
    """Checkpoints are fsynced records whose sequence and mac the admin API publishes; with that
    anchor, `audit verify` reports records cut off the end, which the chain alone cannot."""
    tweak = lambda cfg: cfg.replace("checkpointEvery: 100", "checkpointEvery: 2")
    dns, sink, relay = standard_setup(workdir, dns_server, cleanup, tweak=tweak)
    assert "checkpointEvery: 2" in relay.config.read_text()
    for _ in range(3):
        assert relay.swaks().returncode == 0
    a = wait_until(lambda: (lambda x: x if x["seq"] >= 6 else None)(anchor(relay)), 15, "checkpoints")
    files = sorted((relay.dir / "audit").glob("audit-*.jsonl"))
    records = [json.loads(l) for f in files for l in f.read_text().splitlines()]
    at = next(r for r in records if r["seq"] == a["seq"])
    assert at["event"] == "audit.checkpoint" and at["mac"] == a["mac"]
    relay.stop()
    files = sorted((relay.dir / "audit").glob("audit-*.jsonl"))
    given = json.dumps(a)
    r = subprocess.run([str(BINARY), "audit", "verify", "--key", str(relay.dir / "audit.key"), "--anchor", given, *map(str, files)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout
    # Cut everything from the anchored record on: still a valid chain, but not past the anchor.
    target = files[-1]
    lines = target.read_text().splitlines()
    keep = [l for l in lines if json.loads(l)["seq"] < a["seq"]]
    target.write_text("\n".join(keep) + "\n")
    assert verify(relay, files).returncode == 0
    r = subprocess.run([str(BINARY), "audit", "verify", "--key", str(relay.dir / "audit.key"), "--anchor", f"{a['seq']}:{a['mac']}", *map(str, files)], capture_output=True, text=True)
    assert r.returncode == 1 and f"truncated: the trail ends at sequence {a['seq'] - 1} but the anchor is at {a['seq']}" in r.stdout, r.stdout


def test_a_torn_last_record_does_not_stop_the_relay(workdir, dns_server, cleanup):
    dns, sink, relay = standard_setup(workdir, dns_server, cleanup)
    assert relay.swaks().returncode == 0
    relay.kill9()
    newest = sorted((relay.dir / "audit").glob("audit-*.jsonl"))[-1]
    with open(newest, "ab") as f:
        f.write(b'{"seq":99,"time":"2027-01-01T00:0')  # a crash mid-write
    relay.start()
    assert relay.swaks().returncode == 0
    wait_until(lambda: "torn record" in relay.log_text(), 10, "the log line about the torn record")
    torn = list((relay.dir / "audit" / "quarantine").iterdir())
    assert len(torn) == 1 and torn[0].read_bytes() == b'{"seq":99,"time":"2027-01-01T00:0'
    relay.stop()
    files = sorted((relay.dir / "audit").glob("audit-*.jsonl"))
    assert verify(relay, files).returncode == 0
    assert any('"event":"audit.recovery"' in f.read_text() for f in files)


def test_the_relay_checks_its_own_trail_and_a_break_sets_the_metric(workdir, dns_server, cleanup):
    """The run-time check (`audit.verifyInterval`): records appended since the last look are
    verified while the relay runs; a forged record shows as `cascade_relay_audit_chain_breaks`
    (the CascadeAuditChainBroken alert) and a log line naming the file and line, never its
    contents."""
    tweak = lambda cfg: cfg.replace("verifyInterval: 1m", "verifyInterval: 1s")
    dns, sink, relay = standard_setup(workdir, dns_server, cleanup, tweak=tweak)
    assert "verifyInterval: 1s" in relay.config.read_text()
    assert relay.swaks().returncode == 0
    wait_until(lambda: relay.metric("cascade_relay_audit_records_verified") >= 3, 15, "the run-time check verifying records")
    assert relay.metric("cascade_relay_audit_chain_breaks") == 0
    # Someone without the key appends a record.
    newest = sorted((relay.dir / "audit").glob("audit-*.jsonl"))[-1]
    forged = '{"seq":999,"time":"2027-01-01T00:00:00Z","event":"auth.success","data":{"client":"203.0.113.9"},"prev":"00","mac":"00"}\n'
    with open(newest, "a") as f:
        f.write(forged)
    wait_until(lambda: relay.metric("cascade_relay_audit_chain_breaks") >= 1, 15, "the break counted")
    log = relay.log_text()
    assert "the audit trail does not verify" in log and newest.name in log
    assert "203.0.113.9" not in log, "the record's contents are not logged"
