"""Watchword precision on real labelled posts: the 福州 12345 黑臭 set.

317 real complaints that a keyword search for 黑臭 returned, labelled relevant to black,
smelly water bodies (261) or not (56). Raw keyword matching takes all of them:
precision 0.82 at recall 1.0. This runs the rule in bench/rules/heichou.toml (its comments
say how it is written) through the project's rule engine and prints precision and recall.

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

from monitor.app import rule_specs  # noqa: E402
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
    matcher = Matcher(rule_specs(load_rules([Path(args.rules)])))
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
    print(json.dumps({"precision": round(precision, 3), "recall": round(recall, 3)}))


if __name__ == "__main__":
    main()
