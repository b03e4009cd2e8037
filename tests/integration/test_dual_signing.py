"""RSA-2048 and Ed25519 together (dual signing): both signatures verify with python3-dkim against
the records in DNS."""
import base64
import subprocess

import dkim

from conftest import standard_setup, wait_until


def test_rsa_and_ed25519_signatures_both_verify(workdir, dns_server, cleanup):
    key = workdir / "ed.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(key)], check=True)
    der = subprocess.run(["openssl", "pkey", "-in", str(key), "-pubout", "-outform", "DER"], check=True, capture_output=True).stdout
    public = base64.b64encode(der[-32:]).decode()  # the raw key is the last 32 bytes of the SPKI (RFC 8463)

    def add_ed25519(cfg):
        line = "      keyFile: dkim-example.test-cascade1.pem\n"
        assert line in cfg
        return cfg.replace(line, line + f"    - selector: ed1\n      algorithm: ed25519-sha256\n      keyFile: {key}\n")

    dns, sink, relay = standard_setup(workdir, dns_server, cleanup, tweak=add_ed25519,
                                      extra_example=[f'ed1._domainkey IN TXT "v=DKIM1; k=ed25519; p={public}"'])
    assert relay.swaks().returncode == 0
    data = wait_until(lambda: sink.messages, 30, "delivery")[0][2]
    assert data.count(b"DKIM-Signature:") == 2
    lookup = lambda name, timeout=5: dns.txt(name.decode().rstrip("."))
    verifier = dkim.DKIM(data)
    results = {}
    for idx in range(2):
        ok = verifier.verify(idx=idx, dnsfunc=lookup)
        results[verifier.signature_fields[b"a"].decode()] = ok
    assert results == {"rsa-sha256": True, "ed25519-sha256": True}, results
