"""Incident quality on real labelled data: B-cubed precision, recall and F1 of the
project's grouping (monitor/incidents/cluster.py) next to a SimHash-only baseline on the
same posts.

  ced_linked  CED Weibo threads of April 2013 (originals and reposts); reposts carry
              repost_of (their parent, or the thread's original); truth = thread_id
  ced_text    the same, no links, posts with at least 10 characters of text
  fz12345     福州 12345 water complaints; truth = same river (text only)

Usage: python bench/quality.py
The last line printed is a JSON object of the figures.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = Path(os.environ.get("MONITOR_SHARED_DATA", REPO.parent / "shared" / "data"))

from simhash import Simhash, SimhashIndex  # noqa: E402

from monitor.incidents.cluster import Clusterer  # noqa: E402
from monitor.matching.normalize import normalize  # noqa: E402


def bcubed(pred: dict[str, int], truth: dict[str, str]) -> tuple[float, float, float]:
    clusters, classes = defaultdict(set), defaultdict(set)
    for item, c in pred.items():
        clusters[c].add(item)
    for item, t in truth.items():
        classes[t].add(item)
    p = r = 0.0
    for item in pred:
        cluster, klass = clusters[pred[item]], classes[truth[item]]
        both = len(cluster & klass)
        p += both / len(cluster)
        r += both / len(klass)
    p, r = p / len(pred), r / len(pred)
    return p, r, 2 * p * r / (p + r) if p + r else 0.0


def simhash_baseline(posts) -> dict[str, int]:
    """Near-duplicates only: a post joins the group of an earlier post within Hamming 3."""
    index = SimhashIndex([], k=3)
    group: dict[str, int] = {}
    for post_id, _when, text, _link in posts:
        grams = [normalize(text)[i:i + 3] for i in range(max(1, len(text) - 2))]
        h = Simhash(grams)
        near = index.get_near_dups(h)
        group[post_id] = group[near[0]] if near else len(group)
        index.add(post_id, h)
    return group


def ours(posts, window: timedelta, threshold: float) -> dict[str, int]:
    c = Clusterer(window, threshold)  # the defaults of [incidents] (near_duplicate = 0.7)
    return {post_id: c.add(post_id, when, text, link) for post_id, when, text, link in posts}


def ced(linked: bool):
    origs = {}
    with open(DATA / "weibo_ced/original_microblogs.jsonl", encoding="utf-8") as f:
        for line in f:
            o = json.loads(line)
            if o["time_iso"].startswith("2013-04"):
                origs[o["thread_id"]] = o
    posts, truth = [], {}
    for o in origs.values():
        posts.append((f"o:{o['thread_id']}", datetime.fromisoformat(o["time_iso"]), o["text"], None))
        truth[f"o:{o['thread_id']}"] = o["thread_id"]
    with open(DATA / "weibo_ced/reposts_2013-04_threads.jsonl", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            if r["thread_id"] not in origs:
                continue
            try:
                when = datetime.fromisoformat(r["date"]).replace(tzinfo=datetime.fromisoformat(origs[r["thread_id"]]["time_iso"]).tzinfo)
            except ValueError:
                when = datetime.fromisoformat(origs[r["thread_id"]]["time_iso"])
            if not linked and len(r["text"].strip()) < 10:
                continue
            link = (f"r:{r['parent']}" if r["parent"] else f"o:{r['thread_id']}") if linked else None
            posts.append((f"r:{r['mid']}", when, r["text"], link))
            truth[f"r:{r['mid']}"] = r["thread_id"]
    posts.sort(key=lambda p: p[1])
    return posts, truth


def fz12345():
    posts, truth = [], {}
    with open(DATA / "complaints/fuzhou12345/fz12345_water_complaints_2016-2020.csv", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            try:
                when = datetime.strptime(r["time"].strip()[:19], "%Y-%m-%d %H:%M:%S")
            except ValueError:
                try:
                    when = datetime.strptime(r["time"].strip()[:10], "%Y-%m-%d")
                except ValueError:
                    continue
            pid = f"z:{r['id']}"
            posts.append((pid, when, f"{r['title']}\n{r['content']}", None))
            truth[pid] = r["river"]
    posts.sort(key=lambda p: p[1])
    return posts, truth


def main() -> None:
    import logging

    logging.disable(logging.WARNING)  # the simhash index logs every large bucket it sees
    import jieba

    jieba.setLogLevel(logging.WARNING)
    if not DATA.exists():
        sys.exit(f"shared data not found at {DATA} (set MONITOR_SHARED_DATA)")
    figures = {}
    for name, (posts, truth), window in (
        ("ced_linked", ced(True), timedelta(days=3)),
        ("ced_text", ced(False), timedelta(days=3)),
        ("fz12345", fz12345(), timedelta(days=30)),
    ):
        p, r, f1 = bcubed(ours(posts, window, 0.25), truth)
        bp, br, bf1 = bcubed(simhash_baseline(posts), truth)
        figures[name] = {"precision": round(p, 3), "recall": round(r, 3), "f1": round(f1, 3),
                         "baseline_precision": round(bp, 3), "baseline_recall": round(br, 3), "baseline_f1": round(bf1, 3)}
        print(f"{name:<11} {len(posts):>6} posts: ours P {p:.3f} R {r:.3f} F1 {f1:.3f} | SimHash P {bp:.3f} R {br:.3f} F1 {bf1:.3f}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
