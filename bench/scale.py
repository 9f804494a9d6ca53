"""Scale: incidents are found through an index, not a scan.

With 100,000 open incidents in the store (SQLite file, as the daemon runs by default),
time one escalation tick (the incidents due now are found by the next_step_at index) and
the assignment of a new matching post to its incident (rule, state, last_post_at index).
Targets (issue #7): a tick under 50 ms, assigning a post under 5 ms. Assigning is timed
twice: with [incidents] clustering = "rule" (the built-in default) and "event" (content
clustering, the example config), where every open incident holds a post about a real
福州 river and the event index of the rule is rebuilt from the store first.

Usage: python bench/scale.py [--incidents 100000]
The last line printed is a JSON object of the figures.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sqlalchemy import insert  # noqa: E402

from monitor.app import build  # noqa: E402
from monitor.clock import FakeClock  # noqa: E402
from monitor.config import load  # noqa: E402
from monitor.sources import RawPost  # noqa: E402
from monitor.store.models import Incident, IncidentPost, Post, ResponseClock, Source  # noqa: E402
from monitor.store.posts import store_posts  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "complaints" / "fuzhou12345" / "fz12345_water_complaints_2016-2020.csv"
DISTRICTS = ["鼓楼区", "台江区", "仓山区", "晋安区", "马尾区", "长乐区", "闽侯县", "连江县", "罗源县", "闽清县", "永泰县", "福清市"]
RULES = ["危化品爆炸", "建筑坍塌", "群体性事件", "食品安全", "黑臭水体", "拖欠工资", "噪音扰民"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--incidents", type=int, default=100_000)
    args = ap.parse_args()
    rng = random.Random(7)
    now = datetime(2026, 11, 23, 2, 0, tzinfo=timezone.utc)
    with tempfile.TemporaryDirectory(prefix="monitor-scale-") as tmp:
        cfg_text = (REPO / "config" / "demo.toml").read_text(encoding="utf-8")
        cfg_path = Path(tmp) / "scale.toml"
        cfg_path.write_text(cfg_text.replace('url = "sqlite:///../demo-state/monitor.db"', f'url = "sqlite:///{tmp}/scale.db"')
                            .replace('state_dir = "../demo-state"', f'state_dir = "{tmp}/state"')
                            .replace('watchwords = "watchwords.toml"', f'watchwords = "{REPO / "config" / "watchwords.toml"}"')
                            .replace('apprise_config = "demo-apprise.yml"', f'apprise_config = "{REPO / "config" / "demo-apprise.yml"}"')
                            .replace('posts = "demo-posts.json"', f'posts = "{REPO / "config" / "demo-posts.json"}"'),
                            encoding="utf-8")
        cfg = load(cfg_path)
        clock = FakeClock(now)
        app = build(cfg, clock, dry_run=True)
        app.pipeline.matcher.segmenter.initialize()
        started = time.perf_counter()
        incidents, clocks = [], []
        for i in range(args.incidents):
            opened = now - timedelta(minutes=rng.randint(1, 60 * 24 * 2))
            rule = rng.choice(RULES)
            incidents.append({"id": i + 1, "rule": rule, "title": f"事件{i}", "severity": "一般", "category": "", "department": "",
                              "state": "open", "started_at": opened, "opened_at": opened, "last_post_at": opened,
                              "terms": [], "post_count": 1,
                              # most incidents have their next step in the future; a few are due now
                              "next_step_at": (now + timedelta(minutes=rng.randint(-1 if i % 2000 == 0 else 1, 600)))})
            clocks.append({"incident_id": i + 1, "name": "权威回应", "started_at": opened, "due_at": opened + timedelta(hours=48), "active": True})
        with app.engine.begin() as conn:
            for table, rows in ((Incident, incidents), (ResponseClock, clocks)):
                for k in range(0, len(rows), 20_000):
                    conn.execute(insert(table), rows[k:k + 20_000])
            conn.execute(insert(Source), [{"id": 1, "name": "bench", "url": "http://127.0.0.1/", "kind": "feed", "consecutive_failures": 0, "posts_total": 0}])
        print(f"filled {args.incidents} open incidents in {time.perf_counter() - started:.1f} s (not timed)")

        ticks = []
        for _ in range(5):
            t = time.perf_counter()
            app.pipeline.tick()
            ticks.append((time.perf_counter() - t) * 1000)
            clock.advance(timedelta(seconds=30))
        assigns = time_assigns(app, clock, "rule")
        app.engine.dispose()

        # Content clustering: each open incident gets one post about a river, so the event
        # index holds as many events as the rule has open incidents.
        rivers = _rivers()
        with app.engine.begin() as conn:
            posts = [{"id": 1_000_000 + i["id"], "source_id": 1, "external_id": f"old{i['id']}", "title": "",
                      "body": f"{rng.choice(DISTRICTS)}{rng.choice(rivers)}附近河段黑臭，居民多次投诉{rng.choice(DISTRICTS)}环保局",
                      "fetched_at": i["last_post_at"], "published_at": i["last_post_at"], "processed_at": i["last_post_at"]}
                     for i in incidents]
            links = [{"incident_id": i["id"], "post_id": 1_000_000 + i["id"], "added_at": i["last_post_at"]} for i in incidents]
            for table, rows in ((Post, posts), (IncidentPost, links)):
                for k in range(0, len(rows), 20_000):
                    conn.execute(insert(table), rows[k:k + 20_000])
        cfg.main = cfg.main.model_copy(update={"incidents": cfg.main.incidents.model_copy(update={"clustering": "event"})})
        app = build(cfg, clock, dry_run=True)
        app.pipeline.matcher.segmenter.initialize()
        started = time.perf_counter()
        with app.sessions() as session:
            events = len(app.incidents.lifecycle._clusterer(session, "黑臭水体").events)
        print(f"event index of 黑臭水体 rebuilt from {events} open incidents in {time.perf_counter() - started:.1f} s (not timed)")
        event_assigns = time_assigns(app, clock, "event", rivers)
        app.engine.dispose()
    tick_ms, assign_ms, event_ms = statistics.median(ticks), statistics.median(assigns), statistics.median(event_assigns)
    print(f"escalation tick: median {tick_ms:.1f} ms (max {max(ticks):.1f}); assigning a post: median {assign_ms:.2f} ms "
          f"(p90 {_p90(assigns):.2f}); with event clustering: median {event_ms:.2f} ms (p90 {_p90(event_assigns):.2f})")
    print(json.dumps({"tick_ms": round(tick_ms, 2), "assign_ms": round(assign_ms, 2), "assign_event_ms": round(event_ms, 2),
                      "open_incidents": args.incidents}))


def time_assigns(app, clock, mode: str, rivers=("城东河道",)) -> list[float]:
    """Store one matching post at a time, then time match + assign + commit."""
    rng = random.Random(11)
    times = []
    for i in range(200):
        text = f"{rng.choice(DISTRICTS)}{rng.choice(rivers)}黑臭第{i}处，附近居民反映"
        raw = RawPost(f"{mode}{i}", None, text, "", None, clock.now())
        with app.sessions.begin() as session:
            store_posts(session, 1, [raw], clock.now())
        t = time.perf_counter()
        app.pipeline.process_pending()
        times.append((time.perf_counter() - t) * 1000)
    return times


def _p90(values: list[float]) -> float:
    return sorted(values)[int(len(values) * 0.9)]


def _rivers() -> list[str]:
    """Real river names of 福州 (the 12345 water complaints), a few if the data is absent."""
    import csv

    if not DATA.exists():
        return ["白马河", "光明港", "晋安河", "新店溪", "凤坂河", "屏西河"]
    with DATA.open(encoding="utf-8") as f:
        return sorted({r["river"] for r in csv.DictReader(f) if r["river"] and r["river"] != "无"})


if __name__ == "__main__":
    main()
