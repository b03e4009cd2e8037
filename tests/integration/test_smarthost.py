"""Smarthost route: required TLS verified against a CA file, then AUTH PLAIN; a certificate that
does not chain to the CA file means no delivery at all."""
import re

from conftest import Relay, Sink, wait_until


def smarthost_config(cfg, sink, ca):
    block = (
        "delivery:\n  mode: smarthost\n  smarthost:\n    address: 127.0.0.1:%d\n    tls: required\n"
        "    caFile: %s\n    username: relayuser\n    passwordFile: smarthost.pass\n"
        "  retry:\n    initial: 1s\n    maxDelay: 2s\n    maxAge: 5d\n" % (sink.port, ca)
    )
    return re.sub(r"delivery:\n(  .*\n)+", block, cfg)


def start(workdir, cleanup, ca_for):
    sink = Sink(workdir, auth=("relayuser", "s3cret-pass")).start()
    cleanup(sink.stop)
    other = Sink(workdir, tls=True, name="unrelated")  # only for its certificate
    relay = Relay(workdir)
    (relay.dir / "smarthost.pass").write_text("s3cret-pass\n")
    ca = sink.cert if ca_for == "sink" else other.cert
    relay.config.write_text(smarthost_config((relay.dir / "relay.yaml").read_text(), sink, ca))
    relay.start()
    cleanup(relay.stop)
    return sink, relay


def test_verified_tls_and_auth_to_the_smarthost(workdir, cleanup):
    sink, relay = start(workdir, cleanup, ca_for="sink")
    assert relay.swaks().returncode == 0
    msgs = wait_until(lambda: sink.messages, 30, "delivery through the smarthost")
    assert msgs[0][3] is True
    assert sink.logins == [("relayuser", True)]
    assert "s3cret-pass" not in relay.log_text()


def test_unverifiable_smarthost_certificate_blocks_delivery(workdir, cleanup):
    sink, relay = start(workdir, cleanup, ca_for="other")
    assert relay.swaks().returncode == 0
    wait_until(lambda: relay.metric("cascade_relay_recipients_deferred_total") >= 2, 30, "deferrals")
    assert sink.messages == [] and sink.logins == []
    assert "UnknownIssuer" in relay.log_text() or "certificate" in relay.log_text().lower()


def test_credentials_over_unverified_tls_are_refused(workdir):
    """A smarthost password goes only over verified TLS: a configuration asking for less is refused."""
    import subprocess

    from conftest import BINARY
    relay = Relay(workdir)
    (relay.dir / "smarthost.pass").write_text("s3cret-pass\n")
    for tls in ("    tls: opportunistic\n", ""):
        block = ("delivery:\n  mode: smarthost\n  smarthost:\n    address: 127.0.0.1:2525\n" + tls +
                 "    username: relayuser\n    passwordFile: smarthost.pass\n")
        relay.config.write_text(re.sub(r"delivery:\n(  .*\n)+", block, (relay.dir / "relay.yaml").read_text()))
        r = subprocess.run([str(BINARY), "check-config", str(relay.config)], capture_output=True, text=True)
        assert r.returncode == 1
        assert f"{relay.config}: delivery.smarthost.tls: must be required (verified TLS) when username and passwordFile are set" in r.stdout
        serve = subprocess.run([str(BINARY), "serve", "--config", str(relay.config)], capture_output=True, text=True, timeout=30)
        assert serve.returncode != 0 and "delivery.smarthost.tls" in serve.stderr
