"""A farm of local feeds for bench/sources.py, run as its own process so that serving them
costs the monitor nothing. Listens on 127.0.0.1 … 127.0.0.<hosts> (all loopback on Linux), so
the monitor's per-host politeness applies as it would to many real sites.

Feed n behaves by n % 100:
  0–59   answers 304 to its ETag          85–94  changed: a new item every interval
  60–84  unchanged (same body, no ETag)   95–98  slow: answers after 3–8 s
  99     failing: HTTP 500
Each changed feed changes at its own moment of the interval. Every tenth changed feed is a sentinel: its new item carries a token (SENT<feed>C<cycle>) that
one rule of the bench matches, so the time from first serving it to its alert can be measured.

Logs one JSON line per request ({"t", "feed", "status"}) and per first serving of a token.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from email.utils import formatdate


def kind(n: int) -> str:
    k = n % 100
    return "etag" if k < 60 else "same" if k < 85 else "changed" if k < 95 else "slow" if k < 99 else "fail"


def sentinel(n: int) -> bool:
    return kind(n) == "changed" and (n // 100) % 10 == 0


def cycle_of(n: int, now: float) -> int:
    """Which cycle feed n is in: each changes at its own moment of the interval, as real sites
    do (all at once would be an alert storm, which the monitor rightly folds into a digest)."""
    offset = (n * 37 % 100) / 100 * INTERVAL
    return max(0, int((now - START - offset) // INTERVAL))


def body(n: int, cycle: int) -> bytes:
    items = []
    for c in range(max(0, cycle - 19), cycle + 1) if kind(n) == "changed" else [0]:
        token = f"SENT{n:05d}C{c:02d} " if sentinel(n) else ""
        title = f"{token}市民反映第{n}号小区第{c}期问题" + ("：化工厂爆炸" if token else "")
        items.append(f"<item><guid>feed{n}-{c}</guid><title>{title}</title><description>来信内容 {n}-{c}</description>"
                     f"<pubDate>{formatdate(START + c * INTERVAL, usegmt=True)}</pubDate></item>")
    return ('<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>feed</title>'
            + "".join(items) + "</channel></rss>").encode()


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            path = lines[0].split(" ")[1]
            headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
            n = int(path.strip("/").removeprefix("feed").removesuffix(".xml"))
            cycle = cycle_of(n, time.time())
            status, extra, payload = 200, "", b""
            what = kind(n)
            if what == "fail":
                status, payload = 500, b"oops"
            elif what == "etag" and headers.get("if-none-match") == f'"e{n}"':
                status = 304
            else:
                if what == "slow":
                    await asyncio.sleep(RNG.uniform(3, 8))
                payload = body(n, cycle)
                if what == "etag":
                    extra = f'ETag: "e{n}"\r\n'
                if sentinel(n) and (n, cycle) not in SERVED:
                    SERVED.add((n, cycle))
                    LOG.write(json.dumps({"token": f"SENT{n:05d}C{cycle:02d}", "served": time.time()}) + "\n")
            LOG.write(json.dumps({"t": time.time(), "feed": n, "status": status}) + "\n")
            reason = {200: "OK", 304: "Not Modified", 500: "Internal Server Error"}[status]
            writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/rss+xml; charset=utf-8\r\n"
                         f"Content-Length: {len(payload)}\r\n{extra}\r\n".encode() + payload)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, ValueError, IndexError):
        pass
    finally:
        writer.close()


async def serve(port: int, hosts: int) -> None:
    server = await asyncio.start_server(handle, host=[f"127.0.0.{h}" for h in range(1, hosts + 1)], port=port, backlog=1024)
    async with server:
        while True:
            await asyncio.sleep(1)
            LOG.flush()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--hosts", type=int, default=100)
    ap.add_argument("--interval", type=float, required=True, help="seconds between new items of a changed feed")
    ap.add_argument("--log", required=True)
    args = ap.parse_args()
    START, INTERVAL, RNG, SERVED = time.time(), args.interval, random.Random(17), set()
    LOG = open(args.log, "a", encoding="utf-8")
    asyncio.run(serve(args.port, args.hosts))
