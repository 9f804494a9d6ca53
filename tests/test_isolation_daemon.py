"""The daemon as users run it, beside hostile inputs: servers that drip or never answer, a
database locked by another connection, a disk that fills up. Nothing may be silenced, lost
or sent twice."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from monitor.clock import SystemClock
from monitor.matching.matcher import Matcher, WatchRule

from .conftest import Route, rss, spawn, wait_for, write_config
from .hostile import DripServer, FullDisk, LockedDatabase, SilentServer, loopback


def rows(db: Path, query: str):
    engine = create_engine(f"sqlite:///{db}")
    try:
        with engine.connect() as c:
            return c.execute(text(query)).all()
    except Exception:
        return None
    finally:
        engine.dispose()


def source_block(name: str, url: str, interval: str) -> str:
    return f'\n[[source]]\nname = "{name}"\nurl = "{url}"\ninterval = "{interval}"\njitter = 0\n'


def fresh(title: str, ident: str) -> dict:
    return {"id": ident, "title": title, "body": "现场", "published": SystemClock().now() - timedelta(minutes=1)}


def said(receiver) -> list[str]:
    """Every alert the receiver got, title and body, as text."""
    with receiver.lock:
        return [f'{p["payload"].get("title", "")}\n{p["payload"].get("message", "")}' for p in receiver.posts]


def stop(proc: subprocess.Popen, within: float = 10.0) -> tuple[int, str]:
    """SIGTERM, and the exit must come within `within` seconds whatever the daemon is doing."""
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=within)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"the daemon did not stop within {within} s of SIGTERM")
    return code, proc.stderr.read().decode()


def test_a_canary_is_alerted_beside_dripping_and_silent_sources_and_sigterm_is_prompt(tmp_path, server, receiver):
    drips = [DripServer(loopback(10 + i), every=0.5) for i in range(10)]
    silents = [SilentServer(loopback(40 + i)) for i in range(10)]
    try:
        extra = '[http]\ntimeout = 3\ndeadline = 8\n'
        for i, s in enumerate(drips):
            extra += source_block(f"慢速{i}", s.url(), "3s")
        for i, s in enumerate(silents):
            extra += source_block(f"无响应{i}", s.url(), "3s")
        server.routes["/canary"] = Route(rss([{"id": "0", "title": "平常的一天", "published": SystemClock().now()}]))
        extra += source_block("哨兵", server.url("/canary"), "2s")  # last: polled after every hostile one
        cfg = write_config(tmp_path / "cfg", receiver_url=receiver.url("/hook"), extra=extra)
        proc = spawn(cfg)
        try:
            # Every hostile site has been met at least once: they are now known to be slow.
            wait_for(lambda: all(s.connections for s in drips + silents), timeout=60, what="first contact with every hostile site")
            server.routes["/canary"] = Route(rss([fresh("哨兵：开发区化工厂爆炸", "1")]))
            wait_for(lambda: any("哨兵：开发区化工厂爆炸" in t for t in said(receiver)), timeout=30,
                     what="the canary's alert while 20 hostile sources hold connections")
            server.routes["/canary"] = Route(rss([fresh("哨兵：开发区化工厂爆炸", "1"), fresh("哨兵：又一处仓库爆燃", "2")]))
            wait_for(lambda: rows(
                tmp_path / "cfg" / "monitor.db", "SELECT id FROM posts WHERE external_id = '2' AND processed_at IS NOT NULL"),
                timeout=30, what="the canary's second post processed")
            code, err = stop(proc)  # while polls of the hostile sites are still under way
        finally:
            proc.kill()
        assert code == 0 and "已停止" in err and "Traceback" not in err
        failures = rows(tmp_path / "cfg" / "monitor.db", "SELECT name, consecutive_failures FROM sources WHERE name = '哨兵'")
        assert failures == [("哨兵", 0)]
    finally:
        for s in drips + silents:
            s.close()


def test_ticks_do_not_wait_behind_matching_a_huge_post(tmp_path, make_config):
    """The pipeline matches before it takes the lock the tick needs."""
    cfg = make_config()
    from monitor.app import build
    from monitor.clock import FakeClock
    from .conftest import utc

    app = build(cfg, FakeClock(utc(2026, 11, 20, 2, 0)))
    started, done = threading.Event(), threading.Event()

    class Watched(Matcher):
        def match(self, title, body):
            started.set()
            return super().match(title, body)

    app.pipeline.matcher = Watched([WatchRule(name="爆炸", terms=("爆炸",), severity="重大")], max_chars=0)  # no cut: seconds of matching
    app.pipeline.matcher.segmenter.initialize()
    from monitor.sources import RawPost
    from monitor.store.posts import source_row, store_posts

    with app.sessions.begin() as s:
        src = source_row(s, "s", "http://127.0.0.1/x")
        store_posts(s, src.id, [RawPost("big", None, "长帖", "爆炸" * 400_000, None, None)], app.clock.now())
    worker = threading.Thread(target=lambda: (app.pipeline.process_pending(), done.set()))
    worker.start()
    assert started.wait(30)
    app.pipeline.tick()
    tick_finished_first = not done.is_set()
    worker.join(120)
    assert done.is_set() and tick_finished_first


def _db_fault_run(tmp_path, server, receiver, fault, extra=""):
    """Run the daemon, bring posts during a database fault, end it, and check the record."""
    server.routes["/f"] = Route(rss([fresh("开发区化工厂爆炸", "a")]))
    state = tmp_path / "cfg"
    cfg = write_config(state, receiver_url=receiver.url("/hook"), sources=[("官网", server.url("/f"))],
                       extra='[database]\nbusy_timeout = "0.5s"\nalert_after = "3s"\n' + extra)
    text_ = cfg.read_text().replace('interval = "1m"', 'interval = "1s"')
    cfg.write_text(text_)
    proc = spawn(cfg)
    db = state / "monitor.db"
    try:
        wait_for(lambda: len(receiver.titles()) >= 1, timeout=30, what="the first alert")
        with fault(db):
            # While the database refuses writes, a new post is served: it must not be lost.
            server.routes["/f"] = Route(rss([fresh("开发区化工厂爆炸", "a"), fresh("城东河道发黑发臭", "b")]))
            time.sleep(8)  # the fault lasts; nothing is asserted about this interval
        wait_for(lambda: rows(db, "SELECT count(*) FROM posts WHERE processed_at IS NOT NULL") == [(2,)], timeout=40,
                 what="both posts processed after the fault")
        wait_for(lambda: any("发黑发臭" in t for t in said(receiver)), timeout=30, what="the second alert")
        # The outage outlasted alert_after: ops hear of it once, now that it can be recorded.
        wait_for(lambda: any(t.startswith("【数据库异常】") for t in said(receiver)), timeout=30, what="the ops alert")
        code, err = stop(proc)
    finally:
        proc.kill()
    assert code == 0
    sent = said(receiver)
    assert len(sent) == len(set(sent)), sent  # nothing sent twice
    assert sum(t.startswith("【数据库异常】") for t in sent) == 1
    assert rows(db, "SELECT consecutive_failures, last_error FROM sources") == [(0, None)]  # not the source's fault
    assert rows(db, "SELECT count(*) FROM posts WHERE process_error IS NOT NULL") == [(0,)]
    assert err.count("数据库暂时无法使用") == 1 and err.count("数据库已恢复") == 1, err
    assert "Traceback" not in err
    return err


def test_a_locked_database_during_a_run_loses_nothing_and_sends_nothing_twice(tmp_path, server, receiver):
    err = _db_fault_run(tmp_path, server, receiver, LockedDatabase)
    assert "数据库被锁定" in err


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "cfg"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {made.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_a_full_disk_during_a_run_loses_nothing_and_sends_nothing_twice(tmp_path, small_disk, server, receiver):
    err = _db_fault_run(tmp_path, server, receiver, FullDisk)
    assert "磁盘已满" in err or "磁盘读写错误" in err
