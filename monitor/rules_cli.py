"""`monitor rules test | check | dry-run`: for the people who maintain watchword lists."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

from sqlalchemy import select

from monitor.app import rule_specs
from monitor.clock import SystemClock, parse_duration, show, to_db
from monitor.config import ConfigError, expand_rule_paths, load, load_rules
from monitor.matching.matcher import Matcher

FIELD_NAMES = {"title": "标题", "body": "正文"}


def _rules(args):
    if args.rules:
        paths = expand_rule_paths([Path(args.rules).resolve()])
        return paths, load_rules(paths)
    cfg = load(args.config)
    return cfg.rule_paths, cfg.rules


def test(args) -> int:
    _paths, rules = _rules(args)
    matcher = Matcher(rule_specs(rules))
    for name, text in (("标题", args.title), ("正文", args.text)):
        if text:
            print(f"{name}分词：{' / '.join(matcher.segmentation(text))}")
    verdicts = {v.rule.name: v for v in matcher.evaluate(args.title, args.text, every_rule=True)}
    matched = [v for v in verdicts.values() if v.matched]
    print(f"命中 {len(matched)} 条规则：{'、'.join(v.rule.name for v in matched) or '无'}")
    for rule in rules:
        v = verdicts[rule.name]
        mark = "✔ 命中" if v.matched else "✘ 不命中"
        print(f"\n【{rule.name}】{mark}（{rule.severity}，{rule.department or '—'}）")
        for h in v.hits:
            alias = f"（写作「{h.matched}」）" if h.matched != h.term else ""
            print(f"  · 关键词「{h.term}」{alias}：{FIELD_NAMES[h.field]}第 {h.start + 1}–{h.end} 字")
        for h in v.rejected:
            print(f"  · 「{h.term}」在{FIELD_NAMES[h.field]}第 {h.start + 1}–{h.end} 字不算：{h.reason}")
        for check in v.checks:
            print(f"  · {check}")
    return 0 if matched else 1


def check(args) -> int:
    try:
        paths, rules = _rules(args)
    except ConfigError as e:
        print("规则有误：", file=sys.stderr)
        for problem in e.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    matcher = Matcher(rule_specs(rules))
    warnings = []
    seen: dict[str, str] = {}
    for rule in rules:
        words: list[tuple[str, str]] = []
        for t in rule.terms:
            if isinstance(t, str):
                words.append((t, rule.boundary))
            else:
                words.extend((w, t.boundary or rule.boundary) for w in (t.term, *t.aliases))
        for word, boundary in words:
            if boundary != "none":
                parts = [p for p in matcher.segmentation(word) if p.strip("·- ")]
                if len(parts) > 1:
                    warnings.append(f"「{rule.name}」的「{word}」单独分词为 {' / '.join(parts)}：jieba 仍会切开它，"
                                    f"按 word 边界可能漏判；可改用 boundary = \"none\"")
            if len(word) == 1 and boundary == "word":
                warnings.append(f"「{rule.name}」的单字词「{word}」会在很多词中出现：建议 boundary = \"token\" 或配合 all/near")
            if seen.setdefault(word, rule.name) != rule.name:
                warnings.append(f"「{word}」同时出现在规则「{seen[word]}」和「{rule.name}」中")
    print(f"规则有效：{len(rules)} 条，来自 {len(paths)} 个文件")
    for path in paths:
        print(f"  {path}")
    for w in warnings:
        print(f"  提示：{w}")
    return 0


def dry_run(args) -> int:
    from monitor.store import db
    from monitor.store.models import Match, Post

    cfg = load(args.config)
    try:
        since = parse_duration(args.since)
    except ValueError as e:
        print(f"--since 无法识别：{e}", file=sys.stderr)
        return 2
    paths, rules = _rules(args) if args.rules else (cfg.rule_paths, cfg.rules)
    engine = db.make_engine(args.database or cfg.database_url(), cfg.main.database.busy_timeout.total_seconds())
    db.upgrade(engine)
    sessions = db.session_factory(engine)
    start = SystemClock().now() - since
    matcher = Matcher(rule_specs(rules))
    active: Counter = Counter()
    new: Counter = Counter()
    gained: dict[str, list[str]] = {}
    lost: dict[str, list[str]] = {}
    posts = 0
    with sessions() as session:
        stored: dict[int, set[str]] = {}
        for post_id, rule in session.execute(
            select(Match.post_id, Match.rule).join(Post, Post.id == Match.post_id).where(Post.fetched_at >= to_db(start))
        ):
            stored.setdefault(post_id, set()).add(rule)
        for post in session.execute(
            select(Post.id, Post.title, Post.body).where(Post.fetched_at >= to_db(start), Post.processed_at.is_not(None))
        ).yield_per(1000):
            posts += 1
            now_rules = {m.rule.name for m in matcher.match(post.title or "", post.body or "")}
            before = stored.get(post.id, set())
            active.update(before)
            new.update(now_rules)
            label = (post.title or post.body or "")[:40]
            for name in now_rules - before:
                gained.setdefault(name, []).append(label)
            for name in before - now_rules:
                lost.setdefault(name, []).append(label)
    print(f"试运行：{show(start)} 以来已处理的帖文 {posts} 条；新规则来自 {', '.join(map(str, paths))}")
    names = list(dict.fromkeys([r.name for r in rules] + sorted(active)))
    print(f"{'规则':<16}{'现行规则':>8}{'新规则':>8}{'变化':>8}")
    for name in names:
        delta = new[name] - active[name]
        print(f"{name:<16}{active[name]:>8}{new[name]:>8}{delta:>+8}")
        for label in gained.get(name, [])[:3]:
            print(f"    + {label}")
        for label in lost.get(name, [])[:3]:
            print(f"    − {label}")
    engine.dispose()
    return 0
