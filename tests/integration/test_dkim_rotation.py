"""A DKIM rotation as the relay sees it (the operator's side is in operator/tests/dkim_rotation.rs):
during the overlap both records are published; a message queued before the switch and one
accepted after it both verify with python3-dkim against the zone; after the old key retires and
its record goes, mail signed after the switch still verifies."""
import base64
import re
import subprocess

import dkim

from conftest import standard_setup, wait_until


def rsa_key(path):
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(path)], check=True, capture_output=True)
    der = subprocess.run(["openssl", "pkey", "-in", str(path), "-pubout", "-outform", "DER"], check=True, capture_output=True).stdout
    value = f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"
    return " ".join(f'"{value[i:i + 255]}"' for i in range(0, len(value), 255))


def test_mail_signed_before_and_after_a_rotation_verifies(workdir, dns_server, cleanup):
    new_key = workdir / "cascade1-2.pem"
    new_record = rsa_key(new_key)
    dns, sink, relay = standard_setup(workdir, dns_server, cleanup, extra_example=[f"cascade1-2._domainkey IN TXT {new_record}"])
    sink.handler.temp_failures = 1  # the first message waits in the queue across the switch
    assert relay.swaks(header="Subject: before").returncode == 0
    wait_until(lambda: relay.metric("cascade_relay_recipients_deferred_total") >= 1, 30, "the first message deferred")

    # The switch: the relay now signs with the new generation (as the operator renders it).
    cfg = relay.config.read_text()
    switched = re.sub(r"- selector: cascade1\n(\s+)algorithm: rsa-sha256\n\s+keyFile: \S+\n",
                      lambda m: f"- selector: cascade1-2\n{m.group(1)}algorithm: rsa-sha256\n{m.group(1)}keyFile: {new_key}\n", cfg)
    assert switched != cfg
    relay.config.write_text(switched)
    wait_until(lambda: relay.metric('cascade_relay_config_reloads_total{result="ok"}') >= 1, 15, "reload")
    assert relay.swaks(header="Subject: after").returncode == 0
    msgs = wait_until(lambda: len(sink.messages) >= 2 and sink.messages, 60, "both delivered")

    lookup = lambda name, timeout=5: dns.txt(name.decode().rstrip("."))
    selectors = {}
    for m in msgs:
        data = m[2]
        subject = re.search(rb"Subject: (\w+)", data).group(1).decode()
        selectors[subject] = re.search(rb"s=([\w-]+);", data).group(1).decode()
        assert dkim.verify(data, dnsfunc=lookup), subject
    assert selectors["after"] == "cascade1-2", selectors
    # The queued message was signed at acceptance, with the key of that moment: it verifies only
    # while the old record stays published (why Retiring keys keep their records).
    assert selectors["before"] == "cascade1", selectors

    # After retirement the old record is gone: the new signature still verifies, the old one no longer.
    retired = dns_server({"example.test": [f"cascade1-2._domainkey IN TXT {new_record}"]})
    lookup_after = lambda name, timeout=5: retired.txt(name.decode().rstrip("."))
    by_subject = {re.search(rb"Subject: (\w+)", m[2]).group(1).decode(): m[2] for m in msgs}
    assert dkim.verify(by_subject["after"], dnsfunc=lookup_after)
    try:
        old_ok = dkim.verify(by_subject["before"], dnsfunc=lookup_after)
    except Exception:
        old_ok = False
    assert not old_ok
