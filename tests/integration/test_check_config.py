"""`cascade-relay check-config` prints every problem as file: field: reason and exits 1."""
import subprocess

from conftest import BINARY, Relay


def test_check_config_reports_every_problem(workdir):
    relay = Relay(workdir)
    ok = subprocess.run([str(BINARY), "check-config", str(relay.config)], capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.strip().endswith(": OK")
    bad = relay.config.read_text().replace("tenant: dev", "tenant: nobody").replace("maxRecipients: 100", "maxRecipients: 0")
    relay.config.write_text(bad)
    r = subprocess.run([str(BINARY), "check-config", str(relay.config)], capture_output=True, text=True)
    assert r.returncode == 1
    lines = r.stdout.strip().splitlines()
    assert f"{relay.config}: apiKeys[0].tenant: no tenant named \"nobody\"" in lines
    assert f"{relay.config}: limits: maxRecipients, maxSessions, maxSessionsPerClient and maxCommands must be at least 1" in lines
    assert "2 problem(s)" in r.stderr
