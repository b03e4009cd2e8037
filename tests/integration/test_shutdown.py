"""SIGTERM: no new sessions, a session in DATA finishes with 250, nothing accepted is lost."""
import signal
import socket

from conftest import standard_setup, wait_until
from helpers import message, submit_client


def test_sigterm_lets_a_transaction_in_data_finish(workdir, dns_server, cleanup):
    dns, sink, relay = standard_setup(workdir, dns_server, cleanup)
    sink.handler.temp_failures = 10**6  # the receiver defers: the message stays queued across the restart
    c = submit_client(relay)
    assert c.mail("dev@example.test")[0] == 250
    assert c.rcpt("rcpt@dest.test")[0] == 250
    assert c.docmd("DATA")[0] == 354
    data = message(subject="in flight")
    c.sock.sendall(data[:40])
    relay.proc.send_signal(signal.SIGTERM)
    wait_until(lambda: _refused(relay.submission), 10, "listener closed")
    assert _readyz(relay) == 503
    c.sock.sendall(data[40:] + b"\r\n.\r\n")
    code, text = c.getreply()
    assert code == 250, text
    c.close()
    assert relay.proc.wait(40) == 0
    assert len(list((relay.dir / "spool").glob("*.msg"))) == 1
    sink.handler.temp_failures = 0  # receiver accepts again, relay restarted: the message goes out
    relay.start()
    wait_until(lambda: sink.messages, 30, "delivery after restart")


def _refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return False
    except OSError:
        return True


def _readyz(relay):
    import urllib.error
    import urllib.request
    try:
        return urllib.request.urlopen(f"https://127.0.0.1:{relay.http}/readyz", timeout=5, context=relay.https_context()).status
    except urllib.error.HTTPError as e:
        return e.code
