"""Watchword precision on real labelled posts: the 福州 12345 黑臭 set, and 问政 messages in 7 categories.

317 real complaints that a keyword search for 黑臭 returned, labelled relevant to black,
smelly water bodies (261) or not (56). Raw keyword matching takes all of them:
precision 0.82 at recall 1.0. This runs the rule in bench/rules/heichou.toml (its comments
say how it is written) through the project's rule engine and prints precision and recall.

Second set: 495 问政 messages of the 2020 泰迪杯 C 题 labelled with one of 7 一级分类
(shared/data/complaints/tipdm2020_wenzheng). bench/rules/wenzheng.toml holds one rule per
category, in one group (a message goes to the first that matches); it was written and adjusted
on the messages with an even 留言编号 ("tune") and is reported on the odd ones ("held_out"),
next to plain substring matching of the same terms in the same order.

Usage: python bench/precision.py [--rules FILE]
The last line printed is a JSON object of the figures.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = Path(os.environ.get("MONITOR_SHARED_DATA", REPO.parent / "shared" / "data"))

from monitor.config import load_rules  # noqa: E402
from monitor.matching.matcher import Matcher  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rules", default=str(REPO / "bench" / "rules" / "heichou.toml"))
    args = ap.parse_args()
    path = DATA / "complaints/fuzhou12345/fz12345_heichou_keyword_relevance_2006-2016.csv"
    if not path.exists():
        sys.exit(f"shared data not found: {path} (set MONITOR_SHARED_DATA)")
    with path.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    matcher = Matcher(load_rules([Path(args.rules)]))
    tp = fp = fn = 0
    for r in rows:
        hit = bool(matcher.match(r["title"], r["content"]))
        relevant = r["is_heichou_water"] == "yes"
        tp += hit and relevant
        fp += hit and not relevant
        fn += relevant and not hit
    relevant_total = tp + fn
    print(f"posts {len(rows)}, relevant {relevant_total}; raw keyword baseline: precision {relevant_total / len(rows):.3f}, recall 1.000")
    precision, recall = tp / (tp + fp), tp / relevant_total
    print(f"rule {args.rules}: matched {tp + fp} (true {tp}, false {fp}), missed {fn}")
    print(f"precision {precision:.3f}, recall {recall:.3f}")
    figures = {"precision": round(precision, 3), "recall": round(recall, 3), "wenzheng": wenzheng()}
    print(json.dumps(figures, ensure_ascii=False))


def macro_f1(pairs: list[tuple[str, str | None]]) -> tuple[float, dict]:
    """Macro F1 over the true categories of (truth, predicted or None) pairs, and per category."""
    per = {}
    for c in sorted({t for t, _g in pairs}):
        tp = sum(1 for t, g in pairs if t == c and g == c)
        fp = sum(1 for t, g in pairs if t != c and g == c)
        fn = sum(1 for t, g in pairs if t == c and g != c)
        p, r = tp / max(tp + fp, 1), tp / max(tp + fn, 1)
        per[c] = round(2 * p * r / (p + r), 3) if p + r else 0.0
    return round(sum(per.values()) / len(per), 3), per


def wenzheng() -> dict:
    path = DATA / "complaints/tipdm2020_wenzheng/attachment2_sample_labeled_messages.csv"
    with path.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    rules = load_rules([REPO / "bench" / "rules" / "wenzheng.toml"])
    matcher = Matcher(rules)

    def substring(title: str, body: str) -> str | None:
        text = f"{title}\n{body}"
        return next((r.category for r in rules if any(getattr(t, "term", t) in text for t in r.terms)), None)

    out = {}
    for half, parity in (("tune", 0), ("held_out", 1)):
        part = [r for r in rows if int(r["留言编号"]) % 2 == parity]
        ours, base = [], []
        for r in part:
            hits = matcher.match(r["留言主题"], r["留言详情"])
            ours.append((r["一级分类"], hits[0].rule.category if hits else None))
            base.append((r["一级分类"], substring(r["留言主题"], r["留言详情"])))
        f1, per = macro_f1(ours)
        base_f1, _ = macro_f1(base)
        print(f"问政 {half:<8} {len(part)} messages: rules macro F1 {f1:.3f}, substring {base_f1:.3f}; "
              + ", ".join(f"{c} {v:.2f}" for c, v in per.items()))
        out[half] = {"messages": len(part), "macro_f1": f1, "substring_macro_f1": base_f1}
    return out


if __name__ == "__main__":
    main()
