"""testssl.sh (Debian's package) against the STARTTLS submission listener, the implicit-TLS
listener, the tenant HTTPS listener and the admin HTTPS listener (mutual TLS, the client
certificate optional as for Prometheus' scrapes): no protocol below TLS 1.2, no weak cipher, no
finding rated HIGH or CRITICAL (on HTTPS, nothing above LOW). The relay serves a certificate
from a test CA (passed to testssl) with revocation information, as a real deployment's
certificate has; on the admin listener the same CA is the admin authority."""
import json
import subprocess

import pytest

from conftest import Relay


def certificate(d):
    run = lambda *a: subprocess.run(list(a), check=True, capture_output=True)
    ca_key, ca, key, csr, leaf, ext = (d / "tls-ca.key", d / "tls-ca.crt", d / "tls.key", d / "tls.csr", d / "tls.crt", d / "tls.ext")
    run("openssl", "req", "-x509", "-newkey", "rsa:3072", "-nodes", "-keyout", str(ca_key), "-out", str(ca), "-days", "365", "-subj", "/CN=Cascade testssl CA")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", "/CN=relay.example.test")
    ext.write_text("subjectAltName=DNS:relay.example.test,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=digitalSignature,keyEncipherment\n"
                   "authorityInfoAccess=OCSP;URI:http://ocsp.example.test\ncrlDistributionPoints=URI:http://crl.example.test/ca.crl\n")
    run("openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial", "-out", str(leaf), "-days", "90", "-extfile", str(ext))
    return ca, leaf, key


def scan(workdir, target, starttls):
    out = workdir / f"testssl-{target.split(':')[1]}.json"
    cmd = ["testssl", "--quiet", "--color", "0", "--warnings", "off", "--nodns", "none", "--jsonfile", str(out), "--add-ca", str(workdir / "tls-ca.crt")]
    cmd += (["--starttls", "smtp"] if starttls else []) + [target]
    subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    return json.loads(out.read_text())


@pytest.mark.parametrize("listener", ["submission", "submissions", "https", "admin"])
def test_testssl_finds_nothing_high_and_no_protocol_below_tls12(workdir, cleanup, listener):
    relay = Relay(workdir)
    ca, leaf, key = certificate(workdir)
    (relay.dir / "tls.crt").write_bytes(leaf.read_bytes())
    (relay.dir / "tls.key").write_bytes(key.read_bytes())
    if listener == "admin":
        for name, source in [("admin.crt", leaf), ("admin.key", key), ("admin-ca.crt", ca)]:
            (relay.dir / name).write_bytes(source.read_bytes())
    relay.start()
    cleanup(relay.stop)
    port = {"submission": relay.submission, "submissions": relay.submissions, "https": relay.http, "admin": relay.admin}[listener]
    findings = scan(workdir, f"127.0.0.1:{port}", starttls=listener == "submission")
    by_id = {f["id"]: f for f in findings}
    assert "scanProblem" not in by_id, by_id.get("scanProblem")
    for proto in ["SSLv2", "SSLv3", "TLS1", "TLS1_1"]:
        assert by_id[proto]["finding"].startswith("not offered"), by_id[proto]
    assert by_id["TLS1_2"]["finding"].startswith("offered") and by_id["TLS1_3"]["finding"].startswith("offered")
    # Every cipher category but the strong one: NULL, anonymous, export, low, 3DES/IDEA, average (CBC).
    categories = {i: f["finding"] for i, f in by_id.items() if i.startswith("cipherlist_")}
    assert len(categories) >= 6 and "cipherlist_STRONG" in categories, categories
    weak = {i: f for i, f in categories.items() if i != "cipherlist_STRONG" and not f.startswith("not offered")}
    assert not weak, weak
    serious = [f for f in findings if f["severity"] in ("HIGH", "CRITICAL")]
    assert not serious, serious
    if listener in ("https", "admin"):
        # The HTTPS APIs: nothing above LOW (HSTS, no compression, no renegotiation).
        above_low = [f for f in findings if f["severity"] == "MEDIUM"]
        assert not above_low, above_low
