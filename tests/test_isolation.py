"""No single input can silence or mislead the monitor: hostile servers on loopback, hostile
posts, a real SQLite file locked by another connection."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from monitor.alerts.log import Alert, fire
from monitor.alerts.outbox import Delivery
from monitor.app import build
from monitor.clock import FakeClock
from monitor.config import HttpConfig, SourceConfig, load
from monitor.incidents.escalation import Policy, due_steps, IncidentState, ClockState
from monitor.matching.matcher import Matcher
from monitor.sources.http import make_client, retry_after
from monitor.sources.poll import Poller
from monitor.store.faults import DbHealth, describe, is_transient
from monitor.store.models import ResponseClock as ClockRow
from monitor.store.models import Incident, Match, Notification, Outbox, Post, Source

from .conftest import Route, rss, shared, utc, write_config
from .hostile import DripServer, SilentServer

NOW = utc(2026, 11, 20, 2, 0)  # 10:00 Beijing time


@pytest.fixture
def world(tmp_path, receiver):
    def make(extra: str = "", sources=()):
        path = write_config(tmp_path / "cfg", receiver_url=receiver.url("/hook"), extra=extra, sources=sources)
        cfg = load(path)
        return cfg, build(cfg, FakeClock(NOW))

    return make


def poller(app, **http) -> Poller:
    cfg = HttpConfig(**{"host_delay": "0s", **http})
    return Poller(app.sessions, make_client(cfg), cfg, app.clock)


def feed(url: str, name: str = "s", **kw) -> SourceConfig:
    return SourceConfig(name=name, url=url, interval=timedelta(minutes=5), jitter=0, **kw)


def source_row(app, name="s") -> Source:
    with app.sessions() as s:
        return s.scalars(select(Source).where(Source.name == name)).one()


def count(app, model, *where) -> int:
    with app.sessions() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


# ---- slow and silent servers -------------------------------------------------------------


def test_a_dripping_body_is_ended_by_the_total_deadline_not_the_read_timeout(world):
    drip = DripServer(every=0.2)
    try:
        cfg, app = world()
        r = poller(app, timeout=5, deadline=1.0).poll(feed(drip.url()))
        # Every read got a byte within 0.2 s, so only the deadline can have ended it.
        assert r.status == "failed" and "总时限 1 秒" in r.error, r.error
        assert source_row(app).consecutive_failures == 1 and count(app, Post) == 0
    finally:
        drip.close()


def test_a_server_that_never_answers_times_out_as_a_sentence(world):
    silent = SilentServer()
    try:
        cfg, app = world()
        r = poller(app, timeout=0.5).poll(feed(silent.url()))
        assert r.status == "failed" and r.error.startswith("请求超时"), r.error
    finally:
        silent.close()


# ---- Retry-After and throttling ----------------------------------------------------------


def test_retry_after_parses_any_value_safely_and_is_capped():
    cap = timedelta(hours=1)
    assert retry_after("120", NOW, cap) == timedelta(minutes=2)
    assert retry_after("9999999999", NOW, cap) == cap  # 317 years asked, one hour given
    assert retry_after("9" * 5000, NOW, cap) == cap  # no OverflowError
    assert retry_after("Fri, 31 Dec 9999 23:59:59 GMT", NOW, cap) == cap
    assert retry_after("Thu, 20 Nov 2026 02:00:30 GMT", NOW, cap) == timedelta(seconds=30)
    assert retry_after("Mon, 01 Jan 2001 00:00:00 GMT", NOW, cap) == timedelta(0)  # in the past
    for garbage in ("soon", "-5", "1e9", "", "Fri, 99 Foo 2026", "\x00"):
        assert retry_after(garbage, NOW, cap) is None, garbage


def test_429_pauses_only_that_source_for_at_most_the_cap_and_fails_nothing(world, server):
    server.routes["/busy"] = Route(b"slow down", status=429, headers={"Retry-After": "9999999999"})
    server.routes["/huge"] = Route(b"slow down", status=429, headers={"Retry-After": "9" * 400})
    server.routes["/other"] = Route(rss([{"id": "1", "title": "正常帖文"}]))
    cfg, app = world()
    p = poller(app, max_retry_after="30m")
    assert p.poll(feed(server.url("/busy"), "busy")).status == "throttled"
    busy = source_row(app, "busy")
    assert busy.consecutive_failures == 0 and "请求过于频繁（HTTP 429）" in busy.last_error
    assert busy.next_poll_at == NOW + timedelta(minutes=30)
    # The host is paced: its other sources wait, and that is not their failure either.
    other = p.poll(feed(server.url("/other"), "other"))
    assert other.status == "throttled" and source_row(app, "other").consecutive_failures == 0
    assert source_row(app, "other").last_error is None  # our own throttling: nothing to tell
    # A garbage-long value neither raises nor parks anything beyond the cap.
    p2 = poller(app, max_retry_after="30m")
    assert p2.poll(feed(server.url("/huge"), "huge")).status == "throttled"
    assert source_row(app, "huge").next_poll_at == NOW + timedelta(minutes=30)


# ---- bodies and errors -------------------------------------------------------------------


@pytest.mark.parametrize("body,expected", [
    (b"", "响应内容为空"),
    (b"  \n\t ", "响应内容为空"),
    (b"<!DOCTYPE html><html><body>404</body></html>", "不是 RSS/Atom 订阅源"),
    (b'{"error": "not a feed"}', "订阅源格式错误：第"),
])
def test_empty_and_non_feed_bodies_are_clear_errors_on_their_source(world, server, body, expected):
    server.routes["/f"] = Route(body)
    cfg, app = world()
    r = poller(app).poll(feed(server.url("/f")))
    assert r.status == "failed" and r.error.startswith(expected), r.error
    assert "Traceback" not in r.error and "AttributeError" not in r.error


def test_http_errors_read_in_chinese_first(world, server):
    cfg, app = world()
    r = poller(app).poll(feed(server.url("/missing")))
    assert r.error == "页面不存在（HTTP 404）"
    server.routes["/down"] = Route(b"x", status=502)
    assert poller(app).poll(feed(server.url("/down"), "down")).error == "网关错误（HTTP 502）"


def test_sources_test_prints_a_sentence_not_a_traceback(tmp_path, server):
    server.routes["/empty"] = Route(b"   ")
    cfg = write_config(tmp_path / "cfg", sources=[("空订阅源", server.url("/empty"))])
    run = subprocess.run([sys.executable, "-m", "monitor", "sources", "test", "空订阅源", "--config", str(cfg)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert "抓取失败：响应内容为空" in run.stderr and "Traceback" not in run.stderr


def test_items_sharing_a_guid_are_distinct_posts_and_a_repoll_adds_nothing(world, server):
    server.routes["/sz"] = Route(shared("feeds/sz_gov_policy_rss.xml").read_bytes())
    cfg, app = world()
    p = poller(app)
    assert p.poll(feed(server.url("/sz"))).new_posts == 166  # ten notices share one guid and link
    server.routes["/sz"] = Route(shared("feeds/sz_gov_policy_rss.xml").read_bytes() + b"\n")  # new bytes, same items
    assert p.poll(feed(server.url("/sz"))).new_posts == 0
    assert count(app, Post, Post.external_id.like("https://www.inanshan.org.cn/ztfw/zcfw/zchj#%")) == 10


def test_a_guid_alone_then_shared_keeps_the_first_post_once(world, server):
    one = {"id": "g", "title": "关于开发区化工厂爆炸的通报", "published": NOW - timedelta(hours=1)}
    two = {"id": "g", "title": "关于开发区化工厂爆炸的续报", "published": NOW - timedelta(minutes=30)}
    server.routes["/f"] = Route(rss([one]))
    cfg, app = world()
    p = poller(app)
    assert p.poll(feed(server.url("/f"))).new_posts == 1
    server.routes["/f"] = Route(rss([two, one]))
    assert p.poll(feed(server.url("/f"))).new_posts == 1  # the 续报 only; the 通报 is known by its content
    assert p.poll(feed(server.url("/f"))).new_posts == 0


# ---- sane times --------------------------------------------------------------------------


def test_old_1970_and_future_dates_never_cause_an_overdue_escalation(world, server):
    items = [
        {"id": "fresh", "title": "开发区化工厂发生爆炸", "published": NOW - timedelta(minutes=10)},
        {"id": "old", "title": "半个月前的爆炸旧闻", "published": NOW - timedelta(days=15)},
        {"id": "epoch", "title": "日期为 1970 年的爆炸帖", "published": utc(1970, 1, 1)},
        {"id": "future", "title": "日期在 2099 年的爆炸帖", "published": utc(2099, 1, 1)},
    ]
    server.routes["/f"] = Route(rss(items))
    cfg, app = world()
    poller(app).poll(feed(server.url("/f")))
    app.pipeline.process_pending()
    app.pipeline.tick()
    with app.sessions() as s:
        notes = dict(s.execute(select(Post.external_id, Post.time_note)).all())
        incidents = s.scalars(select(Incident)).all()
        kinds = [n.kind for n in s.scalars(select(Notification))]
    assert notes["fresh"] is None and notes["old"] is None
    assert "早于 2000 年" in notes["epoch"] and "按抓取时间" in notes["epoch"]
    assert "晚于抓取时间" in notes["future"]
    # One incident, counted from the fresh post (the unknown dates count from the fetch);
    # the 15-day-old post is stored and matched but joins nothing and moves no clock.
    assert len(incidents) == 1 and incidents[0].started_at == NOW - timedelta(minutes=10)
    assert incidents[0].post_count == 3
    assert kinds == ["opened"]
    assert count(app, Match) == 4


def test_a_clock_decades_behind_writes_one_row_per_tier_per_tick(world):
    cfg, app = world()
    with app.sessions.begin() as s:
        inc = Incident(rule="危化品爆炸", title="旧库里 1970 年的事件", severity="重大", category="", department="", state="open",
                       started_at=utc(1970, 1, 1), opened_at=NOW, last_post_at=utc(1970, 1, 1),
                       terms=["爆炸"], post_count=1, next_step_at=NOW)
        s.add(inc)
        s.flush()
        s.add(ClockRow(incident_id=inc.id, name="发布权威信息", started_at=utc(1970, 1, 1), due_at=utc(1970, 1, 1, 5)))
    for _ in range(3):
        app.pipeline.tick()
    tiers = len(cfg.main.tier)
    reminders = len(cfg.main.escalation.reminders)
    assert count(app, Notification) <= tiers + reminders
    # and the pure rule, for any policy
    policy = Policy(("50%", "1h"), timedelta(hours=2), tiers=3)
    clock = ClockState("c", utc(1970, 1, 1), utc(1970, 1, 1, 5))
    assert len(due_steps(IncidentState(1), [clock], policy, NOW)) <= 2 + 3


# ---- hostile posts -----------------------------------------------------------------------


def test_a_huge_post_is_matched_up_to_the_limit_and_says_so(world, server):
    server.routes["/f"] = Route(rss([{"id": "big", "title": "长帖", "body": "爆炸" * 500_000, "published": NOW}]), )
    cfg, app = world(extra="[matching]\nmax_chars = 20000\n")
    poller(app, max_body_bytes=50_000_000).poll(feed(server.url("/f")))
    app.pipeline.process_pending()
    with app.sessions() as s:
        match = s.scalars(select(Match)).one()
    assert "正文过长（1000000 字），只匹配了前 20000 字" in match.explanation["checks"]
    assert match.explanation["hits_total"] == 10_000 and len(match.explanation["hits"]) == 100


class _Buggy(Matcher):
    """A matcher with a bug that only one post triggers: stands for any parser or rule defect."""

    def match(self, title, body):
        if "触发缺陷" in title:
            raise ValueError("缺陷重现")
        return super().match(title, body)


def test_a_post_that_keeps_failing_is_set_aside_and_the_rest_go_on(world, server, tmp_path):
    server.routes["/f"] = Route(rss([
        {"id": "bad", "title": "触发缺陷的帖文", "published": NOW},
        {"id": "good", "title": "开发区化工厂爆炸", "published": NOW},
    ]))
    cfg, app = world()
    app.pipeline.matcher = _Buggy(app.pipeline.matcher.rules)
    poller(app).poll(feed(server.url("/f")))
    for attempt in (1, 2):
        app.pipeline.process_pending()
        with app.sessions() as s:
            bad = s.scalars(select(Post).where(Post.external_id == "bad")).one()
        assert bad.processed_at is None and bad.process_attempts == attempt
    assert count(app, Incident) == 1  # the good post did not wait for the bad one
    app.pipeline.process_pending()
    with app.sessions() as s:
        bad = s.scalars(select(Post).where(Post.external_id == "bad")).one()
    assert bad.processed_at is not None and bad.process_error == "ValueError: 缺陷重现"
    # the admin sees it, and can put it back
    listed = subprocess.run([sys.executable, "-m", "monitor", "posts", "failed", "--config", str(cfg.path)],
                            capture_output=True, text=True, timeout=60)
    assert f"#{bad.id}" in listed.stdout and "缺陷重现" in listed.stdout and "失败 3 次" in listed.stdout
    retry = subprocess.run([sys.executable, "-m", "monitor", "posts", "retry", str(bad.id), "--config", str(cfg.path)],
                           capture_output=True, text=True, timeout=60)
    assert retry.returncode == 0 and "已放回待处理" in retry.stdout
    assert count(app, Post, Post.processed_at.is_(None)) == 1


# ---- a locked database -------------------------------------------------------------------


class Locker:
    """Another connection holding SQLite's write lock, as a backup tool or a stuck CLI would."""

    def __init__(self, path):
        self.conn = sqlite3.connect(path, timeout=0, isolation_level=None, check_same_thread=False)

    def __enter__(self):
        self.conn.execute("BEGIN EXCLUSIVE")
        return self

    def __exit__(self, *exc):
        self.conn.execute("ROLLBACK")
        self.conn.close()


