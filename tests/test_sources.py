"""Polling real HTTP servers on 127.0.0.1: cache headers, limits, back-off, dedup."""

import random
from pathlib import Path
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
from sqlalchemy import func, select

from monitor.clock import FakeClock
from monitor.config import HttpConfig, SourceConfig
from monitor.sources.http import make_client
from monitor.sources.poll import Poller
from monitor.sources.schedule import next_poll
from monitor.store import db
from monitor.store.models import Post, Source

from .conftest import Route, rss, shared, utc


@pytest.fixture
def store(tmp_path):
    engine = db.make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    db.upgrade(engine)
    yield db.session_factory(engine)
    engine.dispose()


@pytest.fixture
def clock():
    return FakeClock(utc(2026, 11, 20, 0, 0))


def make_poller(store, clock, **http):
    cfg = HttpConfig(**{"host_delay": "0s", **http})
    client = make_client(cfg)
    return Poller(store, client, cfg, clock, random.Random(1))


def source(url, name="s", **kw):
    return SourceConfig(name=name, url=url, interval=timedelta(minutes=5), jitter=0, **kw)


def items(n, start=0):
    return [{"id": f"id-{i}", "title": f"帖文{i}", "body": "内容", "published": utc(2026, 11, 19, 12, 0)} for i in range(start, start + n)]


def count_posts(store):
    with store() as s:
        return s.scalar(select(func.count(Post.id)))


def source_row(store, name="s"):
    with store() as s:
        return s.scalars(select(Source).where(Source.name == name)).one()


def test_etag_304_parses_nothing_and_rereading_adds_nothing(server, store, clock):
    server.routes["/f"] = Route(rss(items(3)), etag='"v1"')
    poller = make_poller(store, clock)
    assert poller.poll(source(server.url("/f"))).new_posts == 3
    r = poller.poll(source(server.url("/f")))
    assert r.status == "not_modified"
    assert server.requests[-1]["headers"].get("If-None-Match") == '"v1"'
    assert count_posts(store) == 3


def test_last_modified_is_sent_back(server, store, clock):
    lm = "Wed, 18 Nov 2026 10:00:00 GMT"
    server.routes["/f"] = Route(rss(items(2)), last_modified=lm)
    poller = make_poller(store, clock)
    poller.poll(source(server.url("/f")))
    assert poller.poll(source(server.url("/f"))).status == "not_modified"
    assert server.requests[-1]["headers"].get("If-Modified-Since") == lm


def test_site_ignoring_conditional_get_is_not_parsed_again(server, store, clock, monkeypatch):
    server.routes["/f"] = Route(rss(items(2)))
    poller = make_poller(store, clock)
    poller.poll(source(server.url("/f")))
    import monitor.sources.poll as poll_mod

    def boom(*a, **k):
        raise AssertionError("parsed an unchanged body")

    monkeypatch.setattr(poll_mod, "read_feed", boom)
    assert poller.poll(source(server.url("/f"))).status == "unchanged"


def test_new_items_only_are_added(server, store, clock):
    server.routes["/f"] = Route(rss(items(3)))
    poller = make_poller(store, clock)
    poller.poll(source(server.url("/f")))
    server.routes["/f"] = Route(rss(items(3, start=2)))  # one old, two new
    assert poller.poll(source(server.url("/f"))).new_posts == 2
    assert count_posts(store) == 5


def test_gzip_and_redirects(server, store, clock):
    server.routes["/real"] = Route(rss(items(2)), gzip=True)
    server.routes["/moved"] = Route(redirect_to="/real")
    poller = make_poller(store, clock)
    assert poller.poll(source(server.url("/moved"))).new_posts == 2
    assert "gzip" in server.requests[-1]["headers"].get("Accept-Encoding", "")
    server.routes["/loop"] = Route(redirect_to="/loop")
    r = make_poller(store, clock, max_redirects=3).poll(source(server.url("/loop"), name="loop"))
    assert r.status == "failed" and "重定向" in r.error


def test_size_limit_and_timeout(server, store, clock):
    server.routes["/big"] = Route(rss(items(200)))
    r = make_poller(store, clock, max_body_bytes=2000).poll(source(server.url("/big"), name="big"))
    assert r.status == "failed" and "过大" in r.error
    server.routes["/slow"] = Route(rss(items(1)), delay=1.0)
    r = make_poller(store, clock, timeout=0.2).poll(source(server.url("/slow"), name="slow"))
    assert r.status == "failed" and "超时" in r.error
    assert count_posts(store) == 0


def test_failing_source_backs_off_stores_error_and_does_not_stop_others(server, store, clock):
    server.routes["/ok"] = Route(rss(items(2)))
    server.routes["/broken"] = Route(b"<html>oops</html> <<<", headers={"Content-Type": "text/html"})
    poller = make_poller(store, clock)
    good, bad = source(server.url("/ok"), name="good"), source(server.url("/broken"), name="bad")
    delays = []
    for _ in range(4):
        assert poller.poll(bad).status == "failed"
        row = source_row(store, "bad")
        delays.append(row.next_poll_at - clock.now())
        clock.advance(timedelta(minutes=1))
    assert delays == [timedelta(minutes=10), timedelta(minutes=20), timedelta(minutes=40), timedelta(minutes=80)]
    assert row.consecutive_failures == 4 and "订阅源" in row.last_error
    assert poller.poll(good).new_posts == 2
    server.routes["/broken"] = Route(rss(items(1, start=50)))
    assert poller.poll(bad).new_posts == 1
    row = source_row(store, "bad")
    assert row.consecutive_failures == 0 and row.next_poll_at - clock.now() == timedelta(minutes=5)


