"""Spool key rotation on a running relay: a new first line in the key file seals every file
written from then on (picked up without a restart), a file sealed under the old key is still
opened after a restart and delivered, and the seals per key are counted
(`cascade_relay_spool_key_seals{key}`)."""
import base64
import os

from conftest import standard_setup, wait_until
from helpers import message, submit_client


def key_id(path):
    data = path.read_bytes()
    assert data.startswith(b"CSPOOL1\n")
    return data[9:9 + data[8]].decode()


def send(relay, subject):
    c = submit_client(relay)
    c.sendmail("dev@example.test", ["rcpt@dest.test"], message(subject=subject))
    c.quit()


def test_a_rotated_key_seals_new_files_and_old_files_still_open(workdir, dns_server, cleanup):
    dns, sink, relay = standard_setup(workdir, dns_server, cleanup)
    sink.handler.temp_failures = 1000  # keep everything queued for now
    spool, keyfile = relay.dir / "spool", relay.dir / "spool.key"
    send(relay, "under the old key")
    first = wait_until(lambda: list(spool.glob("*.msg")), 10, "the first message in the spool")[0]
    old_id = key_id(first)
    relay.stop()
    assert key_id(first) == old_id, "stopped with the message sealed under the old key"

    # Rotate while stopped: the old file must still open after the restart.
    keyfile.write_text(f"k2 {base64.b64encode(os.urandom(32)).decode()}\n" + keyfile.read_text())
    relay.start()
    send(relay, "under k2")
    files = wait_until(lambda: (lambda f: f if len(f) == 2 else None)(list(spool.glob("*.msg"))), 10, "both messages queued")
    assert "k2" in {key_id(f) for f in files}

    # Rotate while running: picked up without a restart.
    keyfile.write_text(f"k3 {base64.b64encode(os.urandom(32)).decode()}\n" + keyfile.read_text())
    wait_until(lambda: "configuration reloaded" in relay.log_text() or "spool key ring reloaded" in relay.log_text(), 15, "the key reload")
    before = {f.name for f in spool.glob("*.msg")}
    send(relay, "under k3")
    new = wait_until(lambda: [f for f in spool.glob("*.msg") if f.name not in before], 10, "the third message queued")
    assert key_id(new[0]) == "k3"
    metrics = relay.metrics()
    for k in (old_id, "k2", "k3"):
        assert f'cascade_relay_spool_key_seals{{key="{k}"}}' in metrics, k

    sink.handler.temp_failures = 0
    wait_until(lambda: len(sink.messages) >= 3, 30, "all three delivered")
    delivered = b"".join(m[2] for m in sink.messages)
    for subject in (b"under the old key", b"under k2", b"under k3"):
        assert subject in delivered
    wait_until(lambda: not list(spool.glob("*.msg")), 10, "the spool emptied")
