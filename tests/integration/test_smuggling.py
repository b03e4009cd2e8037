"""A corpus of published SMTP smuggling and protocol-confusion inputs against the running relay.

Sources: the SMTP smuggling end-of-data variants (SEC Consult, December 2023; CVE-2023-51764/5/6),
STARTTLS command injection (CVE-2011-0411), RFC 2920 pipelining rules, RFC 5321 line limits and
RFC 6531 (SMTPUTF8). Each input gets its exact refusal, the session stays in step (or is closed
where it must be), and nothing smuggled is ever delivered.
"""
import smtplib
import socket
import ssl
import time

import pytest

from conftest import module_setup, wait_until
from helpers import message, submit_client, tls_context

SMUGGLED = b"MAIL FROM:<dev@example.test>\r\nRCPT TO:<victim@dest.test>\r\nDATA\r\nFrom: dev@example.test\r\n\r\nsmuggled-%s\r\n.\r\n"
BARE = (550, b"5.6.0 Message contains a bare LF or CR; lines must end with CRLF (RFC 5321 2.3.8)")
NUL = (550, b"5.6.0 Message contains a NUL byte (RFC 5322 2.3)")
CLOSING = (421, b"4.5.0 Bare line ending or NUL in the message; closing")

# (name, bytes sent after the first body line, expected reply). The published class: SEC Consult
# (December 2023) and the variants Postfix (CVE-2023-51764), Exim (CVE-2023-51766) and Sendmail
# (CVE-2023-51765) fixed: bare LF, bare CR, CR CR LF, mixed, before and after the dot, NUL.
DATA_CASES = [
    ("lf.lf", b"\n.\n", BARE),
    ("cr.cr", b"\r.\r", BARE),
    ("crlf.lf", b"\r\n.\n", BARE),
    ("lf.crlf", b"\n.\r\n", BARE),
    ("crlf.cr", b"\r\n.\r", BARE),
    ("cr.crlf", b"\r.\r\n", BARE),
    ("crlf-cr.crlf", b"\r\n\r.\r\n", BARE),
    ("crlf.cr-crlf", b"\r\n.\r\r\n", BARE),
    ("cr-crlf.cr-crlf", b"\r\r\n.\r\r\n", BARE),
    ("crlf-lf.crlf", b"\r\n\n.\r\n", BARE),
    ("crlf.lf-crlf", b"\r\n.\n\r\n", BARE),
    ("lf-cr.crlf", b"\n\r.\r\n", BARE),
    ("crlf-crlf.cr", b"\r\n\r\n.\r", BARE),
    ("crlf-nul.crlf", b"\r\n\x00.\r\n", NUL),
    ("crlf.nul-crlf", b"\r\n.\x00\r\n", NUL),
]

# (name, raw command bytes, expected replies...) in an authenticated session with no transaction.
COMMAND_CASES = [
    ("overlong line", b"NOOP " + b"x" * 5000 + b"\r\n", (500, b"5.5.2 Line too long")),
    ("bare LF ends a command", b"NOOP\n", (500, b"5.5.2 Command lines must end with CRLF")),
    ("bare CR splits a command", b"MAIL FROM:<dev@example.test>\rRCPT TO:<victim@dest.test>\r\n", (501, b"5.5.4 Command contains NUL, CR or LF")),
    ("NUL in a command", b"MAIL FROM:<dev@example.test>\x00 SIZE=1\r\n", (501, b"5.5.4 Command contains NUL, CR or LF")),
    ("invalid UTF-8 with SMTPUTF8", b"MAIL FROM:<d\xffv@example.test> SMTPUTF8\r\n", (501, b"5.5.4 Command is not valid UTF-8")),
    ("UTF-8 address without SMTPUTF8 support", "MAIL FROM:<dév@example.test> SMTPUTF8\r\n".encode(), (553, b"5.6.7 Non-ASCII command; SMTPUTF8 is not supported")),
    ("header injected after an address", b"MAIL FROM:<dev@example.test>\rBcc: victim@dest.test\r\n", (501, b"5.5.4 Command contains NUL, CR or LF")),
    ("second address after a comma", b"MAIL FROM:<dev@example.test>,<victim@dest.test>\r\n", (501, b"5.1.7 Invalid address: expected <local-part@domain>")),
    ("second address as a parameter", b"MAIL FROM:<dev@example.test> <victim@dest.test>\r\n", (555, b"5.5.4 Unsupported MAIL parameter")),
    # CRLF ends the line even inside quotes: two broken commands, neither opens a transaction.
    ("quoted local part hiding CRLF", b'MAIL FROM:<"x\\\r\nBcc: v"@example.test>\r\n',
     (501, b"5.1.7 Invalid address: expected <local-part@domain>"), (500, b"5.5.2 Command unrecognized")),
]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    yield from module_setup(tmp_path_factory.mktemp("smuggling"))


def replies(c, n):
    return [c.getreply() for _ in range(n)]


