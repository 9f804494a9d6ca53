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
