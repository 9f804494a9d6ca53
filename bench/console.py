"""Console benchmark: the duty board with 10,000 open incidents, and acknowledgements from 50
officers at once, served by `monitor run` while it ingests the pipeline benchmark's load
(real Chinese posts from ../shared/data as local feeds).

Measures, in one run:
  board_ms_p50 / board_ms_p95   GET / (值班台, first page of 10,000 open incidents, nearest deadline first)
  ack_ms_p50 / ack_ms_p99       POST /incidents/N/ack by 50 logged-in users at once, each acking its own
                                incidents one after another with a think time between (--think, 1 s:
                                50 acknowledgements a second in all, far above a real duty office's)
  ack_burst_ms_p99              the same with no think time: every user fires back to back (a stress
                                figure: 50 requests always queued on two cores)
  posts_during                  posts the daemon processed while the requests ran (it was busy)
The officers' requests come from one event loop over raw keep-alive HTTP/1.1, which costs the
client a few per cent of a core: fifty httpx threads cost more CPU than the console spent
answering them, on the same two cores, and their wait for the GIL was counted as the server's.
Targets (issue 16): board < 300 ms; ack p99 < 100 ms.

Usage: python bench/console.py [--incidents 10000] [--users 50] [--acks 20] [--feeds 100] [--items 100]
The last line printed is a JSON object of the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import httpx  # noqa: E402

import pipeline as load  # noqa: E402  (bench/pipeline.py: the same feeds and texts)

PASSWORD = "bench-password-1"


def seed(db_url: str, incidents: int, users: int) -> None:
    """Open incidents with clocks due over the next two days, and the officers' accounts."""
    from sqlalchemy import insert, select

    from monitor import accounts
    from monitor.store import db
    from monitor.store.models import Incident, ResponseClock

    engine = db.make_engine(db_url)
    db.upgrade(engine)
    sessions = db.session_factory(engine)
    now = datetime.now(timezone.utc)
    rng = random.Random(16)
    severities = ["特别重大", "重大", "较大", "一般"]
    with sessions.begin() as s:
        s.execute(insert(Incident), [
            {"rule": f"规则{i % 7}", "title": f"压测事件 {i} 某区某街道投诉", "severity": severities[i % 4], "category": "测试",
             "department": f"部门{i % 12}", "state": "open", "started_at": now - timedelta(minutes=i % 600),
             "opened_at": now - timedelta(minutes=i % 600), "last_post_at": now, "terms": ["投诉"], "post_count": 1,
             "next_step_at": now + timedelta(days=3), "false_positive": False}
            for i in range(incidents)
        ])
        ids = list(s.scalars(select(Incident.id)))
        s.execute(insert(ResponseClock), [
            {"incident_id": i, "name": name, "started_at": now, "due_at": now + timedelta(minutes=rng.randint(30, 2880)), "active": True}
            for i in ids for name in ("发布权威信息", "召开新闻发布会")
        ])
        for u in range(users):
            accounts.add(s, f"officer{u}", "值班员", PASSWORD, now)
    engine.dispose()


def wait_ready(proc, sock) -> float:
    started = time.perf_counter()
    while "READY=1" not in sock.recv(4096).decode():
        if proc.poll() is not None:
            sys.exit(f"daemon exited: {proc.stderr.read().decode()[-2000:]}")
    return time.perf_counter() - started


def login(base: str, name: str) -> tuple[httpx.Client, str]:
    c = httpx.Client(base_url=base, timeout=30)
    token = re.search(r'name="csrf" value="([^"]+)"', c.get("/login").text).group(1)
    r = c.post("/login", data={"name": name, "password": PASSWORD, "csrf": token})
    assert r.status_code == 303, r.text[:300]
    page = c.get("/").text
    return c, re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q / 100 * len(values)))], 1)


