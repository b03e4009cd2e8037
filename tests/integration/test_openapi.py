"""The OpenAPI 3.1 document is the API: the relay serves the checked-in `relay/openapi.json`
as it is, and schemathesis (PyPI) generates requests from it against the live send API —
examples, boundary cases, fuzzed and stateful sequences (send, then read the status), bounded in
number and seeded — with no server error, no undocumented status or content type, no response
outside its schema, and no request that passes without credentials."""
import base64
import json
import re
import subprocess

import httpx

from conftest import ROOT, standard_setup

CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,ignored_auth"


def test_the_served_document_is_the_checked_in_one(workdir, dns_server, cleanup):
    _, _, relay = standard_setup(workdir, dns_server, cleanup)
    r = httpx.get(f"https://127.0.0.1:{relay.http}/v1/openapi.json", verify=str(relay.dir / "tls.crt"), timeout=30)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.json() == json.loads((ROOT / "relay/openapi.json").read_text())


def test_schemathesis_finds_no_server_error_and_no_schema_violation(workdir, dns_server, cleanup):
    tool = subprocess.run(["bash", str(ROOT / "tests/integration/schemathesis.sh")], capture_output=True, text=True, timeout=600, check=True).stdout.strip()
    # The `ignored_auth` check sends wrong credentials to every operation: lift the per-address
    # lockout and the per-key request rate (tested in test_limits.py and test_suppressions.py)
    # so the rest of the run is not answered 429.
    unlimited = lambda c: re.sub(r"apiRequestsPerMinute: \d+", "apiRequestsPerMinute: 1000000", re.sub(r"maxAuthFailures: \d+", "maxAuthFailures: 1000000", c))
    _, _, relay = standard_setup(workdir, dns_server, cleanup, tweak=unlimited)
    basic = base64.b64encode(f"{relay.creds['username']}:{relay.creds['password']}".encode()).decode()
    run = subprocess.run([tool, "run", str(ROOT / "relay/openapi.json"), "--url", f"https://127.0.0.1:{relay.http}", "--tls-verify", str(relay.dir / "tls.crt"),
                          "-H", f"Authorization: Basic {basic}", "--checks", CHECKS, "--max-examples", "30", "--seed", "1", "--request-timeout", "20"],
                         capture_output=True, text=True, timeout=600, cwd=workdir)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and "failed" not in run.stdout.split("SUMMARY")[-1], run.stdout[-3000:]
    assert "cascade_sk_" not in relay.log_text(), "no secret in the relay's log"
