"""Grouping posts into events: small real samples, and the daemon's incidents in event mode."""

import csv
from datetime import timedelta

from sqlalchemy import select

from monitor.app import build
from monitor.clock import FakeClock
from monitor.incidents.cluster import Clusterer, salient
from monitor.sources import RawPost
from monitor.store.models import Incident
from monitor.store.posts import source_row, store_posts

from .conftest import shared, utc

T0 = utc(2026, 11, 23, 2, 0)


def test_salient_words_are_what_the_post_is_about():
    words = salient("光明港公园旁的内河常年黑臭，希望环保局处理")
    assert {"光明港", "环保局"} <= words and "希望" not in words and "常年" not in words


def test_real_12345_complaints_about_two_rivers_form_two_events():
    path = shared("complaints/fuzhou12345/fz12345_water_complaints_2016-2020.csv")
    with path.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    by_river: dict[str, list] = {}
    for r in rows:
        by_river.setdefault(r["river"], []).append(r)
    big = sorted((rs for name, rs in by_river.items() if name and name != "无"), key=len, reverse=True)[:2]
    sample = [(r, i) for i, rs in enumerate(big) for r in rs[:6]]
    c = Clusterer(timedelta(days=3650), threshold=0.25)
    keys = {}
    for n, (r, river) in enumerate(sorted(sample, key=lambda x: x[0]["time"])):
        keys.setdefault(river, set()).add(c.add(f"z{n}", T0 + timedelta(minutes=n), f"{r['title']}\n{r['content']}"))
    # each river mostly in its own events, and the two rivers never in the same one
    assert not (keys[0] & keys[1])
    assert len(keys[0]) + len(keys[1]) < 12  # and some complaints grouped (a small sample: the bench measures)


def world(tmp_path, make_config):
    cfg = make_config(extra='[incidents]\nclustering = "event"\n')
    app = build(cfg, FakeClock(T0), dry_run=True)
    with app.sessions.begin() as s:
        sid = source_row(s, "12345", "http://x").id
    return cfg, app, sid


def post(app, sid, external_id, title, minutes):
    app.clock.set(T0 + timedelta(minutes=minutes))
    with app.sessions.begin() as s:
        store_posts(s, sid, [RawPost(external_id, None, title, "", None, app.clock.now())], app.clock.now())
    app.pipeline.process_pending()


def incidents(app):
    with app.sessions() as s:
        return [(i.id, i.post_count) for i in s.scalars(select(Incident).order_by(Incident.id))]


def test_event_mode_keeps_two_rivers_apart_and_survives_a_restart(tmp_path, make_config):
    cfg, app, sid = world(tmp_path, make_config)
    post(app, sid, "a1", "光明港公园内河黑臭，光明港附近居民投诉", 0)
    post(app, sid, "b1", "白马河沿岸污水直排，白马河水质恶化发黑发臭", 10)
    post(app, sid, "a2", "光明港公园内河依旧黑臭，光明港附近商户反映", 20)
    assert incidents(app) == [(1, 2), (2, 1)]
    app.engine.dispose()
    # a new process: the event index is rebuilt from the store
    app2 = build(cfg, app.clock, dry_run=True)
    post(app2, sid, "b2", "白马河污水直排黑臭问题仍未解决，白马河周边居民", 30)
    assert incidents(app2) == [(1, 2), (2, 2)]
    app2.engine.dispose()
