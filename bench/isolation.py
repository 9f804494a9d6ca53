"""Isolation benchmark: what one hostile input costs everybody else, end to end.

Figures (one run; the machine is shared, so compare within it):
  process_10kb_s / _100kb_s / _1mb_s   one post of repeated watchwords through the pipeline
                                       (store → match → incident), default [matching] max_chars
  uncut_1mb_s                          the same 1 MB post with max_chars = 0 (no cut): linearity
  tick_max_ms                          the slowest escalation tick while that 1 MB post is processed
  canary_delay_max_s                   a canary's new post → its alert at a local receiver, in a real
                                       `monitor run`, beside 20 slow-drip and 20 never-answering sources
                                       (default [http] settings); three posts, the worst one
  canary_interval_s                    the canary's poll interval (target: delay ≤ interval + 10 s)
  sigterm_s                            SIGTERM → exit while hostile polls are under way (target < 10 s)
  locked_lost / locked_dup             posts lost and alerts sent twice around a 60 s SQLite lock
  full_lost / full_dup                 the same around a 60 s full disk (tmpfs; skipped without root)

Usage: python bench/isolation.py [--fault-seconds 60] [--skip-faults]
The last line printed is a JSON object of the figures.
"""

from __future__ import annotations

import argparse
import json
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from monitor.app import build  # noqa: E402
from monitor.clock import FakeClock, SystemClock  # noqa: E402
from monitor.config import load  # noqa: E402
from monitor.sources import RawPost  # noqa: E402
from monitor.store.posts import source_row, store_posts  # noqa: E402
from tests.conftest import Route, Server, rss, utc, write_config  # noqa: E402
from tests.hostile import DripServer, FullDisk, LockedDatabase, SilentServer, loopback  # noqa: E402

CANARY_INTERVAL = 10
WORD = "爆炸"  # a watchword of the test rules; 6 bytes in UTF-8


