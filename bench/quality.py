"""Incident quality on real labelled data.

End to end (what an officer receives): CED Weibo threads of April 2013 replayed through
`monitor replay` with config/monitor.toml and the watchwords in bench/rules/ced.toml, in four
time slices, each with repost links (reposts carry repost_of) and without (text only), in
event mode (the production example) and in rule mode. Per slice: B-cubed precision, recall
and F1 of the incidents against the CED thread_id (over the posts that reached an incident;
also against "stories", threads whose originals are copies of one text merged),
新舆情事件 alerts per real thread, and the messages the duty tiers receive (an alert on its own,
or one per digest) next to rule mode's. The clustering defaults were tuned on slices a and b;
c (the 芦山 earthquake) and d (the 红十字会 rumours) are reported, not tuned on.

  a  04-01..04-07  微信收费 rumours (many copies), H7N9
  b  04-15..04-17  the Boston marathon bombing
  c  04-20..04-21  the 芦山/雅安 earthquake
  d  04-22..04-25  红十字会 rumours after the earthquake
(at most 40 reposts per thread, those posted within the slice)

Component (the clusterer alone, monitor/incidents/cluster.py, next to a SimHash baseline):
  ced_linked  all April 2013 threads, reposts with links; ced_text the same without links,
  posts of at least 10 characters; fz12345 福州 12345 water complaints, truth = same river.

Usage: python bench/quality.py [--skip-replay]
The last line printed is a JSON object of the figures.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
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


def ours(posts, window: timedelta, linked: bool = False) -> dict[str, int]:
    """With links, a post that links nothing is an original, as the daemon takes one from a
    source that links reposts."""
    c = Clusterer(window)  # the defaults of [incidents]
    return {post_id: c.add(post_id, when, text, link, linked and link is None) for post_id, when, text, link in posts}


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


SLICES = {"a": ("2013-04-01", "2013-04-07"), "b": ("2013-04-15", "2013-04-17"),
          "c": ("2013-04-20", "2013-04-21"), "d": ("2013-04-22", "2013-04-25")}
TUNED_ON = ("a", "b")
REPOSTS_PER_THREAD = 40


def slice_posts(lo: str, hi: str, linked: bool) -> list[dict]:
    """Replay input lines of one slice, each with its thread (ignored by replay)."""
    origs = {}
    with open(DATA / "weibo_ced/original_microblogs.jsonl", encoding="utf-8") as f:
        for line in f:
            o = json.loads(line)
            if lo <= o["time_iso"][:10] <= hi:
                origs[o["thread_id"]] = o
    out = [{"source": "weibo", "id": f"o:{t}", "body": o["text"], "published_at": o["time_iso"], "thread": t}
           for t, o in origs.items()]
    taken: dict[str, int] = defaultdict(int)
    with open(DATA / "weibo_ced/reposts_2013-04_threads.jsonl", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            o = origs.get(r["thread_id"])
            if o is None or taken[r["thread_id"]] >= REPOSTS_PER_THREAD or not (lo <= r["date"][:10] <= hi):
                continue
            try:
                when = datetime.fromisoformat(r["date"]).replace(tzinfo=datetime.fromisoformat(o["time_iso"]).tzinfo)
            except ValueError:
                continue  # the few "02月23日 02:17" dates have no year
            taken[r["thread_id"]] += 1
            post = {"source": "weibo", "id": f"r:{r['mid']}", "body": r["text"], "published_at": when.isoformat(), "thread": r["thread_id"]}
            if linked:
                post["repost_of"] = f"r:{r['parent']}" if r["parent"] else f"o:{r['thread_id']}"
            out.append(post)
    return out


def stories(posts: list[dict]) -> dict[str, str]:
    """A second truth: threads whose originals are copies of one text (character trigrams,
    Jaccard >= 0.5: the same rumour posted by different users) are one story. Independent of
    the clusterer, to show how much of the thread-level precision is lost to copies."""
    grams = {}
    for p in posts:
        if p["id"].startswith("o:"):
            text = normalize(p["body"])[:140]
            grams[p["thread"]] = {text[i:i + 3] for i in range(max(1, len(text) - 2))}
    parent = {t: t for t in grams}

    def root(t):
        while parent[t] != t:
            parent[t] = parent[parent[t]]
            t = parent[t]
        return t

    threads = sorted(grams)
    for i, a in enumerate(threads):
        for b in threads[i + 1:]:
            if len(grams[a] & grams[b]) >= 0.5 * len(grams[a] | grams[b]):
                parent[root(b)] = root(a)
    return {t: root(t) for t in grams}


def messages(alerts: list[dict]) -> int:
    """What the tiers receive: an alert on its own, or one message per digest (time, addresses)."""
    digests = {(a["digest_at"], tuple(a["tags"])) for a in alerts if "digest_at" in a}
    return sum(1 for a in alerts if "digest_at" not in a) + len(digests)


def replay_figures(tmp: Path) -> dict:
    config = (REPO / "config" / "monitor.toml").read_text(encoding="utf-8")
    configs = {}
    for mode in ("event", "rule"):
        path = tmp / f"{mode}.toml"
        path.write_text(config.replace('clustering = "event"', f'clustering = "{mode}"'), encoding="utf-8")
        configs[mode] = path
    (tmp / "apprise.yml").write_text((REPO / "config" / "apprise.yml").read_text(encoding="utf-8"), encoding="utf-8")
    jobs = []
    for name, (lo, hi) in SLICES.items():
        for linked in (True, False):
            posts = slice_posts(lo, hi, linked)
            path = tmp / f"{name}_{'linked' if linked else 'text'}.jsonl"
            path.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in posts), encoding="utf-8")
            for mode in ("event", "rule"):
                jobs.append((name, linked, mode, path, posts))

    def run(job):
        name, linked, mode, path, _posts = job
        out = path.with_suffix(f".{mode}.json")
        subprocess.run([sys.executable, "-m", "monitor", "replay", "--config", str(configs[mode]),
                        "--watchwords", str(REPO / "bench/rules/ced.toml"), "--posts", str(path), "--dry-run", "--out", str(out)],
                       check=True, cwd=REPO, stdout=subprocess.DEVNULL)
        return json.loads(out.read_text(encoding="utf-8"))

    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 2)) as pool:
        results = list(pool.map(run, jobs))
    figures: dict = {}
    for (name, linked, mode, _path, posts), result in zip(jobs, results):
        thread = {p["id"]: p["thread"] for p in posts}
        pred = {}
        for incident in result["incidents"]:
            for post_id in incident["posts"]:
                pred.setdefault(post_id, incident["id"])
        p, r, f1 = bcubed(pred, {k: thread[k] for k in pred})
        story = stories(posts)
        _sp, _sr, story_f1 = bcubed(pred, {k: story.get(thread[k], thread[k]) for k in pred})
        threads = len({thread[k] for k in pred})
        opened = sum(1 for a in result["alerts"] if "新舆情事件 #" in a["title"])
        key = f"{name}_{'linked' if linked else 'text'}"
        entry = figures.setdefault(key, {"posts": len(posts), "placed": len(pred), "threads": threads})
        if mode == "event":
            entry.update(precision=round(p, 3), recall=round(r, 3), f1=round(f1, 3), story_f1=round(story_f1, 3),
                         stories=len({story.get(thread[k], thread[k]) for k in pred}), incidents=len(result["incidents"]),
                         opened_per_thread=round(opened / max(threads, 1), 2), alerts=len(result["alerts"]),
                         messages=messages(result["alerts"]))
        else:
            entry.update(rule_f1=round(f1, 3), rule_story_f1=round(story_f1, 3), rule_incidents=len(result["incidents"]), rule_alerts=len(result["alerts"]),
                         rule_messages=messages(result["alerts"]))
    for entry in figures.values():
        entry["messages_vs_rule"] = round(entry["messages"] / max(entry["rule_messages"], 1), 2)
    return figures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-replay", action="store_true", help="only the component figures")
    args = ap.parse_args()
    import logging

    logging.disable(logging.WARNING)  # the simhash index logs every large bucket it sees
    import jieba

    jieba.setLogLevel(logging.WARNING)
    if not DATA.exists():
        sys.exit(f"shared data not found at {DATA} (set MONITOR_SHARED_DATA)")
    figures = {}
    if not args.skip_replay:
        with tempfile.TemporaryDirectory(prefix="quality-") as tmp:
            replayed = replay_figures(Path(tmp))
        print(f"{'slice':<9} {'posts':>5} {'placed':>6} {'thr':>4} {'sty':>4} | event: {'P':>5} {'R':>5} {'F1':>5} {'stF1':>5} {'inc':>4}"
              f" {'新/thr':>6} {'msgs':>5} | rule: {'F1':>5} {'inc':>4} {'msgs':>5} | msgs/rule")
        for key, e in replayed.items():
            tag = " (tuned on)" if key[0] in TUNED_ON else ""
            print(f"{key:<9} {e['posts']:>5} {e['placed']:>6} {e['threads']:>4} {e['stories']:>4} | event: {e['precision']:>5.3f}"
                  f" {e['recall']:>5.3f} {e['f1']:>5.3f} {e['story_f1']:>5.3f} {e['incidents']:>4} {e['opened_per_thread']:>6.2f}"
                  f" {e['messages']:>5} | rule: {e['rule_f1']:>5.3f}"
                  f" {e['rule_incidents']:>4} {e['rule_messages']:>5} | {e['messages_vs_rule']:.2f}{tag}")
        figures["replay"] = replayed
    for name, (posts, truth), window, linked in (
        ("ced_linked", ced(True), timedelta(days=3), True),
        ("ced_text", ced(False), timedelta(days=3), False),
        ("fz12345", fz12345(), timedelta(days=30), False),
    ):
        p, r, f1 = bcubed(ours(posts, window, linked), truth)
        bp, br, bf1 = bcubed(simhash_baseline(posts), truth)
        figures[name] = {"precision": round(p, 3), "recall": round(r, 3), "f1": round(f1, 3),
                         "baseline_precision": round(bp, 3), "baseline_recall": round(br, 3), "baseline_f1": round(bf1, 3)}
        print(f"{name:<11} {len(posts):>6} posts: ours P {p:.3f} R {r:.3f} F1 {f1:.3f} | SimHash P {bp:.3f} R {br:.3f} F1 {bf1:.3f}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