@pytest.mark.parametrize("name,ending,expected", DATA_CASES, ids=[c[0] for c in DATA_CASES])
def test_end_of_data_variants_are_refused_and_nothing_is_smuggled(world, name, ending, expected):
    """Only <CRLF>.<CRLF> ends DATA. The message is refused at that real end and the session is
    closed, so no byte from inside the refused body ever runs as a command."""
    sink, relay = world
    c = submit_client(relay)
    assert c.mail("dev@example.test")[0] == 250
    assert c.rcpt("rcpt@dest.test")[0] == 250
    assert c.docmd("DATA")[0] == 354
    c.sock.sendall(b"From: dev@example.test\r\nSubject: smuggle\r\n\r\nfirst" + ending + SMUGGLED % name.encode())
    assert c.getreply() == expected
    assert c.getreply() == CLOSING
    with pytest.raises(smtplib.SMTPServerDisconnected):
        c.getreply()
    # A canary sent afterwards arrives; nothing from the refused session ever does.
    canary = f"canary {name}"
    c = submit_client(relay)
    c.sendmail("dev@example.test", ["rcpt@dest.test"], message(subject=canary))
    c.quit()
    wait_until(lambda: any(canary.encode() in m[2] for m in sink.handler.messages), 30, "the canary at the sink")
    assert not [m for m in sink.handler.messages if f"smuggled-{name}".encode() in m[2] or b"smuggle\r\n" in m[2]]


def test_an_overlong_body_line_is_refused(world):
    sink, relay = world
    c = submit_client(relay)
    c.mail("dev@example.test")
    c.rcpt("rcpt@dest.test")
    assert c.docmd("DATA")[0] == 354
    c.sock.sendall(b"From: dev@example.test\r\n\r\n" + b"y" * 1200 + b"\r\n.\r\n")
    assert c.getreply() == (550, b"5.6.0 Message has a line longer than 1000 bytes (RFC 5322 2.1.1)")
    assert c.noop()[0] == 250
    c.quit()


@pytest.mark.parametrize("name,raw,expected", [(c[0], c[1], c[2:]) for c in COMMAND_CASES], ids=[c[0] for c in COMMAND_CASES])
def test_malformed_commands_are_refused(world, name, raw, expected):
    sink, relay = world
    c = submit_client(relay)
    c.sock.sendall(raw)
    assert replies(c, len(expected)) == list(expected)
    assert c.noop() == (250, b"2.0.0 OK")
    # No transaction was opened by anything in the refused line.
    assert c.rcpt("victim@dest.test")[0] == 503
    c.quit()


def test_a_body_pipelined_behind_a_refused_data_is_dropped_and_the_session_closed(world):
    sink, relay = world
    c = submit_client(relay)
    assert c.mail("dev@example.test")[0] == 250
    c.sock.sendall(b"DATA\r\n" + SMUGGLED % b"pipelined")
    assert c.getreply() == (554, b"5.5.1 No valid recipients")
    assert c.getreply() == (421, b"4.5.0 Input pipelined after a refused DATA; closing")
    with pytest.raises(smtplib.SMTPServerDisconnected):
        c.getreply()


def test_commands_injected_behind_starttls_are_discarded(world):
    sink, relay = world
    s = socket.create_connection(("127.0.0.1", relay.submission), timeout=10)
    f = s.makefile("rb")
    assert f.readline().startswith(b"220 ")
    s.sendall(b"EHLO client.test\r\n")
    while not f.readline().startswith(b"250 "):
        pass
    s.sendall(b"STARTTLS\r\nMAIL FROM:<dev@example.test>\r\nRCPT TO:<victim@dest.test>\r\n")
    assert f.readline() == b"220 2.0.0 Ready to start TLS\r\n"
    t = tls_context().wrap_socket(s, server_hostname="localhost")
    tf = t.makefile("rb")
    import base64
    token = base64.b64encode(f"\0{relay.creds['username']}\0{relay.creds['password']}".encode())
    t.sendall(b"EHLO client.test\r\n")
    while not tf.readline().startswith(b"250 "):
        pass
    t.sendall(b"AUTH PLAIN " + token + b"\r\n")
    assert tf.readline() == b"235 2.7.0 Authentication successful\r\n"
    # The plaintext MAIL never happened: RCPT has no transaction to join.
    t.sendall(b"RCPT TO:<victim@dest.test>\r\n")
    assert tf.readline() == b"503 5.5.1 Need MAIL before RCPT\r\n"
    t.close()


def test_nothing_smuggled_was_ever_delivered(world):
    """Runs last in this module: a good message arrives, and no message for the victim did."""
    sink, relay = world
    c = submit_client(relay)
    c.sendmail("dev@example.test", ["rcpt@dest.test"], message(subject="after the corpus"))
    c.quit()
    wait_until(lambda: any(b"after the corpus" in m[2] for m in sink.handler.messages), 30, "the good message at the sink")
    assert not [m for m in sink.handler.messages if "victim@dest.test" in m[1] or b"smuggled" in m[2]]