def processed(db: Path) -> int:
    try:
        con = sqlite3.connect(db, timeout=30)
        n = con.execute("select count(*) from posts where processed_at is not null").fetchone()[0]
        con.close()
        return n
    except sqlite3.Error:
        return -1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--incidents", type=int, default=10_000)
    ap.add_argument("--users", type=int, default=50)
    ap.add_argument("--acks", type=int, default=20, help="acknowledgements per user")
    ap.add_argument("--feeds", type=int, default=100)
    ap.add_argument("--items", type=int, default=100)
    ap.add_argument("--board-requests", type=int, default=30)
    ap.add_argument("--think", type=float, default=1.0, help="seconds a user waits between acknowledgements")
    args = ap.parse_args()
    if not load.DATA.exists():
        sys.exit(f"shared data not found at {load.DATA} (set MONITOR_SHARED_DATA)")
    from monitor.config import load as load_config
    from monitor.matching.matcher import Matcher

    texts = load.real_texts()
    matcher = Matcher(load_config(REPO / "config" / "demo.toml").rules)
    posts, _ = load.choose_posts(texts, matcher, args.feeds * args.items, 0.10, random.Random(20261122))

    with tempfile.TemporaryDirectory(prefix="monitor-console-bench-") as tmp:
        folder = Path(tmp)
        feeds_dir = folder / "feeds"
        feeds_dir.mkdir()
        load.write_feeds(feeds_dir, posts, args.feeds, args.items)
        feed_port, web_port = load.free_port(), load.free_port()
        server = subprocess.Popen([sys.executable, "-m", "http.server", str(feed_port), "--bind", "127.0.0.1",
                                   "--directory", str(feeds_dir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cfg_path = load.bench_config(folder, feed_port, args.feeds)
        base = f"http://127.0.0.1:{web_port}"
        with cfg_path.open("a", encoding="utf-8") as f:
            f.write(f'[web]\nlisten = "127.0.0.1:{web_port}"\nbase_url = "{base}"\nsecure_cookies = false\n')
        db = folder / "bench.db"
        t = time.perf_counter()
        seed(f"sqlite:///{db}", args.incidents, args.users)
        print(f"seeded {args.incidents} open incidents and {args.users} users in {time.perf_counter() - t:.1f} s")

        sock_path = str(folder / "notify.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(sock_path)
        sock.settimeout(120)
        proc = subprocess.Popen([sys.executable, "-m", "monitor", "run", "--config", str(cfg_path)],
                                env=dict(os.environ, NOTIFY_SOCKET=sock_path), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            ready = wait_ready(proc, sock)
            print(f"daemon ready in {ready:.1f} s; ingesting {args.feeds * args.items} posts meanwhile")
            before = processed(db)
            clients = [login(base, f"officer{u}") for u in range(args.users)]
            board_ms = []
            desk, _ = clients[0]
            for _ in range(args.board_requests):
                t = time.perf_counter()
                r = desk.get("/")
                board_ms.append((time.perf_counter() - t) * 1000)
                assert r.status_code == 200 and "未关闭事件" in r.text
            print(f"board: p50 {pct(board_ms, 50)} ms, p95 {pct(board_ms, 95)} ms over {len(board_ms)} requests "
                  f"({len(r.content) // 1024} KB a page)")

            def acks(first: int, think: float):
                """Each user on its own keep-alive connection, all on one event loop over raw HTTP/1.1:
                the load generator's own cost stays small beside the server's on two shared cores
                (fifty httpx threads cost the client more CPU than the console spends answering)."""
                async def acker(u: int) -> list[float]:
                    client, token = clients[u]
                    cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
                    rng = random.Random(u)
                    if think:
                        await asyncio.sleep(rng.uniform(0, think))  # users do not all start in the same millisecond
                    reader, writer = await asyncio.open_connection("127.0.0.1", web_port)
                    out = []
                    body = f"csrf={token}".encode()
                    for k in range(args.acks):
                        incident_id = first + u * args.acks + k
                        request = (f"POST /incidents/{incident_id}/ack HTTP/1.1\r\nHost: 127.0.0.1:{web_port}\r\n"
                                   f"Cookie: {cookie}\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                                   f"Content-Length: {len(body)}\r\n\r\n").encode() + body
                        t = time.perf_counter()
                        writer.write(request)
                        head = await reader.readuntil(b"\r\n\r\n")
                        length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
                        await reader.readexactly(length)
                        out.append((time.perf_counter() - t) * 1000)
                        status = int(head.split(b" ", 2)[1])
                        assert status == 303, (status, head[:200])
                        if think:
                            await asyncio.sleep(rng.uniform(0.5, 1.5) * think)
                    writer.close()
                    return out

                async def everyone():
                    return await asyncio.gather(*(acker(u) for u in range(args.users)))

                t = time.perf_counter()
                ms = [m for chunk in asyncio.run(everyone()) for m in chunk]
                return ms, time.perf_counter() - t

            ack_ms, wall = acks(1, args.think)
            during = processed(db) - before
            print(f"ack, think time {args.think} s: {len(ack_ms)} by {args.users} users in {wall:.1f} s: p50 {pct(ack_ms, 50)} ms, "
                  f"p99 {pct(ack_ms, 99)} ms; the daemon processed {during} posts meanwhile")
            burst_ms, wall = acks(1 + args.users * args.acks, 0)
            print(f"ack, back to back: {len(burst_ms)} in {wall:.1f} s: p50 {pct(burst_ms, 50)} ms, p99 {pct(burst_ms, 99)} ms")
            con = sqlite3.connect(db)
            acked = con.execute("select count(*) from incidents where acked_at is not null").fetchone()[0]
            con.close()
            assert acked == len(ack_ms) + len(burst_ms), (acked, len(ack_ms), len(burst_ms))
            for c, _ in clients:
                c.close()
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            server.terminate()
            sock.close()
    print(json.dumps({"board_ms_p50": pct(board_ms, 50), "board_ms_p95": pct(board_ms, 95), "ack_ms_p50": pct(ack_ms, 50),
                      "ack_ms_p99": pct(ack_ms, 99), "ack_burst_ms_p99": pct(burst_ms, 99), "acks": len(ack_ms), "users": args.users,
                      "open_incidents": args.incidents, "posts_during": during}))


if __name__ == "__main__":
    main()