def process_time(tmp: Path, size_bytes: int, max_chars: int | None = None) -> float:
    extra = f"[matching]\nmax_chars = {max_chars}\n" if max_chars is not None else ""
    cfg = load(write_config(tmp / f"p{size_bytes}-{max_chars}", extra=extra))
    app = build(cfg, FakeClock(utc(2026, 11, 20, 2, 0)))
    app.pipeline.matcher.segmenter.initialize()
    body = WORD * (size_bytes // len(WORD.encode()))  # the densest case: nothing but occurrences
    with app.sessions.begin() as s:
        src = source_row(s, "s", "http://127.0.0.1/x")
        store_posts(s, src.id, [RawPost("big", None, "长帖", body, None, None)], app.clock.now())
    started = time.perf_counter()
    app.pipeline.process_pending()
    took = time.perf_counter() - started
    app.engine.dispose()
    return took


def tick_during(tmp: Path) -> float:
    """The slowest tick while an uncut 1 MB post is being processed in another thread."""
    cfg = load(write_config(tmp / "tick", extra="[matching]\nmax_chars = 0\n"))
    app = build(cfg, FakeClock(utc(2026, 11, 20, 2, 0)))
    app.pipeline.matcher.segmenter.initialize()
    with app.sessions.begin() as s:
        src = source_row(s, "s", "http://127.0.0.1/x")
        store_posts(s, src.id, [RawPost("big", None, "长帖", WORD * (1_000_000 // len(WORD.encode())), None, None)], app.clock.now())
    worker = threading.Thread(target=app.pipeline.process_pending)
    worker.start()
    worst = 0.0
    while worker.is_alive():
        started = time.perf_counter()
        app.pipeline.tick()
        worst = max(worst, time.perf_counter() - started)
        time.sleep(0.05)
    return worst * 1000


def spawn(cfg: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "monitor", "run", "--config", str(cfg)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=REPO)


def said(receiver: Server) -> list[str]:
    with receiver.lock:
        return [f'{p["payload"].get("title", "")}\n{p["payload"].get("message", "")}' for p in receiver.posts]


def wait(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def item(ident: str, title: str) -> dict:
    return {"id": ident, "title": title, "body": "现场", "published": SystemClock().now()}


def block(name: str, url: str, interval: str) -> str:
    return f'\n[[source]]\nname = "{name}"\nurl = "{url}"\ninterval = "{interval}"\njitter = 0\n'


def canary(tmp: Path) -> dict:
    drips = [DripServer(loopback(10 + i), every=1.0) for i in range(20)]
    silents = [SilentServer(loopback(60 + i)) for i in range(20)]
    server, receiver = Server(), Server()
    try:
        extra = "".join(block(f"慢速{i}", s.url(), "1m") for i, s in enumerate(drips))
        extra += "".join(block(f"无响应{i}", s.url(), "1m") for i, s in enumerate(silents))
        server.routes["/canary"] = Route(rss([item("0", "平常的一天")]))
        extra += block("哨兵", server.url("/canary"), f"{CANARY_INTERVAL}s")
        cfg = write_config(tmp / "canary", receiver_url=receiver.url("/hook"), extra=extra)
        proc = spawn(cfg)
        warm = time.monotonic()
        wait(lambda: all(s.connections for s in drips + silents), 300)
        print(f"first contact with all 40 hostile sites after {time.monotonic() - warm:.1f} s", file=sys.stderr)
        delays, posted = [], []
        for n in range(1, 4):
            posted.append(item(str(n), f"哨兵第{n}条：开发区化工厂爆炸"))
            server.routes["/canary"] = Route(rss(posted))
            appeared = time.monotonic()
            # The first canary post opens the incident (新舆情事件); later ones join it, so the
            # third is observed as processed: the database says so.
            if n == 1:
                ok = wait(lambda: any("哨兵第1条" in t for t in said(receiver)), 120)
            else:
                db = tmp / "canary" / "monitor.db"
                ok = wait(lambda: _processed(db, str(n)), 120)
            delays.append(time.monotonic() - appeared if ok else float("inf"))
            print(f"canary post {n}: {delays[-1]:.1f} s", file=sys.stderr)
            time.sleep(CANARY_INTERVAL * 1.5)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        return {"canary_delay_max_s": round(max(delays), 2), "canary_interval_s": CANARY_INTERVAL,
                "sigterm_s": round(time.monotonic() - started, 2)}
    finally:
        for s in drips + silents:
            s.close()
        server.close()
        receiver.close()


def _processed(db: Path, external_id: str) -> bool:
    try:
        with sqlite3.connect(db, timeout=1) as c:
            return c.execute("SELECT 1 FROM posts WHERE external_id = ? AND processed_at IS NOT NULL", (external_id,)).fetchone() is not None
    except sqlite3.Error:
        return False


def fault_run(tmp: Path, name: str, fault_seconds: float, fault) -> tuple[int, int]:
    """Posts served during a database fault; returns (posts lost, alerts sent twice)."""
    server, receiver = Server(), Server()
    state = tmp / name
    try:
        state.mkdir(parents=True, exist_ok=True)
        server.routes["/f"] = Route(rss([item("0", "开发区化工厂爆炸")]))
        cfg = write_config(state, receiver_url=receiver.url("/hook"), extra=block("官网", server.url("/f"), "2s"))
        proc = spawn(cfg)
        db = state / "monitor.db"
        wait(lambda: said(receiver), 60)
        served = [item("0", "开发区化工厂爆炸")]
        with fault(db):
            for n in range(1, 6):  # five posts appear during the fault
                served.append(item(str(n), f"第{n}条：城东河道发黑发臭"))
                server.routes["/f"] = Route(rss(served))
                time.sleep(fault_seconds / 5)
        wait(lambda: all(_processed(db, p["id"]) for p in served), 120)
        time.sleep(5)  # deliveries after recovery
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        lost = sum(not _processed(db, p["id"]) for p in served)
        sent = said(receiver)
        return lost, len(sent) - len(set(sent))
    finally:
        server.close()
        receiver.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fault-seconds", type=float, default=60)
    ap.add_argument("--skip-faults", action="store_true")
    args = ap.parse_args()
    figures: dict = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for label, size in (("10kb", 10_000), ("100kb", 100_000), ("1mb", 1_000_000)):
            figures[f"process_{label}_s"] = round(process_time(tmp, size), 3)
        figures["uncut_1mb_s"] = round(process_time(tmp, 1_000_000, max_chars=0), 3)
        figures["tick_max_ms"] = round(tick_during(tmp), 1)
        print(json.dumps(figures, ensure_ascii=False), file=sys.stderr)
        figures.update(canary(tmp))
        if not args.skip_faults:
            figures["locked_lost"], figures["locked_dup"] = fault_run(tmp, "locked", args.fault_seconds, LockedDatabase)
            mount = tmp / "full"
            mount.mkdir()
            if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)], capture_output=True).returncode == 0:
                try:
                    figures["full_lost"], figures["full_dup"] = fault_run(mount, "state", args.fault_seconds, FullDisk)
                finally:
                    subprocess.run(["umount", "-l", str(mount)], capture_output=True)
            else:
                print("full disk: cannot mount a tmpfs here (needs root); skipped", file=sys.stderr)
    print(json.dumps(figures, ensure_ascii=False))


if __name__ == "__main__":
    main()
