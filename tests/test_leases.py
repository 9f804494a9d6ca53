"""Sources leased to one instance at a time: on one store two pollers never take the same due
source, a lease ends with the poll's outcome or runs out, and three real daemons on one
PostgreSQL, one of them SIGKILLed, poll every source once per interval and send every alert once."""

import random
import signal
import time
from collections import defaultdict
from datetime import timedelta

from sqlalchemy import select

from monitor.clock import FakeClock, SystemClock
from monitor.config import HttpConfig, SourceConfig
from monitor.sources.http import make_client
from monitor.sources.poll import Poller
from monitor.store import db
from monitor.store.models import Source

from .conftest import Route, rss, spawn, utc, wait_for, write_config


def pollers(url, clock, n=2):
    engine = db.make_engine(url)
    db.upgrade(engine)
    sessions = db.session_factory(engine)
    http = HttpConfig(host_delay="0s")
    client = make_client(http)
    return engine, sessions, [Poller(sessions, client, http, clock, random.Random(i), lease=timedelta(minutes=2)) for i in range(n)]


def test_two_pollers_never_take_the_same_due_source_and_leases_end_or_run_out(store_url, server):
    clock = FakeClock(utc(2026, 11, 20, 8))
    server.routes["/f"] = Route(rss([{"id": "1", "title": "留言", "published": clock.now()}]))
    engine, sessions, (a, b) = pollers(store_url, clock)
    sources = [SourceConfig(name=f"s{i}", url=server.url("/f"), interval=timedelta(minutes=5), jitter=0) for i in range(6)]
    a.register(sources)
    first = a.due(sources, limit=4)
    second = b.due(sources)
    assert len(first) == 4 and len(second) == 2 and not {s.name for s in first} & {s.name for s in second}
    assert {s.name for s in a.due(sources)} == {s.name for s in first}  # its own again: a retry after a fault
    assert b.due(sources, exclude={s.name for s in second}) == []
    for s in first[:2]:
        a.poll(s)  # the outcome recorded: lease over, next poll in 5 minutes
    with sessions() as session:
        polled = session.scalars(select(Source).where(Source.name.in_([s.name for s in first[:2]]))).all()
        assert all(r.lease_owner is None and r.next_poll_at == clock.now() + timedelta(minutes=5) for r in polled)
    # a killed instance: a's other two leases run out and pass to b
    clock.advance(timedelta(minutes=2, seconds=1))
    taken = {s.name for s in b.due(sources, exclude={s.name for s in second})}
    assert taken == {s.name for s in first[2:]}
    assert b.release_leases() == 4 and a.due(sources, exclude=set()) != []
    engine.dispose()


def test_three_daemons_on_postgresql_one_killed_poll_each_source_once_per_interval(pg_url, tmp_path, server, receiver):
    """Started together on a fresh database (they migrate in turn), three instances share 8
    sources polled every 2 s; one is SIGKILLed mid-run. Every source goes on being polled by the
    others, never twice within one interval, and each incident's alert arrives once."""
    names = [f"f{i}" for i in range(8)]
    published = SystemClock().now() - timedelta(minutes=10)  # the daemons run on the real clock: a fixed date ages out
    for i, name in enumerate(names):
        server.routes[f"/{name}"] = Route(rss([{"id": f"{name}-1", "title": f"第{i}区化工厂爆炸" if i == 0 else f"第{i}区市民留言",
                                              "body": "现场", "published": published}]))
    cfg = write_config(tmp_path / "cfg", receiver_url=receiver.url("/hook"), database_url=pg_url,
                       sources=[(name, server.url(f"/{name}")) for name in names],
                       extra='[daemon]\nlease = "5s"\n')
    cfg.write_text(cfg.read_text().replace('interval = "1m"', 'interval = "2s"'))
    procs = [spawn(cfg) for _ in range(3)]
    try:
        wait_for(lambda: all(_polled(server, name) >= 2 for name in names), timeout=40, what="every source polled twice")
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait(timeout=10)
        killed = time.monotonic()
        wait_for(lambda: all(_polled(server, name, after=killed) >= 3 for name in names), timeout=40,
                 what="every source polled on by the two left")
        wait_for(lambda: len(receiver.titles()) >= 1, what="the explosion's alert")
        for p in procs[1:]:
            p.send_signal(signal.SIGTERM)
        for p in procs[1:]:
            assert p.wait(timeout=20) == 0
    finally:
        for p in procs:
            p.kill()
    starts = defaultdict(list)
    for r in server.requests:
        starts[r["path"].lstrip("/")].append(r["at"])
    for name in names:
        gaps = [b - a for a, b in zip(starts[name], starts[name][1:])]
        # once per 2 s interval: two instances polling one source would show gaps near 0
        assert min(gaps) > 1.5, (name, [round(g, 2) for g in gaps])
    opened = [t for t in receiver.titles() if "新舆情事件" in t]
    assert len(opened) == len(set(opened)) == 1, receiver.titles()
    for p in procs[1:]:
        err = p.stderr.read().decode()
        assert "Traceback" not in err, err[-3000:]


def _polled(server, name: str, after: float = 0.0) -> int:
    return sum(1 for r in server.requests if r["path"] == f"/{name}" and r["at"] > after)


def test_choosing_with_a_say_claims_only_what_it_takes_and_never_a_source_left_out_of_the_config(tmp_path, server):
    """The engine's path: candidates are read, the caller (host politeness) takes some, only
    those are leased; a row whose source left the configuration stays alone."""
    clock = FakeClock(utc(2026, 11, 20, 8))
    engine, sessions, (a,) = pollers(f"sqlite:///{tmp_path / 'm.db'}", clock, n=1)
    sources = [SourceConfig(name=f"s{i}", url=server.url(f"/f{i}"), interval=timedelta(minutes=5), jitter=0) for i in range(6)]
    a.register(sources + [SourceConfig(name="gone", url=server.url("/gone"), interval=timedelta(minutes=5))])
    a.register(sources)  # "gone" was removed from the config; its row stays, due
    taken = a.due(sources, limit=10, take=lambda cfg: cfg.name != "s3")
    assert sorted(s.name for s in taken) == ["s0", "s1", "s2", "s4", "s5"]
    with sessions() as session:
        leased = dict(session.execute(select(Source.name, Source.lease_owner)).all())
    assert leased["s3"] is None and leased["gone"] is None and leased["s0"] == a.owner
    assert [s.name for s in a.due(sources, limit=1, exclude={s.name for s in taken}, take=lambda cfg: True)] == ["s3"]
    engine.dispose()
