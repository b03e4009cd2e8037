"""Configuration and certificate changes are picked up without a restart; a bad configuration is
refused and the last good one keeps running."""
import signal
import smtplib
import subprocess

import pytest

from conftest import standard_setup, wait_until
from helpers import submit_client


def can_login(relay):
    try:
        submit_client(relay).quit()
        return True
    except smtplib.SMTPAuthenticationError:
        return False


def test_revoking_a_key_in_the_file_takes_effect_and_bad_config_is_refused(workdir, dns_server, cleanup):
    dns, sink, relay = standard_setup(workdir, dns_server, cleanup)
    assert can_login(relay)
    good = relay.config.read_text()
    relay.config.write_text(good + "bogusField: 1\n")
    wait_until(lambda: "configuration reload refused" in relay.log_text(), 15, "refusal logged")
    assert "bogusField" in relay.log_text()
    assert can_login(relay), "the last good configuration must keep running"
    relay.config.write_text(good.replace("revoked: false", "revoked: true"))
    relay.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: not can_login(relay), 15, "revocation applied")
    assert 'cascade_relay_config_reloads_total{result="refused"} 1' in relay.metrics()


def test_certificate_files_are_reloaded(workdir, dns_server, cleanup):
    dns, sink, relay = standard_setup(workdir, dns_server, cleanup)

    def peer_cert():
        c = submit_client(relay, login=False)
        der = c.sock.getpeercert(binary_form=True)
        c.quit()
        return der

    before = peer_cert()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(relay.dir / "tls.key.new"),
                    "-out", str(relay.dir / "tls.crt.new"), "-days", "2", "-subj", "/CN=renewed.localhost"], check=True, capture_output=True)
    (relay.dir / "tls.key.new").rename(relay.dir / "tls.key")
    (relay.dir / "tls.crt.new").rename(relay.dir / "tls.crt")
    wait_until(lambda: peer_cert() != before, 15, "new certificate served")