def db_path(cfg) -> str:
    return cfg.database_url().removeprefix("sqlite:///")


def test_a_locked_database_loses_no_post_and_blames_no_source(world, server):
    server.routes["/f"] = Route(rss([{"id": "1", "title": "开发区化工厂爆炸", "published": NOW}]))
    cfg, app = world(extra='[database]\nbusy_timeout = "0.3s"\n')
    p = poller(app)
    src = feed(server.url("/f"))
    p.poll(src)  # stored before the lock
    with Locker(db_path(cfg)):
        with pytest.raises(Exception) as e:
            app.pipeline.process_pending()
        assert is_transient(e.value) and describe(e.value).startswith("数据库被锁定")
        app.clock.advance(timedelta(minutes=5))
        with pytest.raises(Exception) as e:
            p.poll(src)  # the source is not blamed: the error is the database's
        assert is_transient(e.value)
    assert source_row(app).consecutive_failures == 0 and source_row(app).last_error is None
    with app.sessions() as s:
        post = s.scalars(select(Post)).one()
    assert post.processed_at is None and post.process_attempts == 0  # never an attempt of the post's
    assert app.pipeline.process_pending() == 1 and count(app, Incident) == 1


def test_a_send_whose_record_meets_a_lock_is_recorded_later_and_never_sent_twice(world, receiver):
    cfg, app = world(extra='[database]\nbusy_timeout = "0.3s"\n')
    with app.sessions.begin() as s:
        fire(s, Alert("k1", None, None, "handoff", 0, ("duty",), NOW, "【测试】一条告警", "正文"), NOW, app.channels)
    locker = Locker(db_path(cfg))
    receiver.on_post = lambda payload: locker.__enter__()  # the lock arrives while the alert is on the wire
    delivery = Delivery(app.sessions, app.channels, app.clock, cfg.main.alerts)
    with pytest.raises(Exception) as e:
        delivery.deliver_due()
    assert is_transient(e.value) and len(delivery.unrecorded) == 1
    receiver.on_post = None
    app.clock.advance(timedelta(minutes=10))  # past the 5-minute lease on 'sending'
    with pytest.raises(Exception):
        delivery.deliver_due()  # still locked: records first, sends nothing
    locker.__exit__()
    assert delivery.deliver_due() == 0 and delivery.unrecorded == []
    with app.sessions() as s:
        assert s.scalars(select(Outbox.state)).all() == ["sent"]
    assert len(receiver.posts) == 1


def test_database_outage_is_one_line_down_one_line_up_and_one_alert(caplog):
    clock = FakeClock(NOW)
    health = DbHealth(clock, alert_after=timedelta(minutes=1))
    err = __import__("sqlalchemy").exc.OperationalError("UPDATE", {}, sqlite3.OperationalError("database or disk is full"))
    with caplog.at_level("DEBUG"):
        for _ in range(50):
            health.failed(err, "处理帖文")
            clock.advance(timedelta(seconds=2))
        health.ok()
        health.ok()
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "磁盘已满" in errors[0].getMessage() and not errors[0].exc_info
    assert sum("数据库已恢复" in r.getMessage() for r in caplog.records) == 1
    outages = health.take_pending()
    assert len(outages) == 1 and outages[0].until - outages[0].since == timedelta(seconds=100)
    assert health.take_pending() == []
