"""Trickle sessions: a real TLS client that keeps every read within its timeout but sends one
byte at a time is closed at the whole-session deadline, and message data below the minimum rate
ends the session; both are counted, and a well-paced client is unaffected."""
import smtplib
import time

from conftest import standard_setup, wait_until
from helpers import message, submit_client


def tweak(cfg):
    return (cfg.replace("sessionTimeout: 10m", "sessionTimeout: 4s")
               .replace('minDataRate: "500"', "minDataRate: 1000")
               .replace("dataRateWindow: 30s", "dataRateWindow: 2s"))


def trickle(c, data, every):
    for b in data:
        c.sock.sendall(bytes([b]))
        time.sleep(every)


def test_trickled_commands_hit_the_session_deadline(workdir, dns_server, cleanup):
    dns, sink, relay = standard_setup(workdir, dns_server, cleanup, tweak=tweak)
    c = submit_client(relay)
    started = time.monotonic()
    reply = None
    for _ in range(40):
        try:
            trickle(c, b"NOOP\r\n", 0.1)
        except OSError:
            pass  # the relay closed mid-command; its reply is already on the wire
        reply = c.getreply()
        if reply[0] != 250:
            break
    assert reply == (421, b"4.4.2 Session time limit reached, closing connection")
    assert 4 <= time.monotonic() - started < 8
    assert relay.metric('cascade_relay_messages_rejected_total{reason="session_deadline"}') == 1


def test_message_data_below_the_minimum_rate_is_cut_off(workdir, dns_server, cleanup):
    dns, sink, relay = standard_setup(workdir, dns_server, cleanup, tweak=lambda cfg: tweak(cfg).replace("sessionTimeout: 4s", "sessionTimeout: 1m"))
    c = submit_client(relay)
    assert c.mail("dev@example.test")[0] == 250
    assert c.rcpt("rcpt@dest.test")[0] == 250
    assert c.docmd("DATA")[0] == 354
    started = time.monotonic()
    c.sock.sendall(b"From: dev@example.test\r\nSubject: trickle\r\n\r\n")
    try:
        trickle(c, b"x" * 20, 0.3)  # about 3 bytes/s, far within the 3-minute read timeout
    except OSError:
        pass  # the relay closed first
    assert c.getreply() == (421, b"4.4.2 Message data arrived too slowly, closing connection")
    assert time.monotonic() - started < 8
    assert relay.metric('cascade_relay_messages_rejected_total{reason="data_rate"}') == 1
    # A well-paced client still gets through, and nothing of the trickled message was delivered.
    c = submit_client(relay)
    c.sendmail("dev@example.test", ["rcpt@dest.test"], message(subject="paced"))
    c.quit()
    wait_until(lambda: sink.messages, 30, "the paced message")
    assert not [m for m in sink.messages if b"trickle" in m[2]]
