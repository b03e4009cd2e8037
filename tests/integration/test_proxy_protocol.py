"""Clients behind a load balancer: connections from `trustedProxyCidrs` start with a PROXY v2
header (built here by the `proxy-protocol` library, a real implementation of HAProxy's spec), and
its source address is the client for per-client limits, allowed networks and `Received:`. A
trusted peer without a header is closed; an untrusted peer's header is never believed."""
import smtplib
import socket
from ipaddress import IPv4Address, IPv6Address

import pytest

from conftest import module_setup, pylib, wait_until
from helpers import message, tls_context

pylib("proxy-protocol==0.11.3")
from proxyprotocol.result import ProxyResultIPv4, ProxyResultIPv6, ProxyResultLocal  # noqa: E402
from proxyprotocol.v2 import ProxyProtocolV2  # noqa: E402


def tweak(cfg):
    return (cfg.replace("allowedClientCidrs: []", "allowedClientCidrs: [203.0.113.0/24, '2001:db8::/32', 127.0.0.1/32]\n  trustedProxyCidrs: [127.0.0.1/32]")
               .replace("maxSessionsPerClient: 50", "maxSessionsPerClient: 2"))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    for sink, relay in module_setup(tmp_path_factory.mktemp("proxy"), tweak=tweak):
        assert "trustedProxyCidrs" in relay.config.read_text()
        yield sink, relay


def header(source, port=40000):
    if ":" in source:
        result = ProxyResultIPv6((IPv6Address(source), port), (IPv6Address("::1"), 587))
    else:
        result = ProxyResultIPv4((IPv4Address(source), port), (IPv4Address("127.0.0.1"), 587))
    return ProxyProtocolV2().pack(result)


class ProxiedSMTP(smtplib.SMTP):
    """smtplib behind a balancer: the PROXY header goes first on the new connection."""

    def __init__(self, port, prefix, **kw):
        self.prefix = prefix
        super().__init__("127.0.0.1", port, timeout=20, **kw)

    def _get_socket(self, host, port, timeout):
        s = socket.create_connection((host, port), timeout)
        s.sendall(self.prefix)
        return s


def greeting(relay, prefix, source=None):
    s = socket.socket()
    if source:
        s.bind((source, 0))
    s.settimeout(10)
    s.connect(("127.0.0.1", relay.submission))
    s.sendall(prefix)
    return s, s.makefile("rb").readline()


def test_the_header_source_is_the_client(world):
    sink, relay = world
    c = ProxiedSMTP(relay.submission, header("203.0.113.9"))
    c.ehlo("client.test")
    c.starttls(context=tls_context())
    c.login(relay.creds["username"], relay.creds["password"])
    c.sendmail("dev@example.test", ["rcpt@dest.test"], message(subject="via the balancer"))
    c.quit()
    data = wait_until(lambda: [m for m in sink.messages if b"via the balancer" in m[2]], 30, "the proxied message")[0][2]
    assert b"(203.0.113.9)" in data.split(b"\r\n\r\n")[0]


def test_implicit_tls_behind_the_balancer(world):
    sink, relay = world
    s = socket.create_connection(("127.0.0.1", relay.submissions), timeout=10)
    s.sendall(header("2001:db8::9"))
    t = tls_context().wrap_socket(s, server_hostname="localhost")
    assert t.makefile("rb").readline().startswith(b"220 ")
    t.close()


def test_per_client_limits_follow_the_real_client(world):
    sink, relay = world
    held = [greeting(relay, header("203.0.113.10")) for _ in range(2)]
    assert all(line.startswith(b"220 ") for _, line in held)
    s, line = greeting(relay, header("203.0.113.10"))
    assert line == b"421 4.7.0 Too many connections from your address (limit 2); try again later\r\n"
    # Another client behind the same balancer is not affected.
    other, line = greeting(relay, header("203.0.113.11"))
    assert line.startswith(b"220 ")
    for sock in [s, other] + [h for h, _ in held]:
        sock.close()


def test_allowed_networks_follow_the_real_client(world):
    sink, relay = world
    s, line = greeting(relay, header("198.51.100.1"))
    assert line == b"554 5.7.1 Your address is not allowed to use this relay\r\n"
    s.close()


def test_local_command_means_the_balancer_itself(world):
    sink, relay = world
    s, line = greeting(relay, ProxyProtocolV2().pack(ProxyResultLocal()))
    assert line.startswith(b"220 ")  # 127.0.0.1 is an allowed network
    s.close()


def test_a_trusted_peer_without_a_header_is_closed(world):
    sink, relay = world
    before = relay.metric('cascade_relay_messages_rejected_total{reason="proxy_header"}')
    try:
        s, line = greeting(relay, b"EHLO client.test\r\nQUIT\r\n")
        s.close()
    except ConnectionResetError:
        line = b""  # closed with our unread bytes still queued
    assert line == b""  # no greeting: the connection was closed
    assert relay.metric('cascade_relay_messages_rejected_total{reason="proxy_header"}') == before + 1


def test_an_untrusted_peer_cannot_claim_an_address(world):
    """127.0.0.2 is no trusted balancer: its header is not read, so it stays 127.0.0.2, which
    is not an allowed network, whatever address the header names."""
    sink, relay = world
    s, line = greeting(relay, header("203.0.113.9"), source="127.0.0.2")
    assert line == b"554 5.7.1 Your address is not allowed to use this relay\r\n"
    s.close()
