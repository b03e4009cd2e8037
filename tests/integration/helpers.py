"""Small SMTP client helpers on Python's smtplib (a real, independent SMTP client)."""
import smtplib
import ssl


def tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the dev certificate is self-signed
    return ctx


def submit_client(relay, login=True):
    c = smtplib.SMTP("127.0.0.1", relay.submission, timeout=20)
    c.ehlo("client.test")
    c.starttls(context=tls_context())
    c.ehlo("client.test")
    if login:
        c.login(relay.creds["username"], relay.creds["password"])
    return c


def message(subject="hello", body="hello from the test", sender="dev@example.test", to="rcpt@dest.test", extra=""):
    return (f"From: Dev <{sender}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n{extra}\r\n{body}\r\n").encode()
