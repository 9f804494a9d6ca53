"""Grouping posts into events: small real samples, and the daemon's incidents in event mode."""

import csv
import json
from datetime import timedelta

from sqlalchemy import select

from monitor.app import build
from monitor.clock import FakeClock
from monitor.incidents.cluster import Clusterer, features, minhash, salient
from monitor.sources import RawPost
from monitor.store.models import Event, Incident
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


def _ced_originals(n: int) -> list[str]:
    texts = []
    with shared("weibo_ced/original_microblogs.jsonl").open(encoding="utf-8") as f:
        for line in f:
            o = json.loads(line)
            # the corpus holds the same rumour posted by several accounts: take distinct ones
            if o["time_iso"].startswith("2013-04") and len(o["text"]) >= 60 and all(o["text"][:30] != t[:30] for t in texts):
                texts.append(o["text"])
                if len(texts) == n:
                    return texts
    raise AssertionError("too few CED originals")


def test_near_duplicate_of_a_real_weibo_joins_its_event_where_shared_words_alone_would_not():
    first, other = _ced_originals(2)
    copy = f"转发微博：{first}（来源：新京报）//@网友：扩散"
    assert minhash(features("无语 [蜡烛]").shingles) is None  # too short to be anyone's duplicate
    for near_dup, joined in ((0.7, True), (None, False)):
        # threshold 1: the shared-words stage needs every salient word, which the copy's 新京报 spoils
        c = Clusterer(timedelta(days=3), threshold=1.0, near_dup=near_dup)
        a = c.add("a", T0, first)
        b = c.add("b", T0 + timedelta(minutes=5), other)
        d = c.add("d", T0 + timedelta(minutes=9), copy)
        assert a != b and (d == a) is joined, near_dup


def test_near_duplicates_are_forgotten_after_the_window():
    first, = _ced_originals(1)
    c = Clusterer(timedelta(hours=1), threshold=1.0)
    a = c.add("a", T0, first)
    assert c.add("b", T0 + timedelta(minutes=30), first + "！") == a
    assert c.add("c", T0 + timedelta(hours=5), first + "！") != a  # the event went quiet: a new one
    assert "a" not in c._sketch  # and old sketches let go, so memory follows the window


def test_merge_and_split_from_another_process_reach_the_daemons_event_index(tmp_path, make_config):
    cfg, app, sid = world(tmp_path, make_config)
    post(app, sid, "a1", "光明港公园内河黑臭，光明港附近居民投诉", 0)
    post(app, sid, "b1", "白马河沿岸污水直排，白马河水质恶化发黑发臭", 10)
    assert incidents(app) == [(1, 1), (2, 1)]
    cli = build(cfg, app.clock, dry_run=True)  # `monitor incidents merge 1 2`, run beside the daemon
    with cli.sessions.begin() as s:
        cli.incidents.actions.merge(s, 1, 2, "科长", app.clock.now())
    # the daemon's index still has 白马河 in #2, now closed: it must look again, not open #3
    post(app, sid, "b2", "白马河污水直排黑臭问题仍未解决，白马河周边居民", 20)
    assert incidents(app) == [(1, 3), (2, 1)]
    with cli.sessions.begin() as s:
        new = cli.incidents.actions.split(s, 1, ["b1", "b2"], "科长", app.clock.now()).id
    post(app, sid, "b3", "白马河沿岸发黑发臭，白马河附近居民再次反映", 30)
    with app.sessions() as s:
        assert s.get(Incident, new).post_count == 3 and s.get(Incident, 1).post_count == 1
        kinds = [e.kind for e in s.scalars(select(Event).order_by(Event.id))]
    assert "merged" in kinds and "split_out" in kinds
    cli.engine.dispose()
    app.engine.dispose()