def test_server_error_honours_retry_after(server, store, clock):
    server.routes["/busy"] = Route(b"busy", status=503, headers={"Retry-After": "7200"})
    poller = make_poller(store, clock)
    r = poller.poll(source(server.url("/busy")))
    # 503 with Retry-After is the server's throttling, not a failure; the pause is capped
    # by [http] max_retry_after (1 h by default).
    assert r.status == "throttled" and "503" in r.error
    assert source_row(store).next_poll_at - clock.now() == timedelta(hours=1)
    assert source_row(store).consecutive_failures == 0


def test_cache_lifetimes_are_lower_bounds_on_the_interval_and_capped(server, store, clock):
    """Cache-Control max-age, Expires (against the server's Date) and RSS <ttl> hold the next
    poll off at least that long; never longer than [http] max_cache_wait; no-cache says nothing."""
    poller = make_poller(store, clock)
    ttl_feed = rss(items(1)).replace(b"<title>", b"<ttl>30</ttl><title>", 1)
    cases = {
        "/age": (Route(rss(items(1)), headers={"Cache-Control": "public, max-age=1200"}), timedelta(minutes=20)),
        "/short": (Route(rss(items(1)), headers={"Cache-Control": "max-age=60"}), timedelta(minutes=5)),  # the interval wins
        # against the server's own Date (real time, while our clock says November): 15 min, to the second
        "/expires": (Route(rss(items(1)), headers={"Expires": format_datetime(datetime.now(timezone.utc) + timedelta(minutes=15), usegmt=True)}),
                     timedelta(minutes=15)),
        "/ttl": (Route(ttl_feed), timedelta(minutes=30)),
        "/year": (Route(rss(items(1)), headers={"Cache-Control": "max-age=31536000"}), timedelta(hours=1)),
        "/nocache": (Route(rss(items(1)), headers={"Cache-Control": "no-cache, max-age=9000"}), timedelta(minutes=5)),
        "/junk": (Route(rss(items(1)), headers={"Expires": "0", "Cache-Control": "max-age=soon"}), timedelta(minutes=5)),
    }
    for path, (route, _) in cases.items():
        server.routes[path] = route
    for path, (_, wait) in cases.items():
        assert poller.poll(source(server.url(path), name=path)).status == "new"
        waited = source_row(store, path).next_poll_at - clock.now()
        assert wait - timedelta(seconds=2) <= waited <= wait if path == "/expires" else waited == wait, (path, waited)


def test_a_304_keeps_the_new_validators_and_its_freshness(server, store, clock):
    server.routes["/f"] = Route(rss(items(2)), etag='"v1"',
                                not_modified_headers={"ETag": '"v2"', "Cache-Control": "max-age=900"})
    poller = make_poller(store, clock)
    poller.poll(source(server.url("/f")))
    assert poller.poll(source(server.url("/f"))).status == "not_modified"
    row = source_row(store)
    assert row.etag == '"v2"' and row.next_poll_at - clock.now() == timedelta(minutes=15)


def test_down_host_is_a_clear_error(store, clock):
    r = make_poller(store, clock).poll(source("http://127.0.0.1:9/feed"))
    assert r.status == "failed" and "连接失败" in r.error


def test_backoff_is_capped_and_jittered():
    rng = random.Random(3)
    now = utc(2026, 1, 1)
    at = next_poll(now, timedelta(minutes=10), 0.1, 30, timedelta(hours=6), rng)
    assert timedelta(hours=5, minutes=24) <= at - now <= timedelta(hours=6, minutes=36)
    spread = {next_poll(now, timedelta(minutes=10), 0.1, 0, timedelta(hours=6), rng) for _ in range(20)}
    assert len(spread) > 1 and all(timedelta(minutes=9) <= t - now <= timedelta(minutes=11) for t in spread)


def test_real_weibo_snapshots_overlap_dedup_by_guid(server, store, clock):
    """Five consecutive real versions of one feed: the union of their guids is what is stored."""
    import glob

    from monitor.sources.feed import parse_feed

    folder = shared("feeds/weibo_rss_snapshots")
    files = sorted(glob.glob(str(folder / "weibo_rss_20250915T*.xml")))
    assert len(files) == 5
    poller = make_poller(store, clock)
    expected = set()
    for f in files:
        body = Path(f).read_bytes()
        expected |= {p.external_id for p in parse_feed(body)}
        server.routes["/weibo"] = Route(body)
        poller.poll(source(server.url("/weibo")))
        clock.advance(timedelta(minutes=10))
    assert count_posts(store) == len(expected)


def test_gb2312_feed_over_http(server, store, clock):
    from .conftest import FIXTURES

    server.routes["/gb"] = Route((FIXTURES / "gb2312_no_encoding_decl.xml").read_bytes(), headers={"Content-Type": "application/xml"})
    make_poller(store, clock).poll(source(server.url("/gb")))
    with store() as s:
        assert s.scalars(select(Post.title)).one() == "不归移民漫画系列：专业工作"
