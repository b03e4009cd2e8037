"""`kill -9` while clients submit: every message that got `250` is delivered after a restart.

Postfix's smtp-source can do neither STARTTLS nor AUTH, which the relay requires before MAIL, so
the load comes from Python's smtplib (several connections, STARTTLS + AUTH, one message after
another on each), recording exactly which messages were acknowledged."""
import threading
import time

from conftest import standard_setup, wait_until
from helpers import message, submit_client

TOTAL = 2000
CLIENTS = 8


def test_acknowledged_messages_survive_kill_9(workdir, dns_server, cleanup):
    dns, sink, relay = standard_setup(workdir, dns_server, cleanup)
    acked, lock = set(), threading.Lock()
    counter = iter(range(TOTAL))
    next_lock = threading.Lock()

    def client():
        deadline = time.monotonic() + 120
        c = None
        while time.monotonic() < deadline:
            with next_lock:
                n = next(counter, None)
            if n is None:
                return
            try:
                if c is None:
                    c = submit_client(relay)
                c.sendmail("dev@example.test", ["rcpt@dest.test"], message(subject=f"seq-{n}-end", extra=f"X-Seq: {n}\r\n"))
                with lock:
                    acked.add(n)
            except Exception:
                c = None  # relay killed or restarting: this message was not acknowledged
                time.sleep(0.2)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    wait_until(lambda: len(acked) >= 300, 120, "300 acknowledged messages")
    relay.kill9()
    time.sleep(0.5)
    relay.start()
    for t in threads:
        t.join(180)
    assert len(acked) >= 300
    def delivered():
        return {int(d.split(b"X-Seq: ")[1].split(b"\r\n")[0]) for _, _, d, _ in sink.messages}
    wait_until(lambda: acked <= delivered(), 180, "every acknowledged message at the sink")
    missing = acked - delivered()
    assert not missing, f"{len(missing)} acknowledged messages lost"
    print(f"acknowledged {len(acked)} of {TOTAL}; delivered {len(delivered())}")
    assert len(acked) >= TOTAL // 2, "too few messages acknowledged for the test to mean much"
