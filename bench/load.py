"""A TLS + AUTH SMTP load generator (asyncio): N sessions, each does STARTTLS and AUTH once and
then submits messages one after another until the total is reached. Prints JSON with the count
of acknowledged messages and the elapsed time. Used by relay-vs-postfix.sh; loopback only.

    python3 load.py --port 2587 --user U --password P --sessions 50 --messages 10000 --size 4096
"""
import argparse
import asyncio
import base64
import json
import ssl
import time


async def reply(reader):
    lines = []
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("closed")
        lines.append(line)
        if line[3:4] != b"-":
            return int(line[:3]), lines


async def session(args, counter, acked, ctx, body):
    reader, writer = await asyncio.open_connection("127.0.0.1", args.port)
    await reply(reader)
    writer.write(b"EHLO load.test\r\n")
    await reply(reader)
    if not args.no_tls:
        writer.write(b"STARTTLS\r\n")
        code, _ = await reply(reader)
        assert code == 220, code
        await writer.start_tls(ctx)
        writer.write(b"EHLO load.test\r\n")
        await reply(reader)
    if args.user:
        token = base64.b64encode(f"\0{args.user}\0{args.password}".encode()).decode()
        writer.write(f"AUTH PLAIN {token}\r\n".encode())
        code, _ = await reply(reader)
        assert code == 235, code
    while counter[0] < args.messages:
        counter[0] += 1
        writer.write(f"MAIL FROM:<{args.sender}>\r\nRCPT TO:<{args.rcpt}>\r\nDATA\r\n".encode())
        c1, _ = await reply(reader)
        c2, _ = await reply(reader)
        c3, _ = await reply(reader)
        if (c1, c2, c3) != (250, 250, 354):
            raise RuntimeError(f"refused: {c1} {c2} {c3}")
        writer.write(body)
        code, _ = await reply(reader)
        if code == 250:
            acked[0] += 1
    writer.write(b"QUIT\r\n")
    await writer.drain()
    writer.close()


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--user", default="")
    p.add_argument("--password", default="")
    p.add_argument("--sessions", type=int, default=50)
    p.add_argument("--messages", type=int, default=10000)
    p.add_argument("--size", type=int, default=4096)
    p.add_argument("--sender", default="dev@example.test")
    p.add_argument("--rcpt", default="sink@dest.test")
    p.add_argument("--no-tls", action="store_true")
    args = p.parse_args()
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    head = f"From: <{args.sender}>\r\nTo: <{args.rcpt}>\r\nSubject: load\r\n\r\n".encode()
    line = b"x" * 76 + b"\r\n"
    body = head + line * max(1, (args.size - len(head)) // len(line)) + b".\r\n"
    counter, acked = [0], [0]
    start = time.monotonic()
    results = await asyncio.gather(*(session(args, counter, acked, ctx, body) for _ in range(args.sessions)), return_exceptions=True)
    elapsed = time.monotonic() - start
    errors = [repr(r) for r in results if isinstance(r, Exception)]
    print(json.dumps({"acknowledged": acked[0], "seconds": round(elapsed, 3), "errors": errors[:3]}))


if __name__ == "__main__":
    asyncio.run(main())
