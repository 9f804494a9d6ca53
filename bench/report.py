"""Report benchmark: a store of 1,000,000 posts and 10,000 incidents in one week, all formats.

The store is filled directly (set-based inserts, not timed); what is timed is what an
office waits for: `make_report` in xlsx, docx, html and csv, charts included, for the week
(周报), and for the month, quarter and year that hold it (月报, 季报, 年报: each also reads
the period before and the year before). Target: each under 10 s.

Usage: python bench/report.py [--posts 1000000] [--incidents 10000]
The last line printed is a JSON object of the figures.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sqlalchemy import insert  # noqa: E402

from monitor.config import load  # noqa: E402
from monitor.incidents.clocks import plan_clocks  # noqa: E402
from monitor.incidents.workdays import WorkCalendar  # noqa: E402
from monitor.reports.period import iso_week, month, quarter, year  # noqa: E402
from monitor.reports.weekly import make_report  # noqa: E402
from monitor.store import db  # noqa: E402
from monitor.store.models import ClockChange, Event, Incident, IncidentPost, Match, Post, ResponseClock, Source  # noqa: E402

DEPARTMENTS = ["应急管理局", "生态环境局", "住房和城乡建设局", "信访局", "市场监督管理局", "人力资源和社会保障局",
               "交通运输局", "教育局", "卫生健康委员会", "公安局", "水利局", "城市管理局"]
RULES = [("危化品爆炸", "重大", "安全生产"), ("建筑坍塌", "重大", "安全生产"), ("群体性事件", "较大", "社会稳定"),
         ("食品安全", "较大", "食品药品"), ("黑臭水体", "一般", "环境保护"), ("拖欠工资", "一般", "劳动保障"),
         ("重大疫情", "特别重大", "公共卫生")]


def fill(url: str, cfg, posts: int, incidents: int, rng: random.Random) -> None:
    engine = db.make_engine(url)
    db.upgrade(engine)
    week = iso_week("2026-W47")
    span = (week.end - week.start).total_seconds()
    naive = lambda dt: dt.astimezone(timezone.utc).replace(tzinfo=None)  # noqa: E731
    # The product's own clock planning: working-day clocks (依申请公开答复) have no `within`.
    calendar = WorkCalendar(cfg.main.calendar.holidays, cfg.main.calendar.workdays)
    with engine.begin() as conn:
        conn.execute(insert(Source), [{"id": i + 1, "name": f"来源{i + 1:02d}", "url": f"http://127.0.0.1/{i}", "kind": "feed",
                                       "consecutive_failures": 0 if i % 10 else 3, "posts_total": 0,
                                       "last_error": None if i % 10 else "HTTP 503 Service Unavailable"} for i in range(50)])
        batch = []
        for i in range(posts):
            at = naive(week.start + timedelta(seconds=rng.random() * span))
            batch.append({"id": i + 1, "source_id": i % 50 + 1, "external_id": f"p{i}", "title": f"帖文{i}", "body": "",
                          "published_at": at, "fetched_at": at, "processed_at": at})
            if len(batch) == 50_000:
                conn.execute(insert(Post), batch)
                batch = []
        if batch:
            conn.execute(insert(Post), batch)
        incident_rows, clock_rows, change_rows, event_rows, link_rows, match_rows = [], [], [], [], [], []
        post_ids = rng.sample(range(1, posts + 1), min(posts, incidents * 10))
        for n in range(incidents):
            rule, severity, category = rng.choice(RULES)
            opened = week.start + timedelta(seconds=rng.random() * span)
            acked = opened + timedelta(minutes=rng.expovariate(1 / 40)) if rng.random() < 0.8 else None
            incident_rows.append({"id": n + 1, "rule": rule, "title": f"=疑似注入{n}" if n % 97 == 0 else f"事件{n}：{rule}",
                                  "severity": severity, "category": category, "department": rng.choice(DEPARTMENTS),
                                  "state": "closed" if rng.random() < 0.5 else "open", "started_at": naive(opened), "opened_at": naive(opened),
                                  "last_post_at": naive(opened), "acked_at": naive(acked) if acked else None, "acked_by": "值班员" if acked else None,
                                  "terms": [rule[:2]], "first_post_url": f"http://127.0.0.1/p/{n}", "post_count": 10})
            event_rows.append({"incident_id": n + 1, "at": naive(opened), "actor": "system", "kind": "opened", "data": {}})
            for plan in plan_clocks(severity, cfg.main.clock, opened, rule, category, calendar):
                name, due = plan.name, plan.due_at
                met = opened + (due - opened) * rng.uniform(0.3, 1.4) if rng.random() < 0.85 else None
                clock_rows.append({"id": len(clock_rows) + 1, "incident_id": n + 1, "name": name, "started_at": naive(opened),
                                   "due_at": naive(due), "met_at": naive(met) if met else None, "met_by": "值班员" if met else None,
                                   "active": True})
                # as the product writes them: planned when the incident opened, met when it was met
                change = {"clock_id": len(clock_rows), "incident_id": n + 1, "active": True, "started_at": naive(opened),
                          "due_at": naive(due)}
                change_rows.append({**change, "at": naive(opened), "met_at": None})
                if met:
                    change_rows.append({**change, "at": naive(met), "met_at": naive(met)})
                    event_rows.append({"incident_id": n + 1, "at": naive(met), "actor": "值班员", "kind": "clock_met",
                                       "data": {"clock": name, "on_time": met <= due, "evidence": "http://gov/x"}})
            for pid in post_ids[n * 10:(n + 1) * 10]:
                link_rows.append({"incident_id": n + 1, "post_id": pid, "added_at": naive(opened)})
                match_rows.append({"post_id": pid, "rule": rule, "terms": [rule[:2]], "severity": severity, "category": category, "department": ""})
        for table, rows in ((Incident, incident_rows), (ResponseClock, clock_rows), (ClockChange, change_rows), (Event, event_rows),
                            (IncidentPost, link_rows), (Match, match_rows)):
            for i in range(0, len(rows), 50_000):
                conn.execute(insert(table), rows[i:i + 50_000])
    engine.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--posts", type=int, default=1_000_000)
    ap.add_argument("--incidents", type=int, default=10_000)
    args = ap.parse_args()
    cfg = load(REPO / "config" / "monitor.toml")
    with tempfile.TemporaryDirectory(prefix="monitor-report-bench-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'week.db'}"
        started = time.perf_counter()
        fill(url, cfg, args.posts, args.incidents, random.Random(47))
        print(f"filled {args.posts} posts and {args.incidents} incidents in {time.perf_counter() - started:.1f} s (not timed)")
        engine = db.make_engine(url)
        sessions = db.session_factory(engine)
        figures = {}
        # the week on the Monday after; the longer periods once they have ended
        for key, period, now in (("seconds", iso_week("2026-W47"), datetime(2026, 11, 23, 1, 0, tzinfo=timezone.utc)),
                                 ("monthly_s", month("2026-11"), datetime(2027, 1, 5, 1, 0, tzinfo=timezone.utc)),
                                 ("quarterly_s", quarter("2026-Q4"), datetime(2027, 1, 5, 1, 0, tzinfo=timezone.utc)),
                                 ("annual_s", year("2026"), datetime(2027, 1, 5, 1, 0, tzinfo=timezone.utc))):
            started = time.perf_counter()
            report, paths = make_report(sessions, cfg.main, period, now, ["xlsx", "docx", "html", "csv"], Path(tmp) / "out" / period.label)
            seconds = time.perf_counter() - started
            figures[key] = round(seconds, 2)
            print(f"{period.name} {period.label}: {seconds:.2f} s, {len(paths)} files, "
                  f"{sum(p.stat().st_size for p in paths) / 1e6:.1f} MB, {len(report.charts)} charts")
            print("  " + "\n  ".join(report.headline))
        engine.dispose()
    print(json.dumps({**figures, "posts": args.posts, "incidents": args.incidents}))


if __name__ == "__main__":
    main()
