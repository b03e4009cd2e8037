"""Unusual sending against the running relay: a key whose minute goes far above its baseline (here
the floor is 2 messages a minute) produces a metric, a log line and an audit record, and, as its
`anomalies.suspend` says, is suspended: AUTH and MAIL answer 535 5.7.8 while messages already
accepted are delivered. (Lifting by an edit of the ApiKey is proven in the operator's
`key_suspension` controller test.)"""
import json
import smtplib

from conftest import standard_setup, wait_until
from helpers import message, submit_client


def tweak(cfg):
    for old, new in [("    suspend: false\n", "    suspend: true\n"), ("    minMessagesPerMinute: 100\n", "    minMessagesPerMinute: 2\n")]:
        assert old in cfg, old
        cfg = cfg.replace(old, new, 1)
    return cfg


def test_a_burst_far_above_the_baseline_is_flagged_and_suspends_the_key(workdir, dns_server, cleanup):
    dns, sink, relay = standard_setup(workdir, dns_server, cleanup, tweak=tweak)
    c = submit_client(relay)
    for i in range(3):
        c.sendmail("dev@example.test", ["rcpt@dest.test"], message(subject=f"burst {i}"))
    code, text = c.mail("dev@example.test")
    assert (code, text) == (535, b"5.7.8 API key suspended after unusual sending; an administrator must review it")
    try:
        submit_client(relay)
        raise AssertionError("a suspended key authenticated")
    except smtplib.SMTPAuthenticationError as e:
        assert e.smtp_code == 535 and b"suspended" in e.smtp_error
    # Nothing accepted is lost: the three messages are delivered.
    wait_until(lambda: len(sink.messages) >= 3, 30, "the accepted messages at the sink")

    metrics = relay.metrics()
    assert 'cascade_relay_key_anomalies_total{kind="rate"} 1' in metrics and "cascade_relay_suspended_keys 1" in metrics, metrics
    log = relay.log_text()
    assert "unusual sending for API key" in log and relay.creds["password"] not in log
    records = [json.loads(l) for f in sorted((relay.dir / "audit").glob("audit-*.jsonl")) for l in f.read_text().splitlines()]
    anomaly = [r["data"] for r in records if r["event"] == "key.anomaly"]
    assert len(anomaly) == 1 and anomaly[0]["kind"] == "rate" and anomaly[0]["suspended"] is True, anomaly
    assert any(r["event"] == "auth.failure" and r["data"]["reason"] == "suspended" for r in records)
    # The operator reads the suspension from the admin listener.
    listed = json.loads(relay.admin_get("/anomalies"))
    assert [(s["key"], s["kind"], s["generation"]) for s in listed] == [(relay.creds["username"], "rate", 0)]
