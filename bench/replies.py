"""Board replies on real data: 2,816 问政 messages with their official replies and reply times
(shared/data/complaints/tipdm2020_wenzheng/attachment4), replayed through `monitor replay`
with the reply as the response (`reply_meets = "权威回应"`), then `monitor report` from the
first message to the last reply. The figures are read from the report's own CSV files: the distribution of reply
latency, the share answered within 48 h and within 5 / 15 working days, and per category
(the category of the rule each message matched, bench/rules/wenzheng.toml).

Usage: python bench/replies.py [--limit N] [--keep DIR]
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
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("MONITOR_SHARED_DATA") or REPO.parent / "shared" / "data")
MESSAGES = DATA / "complaints/tipdm2020_wenzheng/attachment4_messages_with_replies.csv"
FORMATS = ("%Y/%m/%d %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y/%m/%d")  # all three occur in the file


def local_time(text: str) -> str:
    """The CSV's Beijing times as ISO 8601 with their offset (a bare date is its midnight)."""
    for fmt in FORMATS:
        try:
            return datetime.strptime(text.strip(), fmt).isoformat() + "+08:00"
        except ValueError:
            continue
    raise ValueError(f"unrecognised time {text!r}")


def messages(path: Path = MESSAGES, limit: int | None = None) -> list[dict]:
    """The messages as `monitor replay` posts: each with its official reply and reply time."""
    with open(path, encoding="utf-8") as f:
        rows = list(csv.DictReader(f))[:limit]
    return [
        {"source": "问政平台", "id": r["留言编号"].strip(), "title": r["留言主题"].strip(), "body": r["留言详情"].strip(),
         "published_at": local_time(r["留言时间"]), "reply_at": local_time(r["答复时间"]),
         "reply_text": r["答复意见"].strip()[:2000]}
        for r in rows
    ]


def config(folder: Path, database: str) -> Path:
    path = folder / "monitor.toml"
    path.write_text(
        f'watchwords = "{REPO / "bench/rules/wenzheng.toml"}"\n'
        f'[database]\nurl = "{database}"\n'
        f'[daemon]\nstate_dir = "{folder / "state"}"\n'
        '[incidents]\nreply_meets = "权威回应"\n'
        # Replies here take weeks: re-escalating every 2 h at the top tier would be ~200 steps a
        # message, which the figures do not depend on; once a day keeps the replay short.
        '[escalation]\nrepeat_every = "24h"\n',
        encoding="utf-8",
    )
    return path


def monitor(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "monitor", *args], cwd=REPO, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"monitor {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def run(folder: Path, limit: int | None = None) -> dict:
    posts = messages(limit=limit)
    (folder / "posts.jsonl").write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in posts), encoding="utf-8")
    database = f"sqlite:///{folder / 'replay.db'}"
    cfg = config(folder, database)
    t0 = time.perf_counter()
    monitor("replay", "--config", str(cfg), "--posts", str(folder / "posts.jsonl"), "--dry-run", "--database", database,
            "--out", str(folder / "replay.json"))
    replay_s = time.perf_counter() - t0
    first = min(p["published_at"] for p in posts)[:10]
    last = max(p["reply_at"] for p in posts)[:10]  # to the last reply: every message's answer is in the period
    t0 = time.perf_counter()
    monitor("report", "annual", "--from", first, "--to", last, "--format", "csv", "--out", str(folder / "report"),
            "--config", str(cfg), "--database", database)
    report_s = time.perf_counter() - t0
    tables = {p.stem.split("_", 2)[-1]: list(csv.DictReader(p.read_text(encoding="utf-8-sig").splitlines()))
              for p in (folder / "report").glob("*.csv")}
    return {"tables": tables, "replay_s": round(replay_s, 1), "report_s": round(report_s, 2), "first": first, "last": last}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, help="only the first N messages")
    parser.add_argument("--keep", help="work in this folder and keep it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-replies-") as tmp:
        folder = Path(args.keep or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        out = run(folder, args.limit)
    board = out["tables"]["留言办理"][0]
    print(f"留言 {out['first']} — {out['last']}：")
    for key, value in board.items():
        print(f"  {key}：{value}")
    print("答复用时分布：")
    for row in out["tables"]["留言答复用时分布"]:
        print(f"  {row['答复用时']}：{row['留言']}（{row['占比']}）")
    print("按分类：")
    for row in out["tables"]["留言办理（按分类）"]:
        print(f"  {row['分类']}：{row['留言']} 条，中位数 {row['答复用时中位数（小时）']} 小时，"
              f"48 小时内 {row['48小时内答复率']}，5 个工作日内 {row['5个工作日内答复率']}，15 个工作日内 {row['15个工作日内答复率']}")
    number = lambda v: float(v) if v not in ("", None) else None  # noqa: E731
    print(json.dumps({
        "messages": int(board["留言"]), "answered": int(board["已答复"]),
        "reply_p50_h": number(board["答复用时中位数（小时）"]), "reply_p90_h": number(board["答复用时P90（小时）"]),
        "within_48h": number(board["48小时内答复率"]), "within_5wd": number(board["5个工作日内答复率"]),
        "within_15wd": number(board["15个工作日内答复率"]), "categories": len(out["tables"]["留言办理（按分类）"]),
        "replay_s": out["replay_s"], "report_s": out["report_s"],
    }, ensure_ascii=False))


if __name__ == "__main__":
    main()
