"""A permanent refusal from the receiver produces an RFC 3464 bounce to the envelope sender."""
from conftest import standard_setup, wait_until


def test_permanent_failure_bounces_to_the_sender(workdir, dns_server, cleanup):
    dns, sink, relay = standard_setup(workdir, dns_server, cleanup)
    sink.handler.reject_rcpts.add("nobody@dest.test")
    assert relay.swaks(to="nobody@dest.test").returncode == 0
    msgs = wait_until(lambda: sink.messages, 30, "the bounce at the sender's MX")
    mail_from, rcpts, data, _ = msgs[0]
    assert mail_from in ("", "<>") and rcpts == ["dev@example.test"]
    assert b"Content-Type: multipart/report; report-type=delivery-status" in data
    assert b"Final-Recipient: rfc822; nobody@dest.test\r\nAction: failed\r\nStatus: 5.1.1" in data
    assert relay.metric("cascade_relay_recipients_bounced_total") == 1
    wait_until(lambda: not list((relay.dir / "spool").glob("*.msg")), 10, "spool emptied")
