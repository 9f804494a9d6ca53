"""The polling engine with a real poller, a real SQLite store and real slow HTTP servers."""

from datetime import timedelta

from monitor.clock import SystemClock
from monitor.config import HttpConfig, SourceConfig
from monitor.sources.engine import PollEngine
from monitor.sources.http import make_client
from monitor.sources.poll import Poller
from monitor.store import db
from monitor.store.faults import DbHealth

from .conftest import Route, rss, utc, wait_for


def test_the_slow_lane_grows_when_slow_sources_queue_up_and_stops_at_its_limit(tmp_path, server):
    """Twelve sources that answer after 0.4 s, on hosts that allow them all at once: two slow
    workers would take a dozen rounds; the lane adds hands while it is full, up to slow_max."""
    for i in range(12):
        server.routes[f"/slow{i}"] = Route(rss([{"id": f"s{i}", "title": "市民留言", "published": utc(2026, 12, 1)}]), delay=0.4)
    engine_db = db.make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    db.upgrade(engine_db)
    clock = SystemClock()
    http = HttpConfig(host_delay="0s", host_concurrency=20)
    poller = Poller(db.session_factory(engine_db), make_client(http, connections=64), http, clock)
    sources = [SourceConfig(name=f"slow{i}", url=server.url(f"/slow{i}"), interval=timedelta(milliseconds=200), jitter=0)
               for i in range(12)]
    poller.register(sources)
    polled: list[str] = []
    engine = PollEngine(poller, sources, workers=1, db=DbHealth(clock, timedelta(minutes=1)),
                        on_done=lambda r: polled.append(r.source), slow_after=0.2)
    assert (engine.slow_workers, engine.slow_max) == (2, 4)
    try:
        engine.dispatch()  # the first round: every poll runs past slow_after, so all become slow
        wait_for(lambda: len(engine.slow_sources()) == 12, timeout=30, what="every source known as slow")
        # each dispatch that finds the slow lane full adds a worker
        wait_for(lambda: engine.dispatch() >= 0 and engine.slow_workers == engine.slow_max, timeout=30,
                 what="the slow lane grown to its limit")
        wait_for(lambda: engine.dispatch() >= 0 and polled.count("slow11") >= 3, timeout=30, what="polls going on")
        assert engine.slow_workers == engine.slow_max == 4  # never past its limit
    finally:
        engine.stop(5)
        engine_db.dispose()
    assert set(polled) == {s.name for s in sources}


def _engine(tmp_path, server, sources, http, workers=2):
    engine_db = db.make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    db.upgrade(engine_db)
    clock = SystemClock()
    poller = Poller(db.session_factory(engine_db), make_client(http, connections=64), http, clock)
    poller.register(sources)
    polled: list[str] = []
    engine = PollEngine(poller, sources, workers=workers, db=DbHealth(clock, timedelta(minutes=1)),
                        on_done=lambda r: polled.append(r.source))
    return engine, engine_db, polled


def test_a_slow_host_gets_its_two_requests_at_once_and_never_a_third_or_a_start_inside_its_gap(tmp_path, server):
    """host_concurrency = 2, host_delay = 0.6 s, answers after 1.2 s: the second request starts
    once the gap has passed, while the first is still being answered (the dispatcher counted
    a poll under way as a gap still to come, and so held every such host to one at a time)."""
    for i in range(4):
        server.routes[f"/h{i}"] = Route(rss([{"id": f"h{i}", "title": "市民留言", "published": utc(2026, 12, 1)}]), delay=1.2)
    sources = [SourceConfig(name=f"h{i}", url=server.url(f"/h{i}"), interval=timedelta(hours=1), jitter=0) for i in range(4)]
    engine, engine_db, polled = _engine(tmp_path, server, sources, HttpConfig(host_delay="0.6s", host_concurrency=2), workers=4)
    try:
        engine.wake()
        wait_for(lambda: len(polled) == 4, timeout=20, what="all four polled")
    finally:
        engine.stop(5)
        engine_db.dispose()
    starts = sorted(r["at"] for r in server.requests)
    assert all(b - a >= 0.59 for a, b in zip(starts, starts[1:])), starts  # the gap between starts
    assert starts[1] - starts[0] < 1.2, starts  # two at once: the second began while the first was answered
    assert starts[2] - starts[0] >= 1.2 and starts[3] - starts[1] >= 1.2, starts  # never a third at once


def test_the_dispatcher_alone_polls_every_source_on_time_woken_by_finished_polls_and_the_next_due_source(tmp_path, server):
    """No poll_check here: one wake at the start, and the dispatcher thread carries on by
    itself, choosing again when a poll ends and when the next source falls due."""
    for i in range(3):
        server.routes[f"/d{i}"] = Route(rss([{"id": f"d{i}", "title": "市民留言", "published": utc(2026, 12, 1)}]))
    sources = [SourceConfig(name=f"d{i}", url=server.url(f"/d{i}"), interval=timedelta(milliseconds=400), jitter=0) for i in range(3)]
    engine, engine_db, polled = _engine(tmp_path, server, sources, HttpConfig(host_delay="0s", host_concurrency=4))
    try:
        engine.wake()
        wait_for(lambda: all(polled.count(s.name) >= 4 for s in sources), timeout=20, what="each source polled four times")
    finally:
        engine.stop(5)
        engine_db.dispose()
    for s in sources:
        starts = [r["at"] for r in server.requests if r["path"] == f"/{s.name}"]
        assert all(b - a >= 0.39 for a, b in zip(starts, starts[1:])), starts  # never before it is due
