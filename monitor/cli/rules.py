"""`monitor rules test | check | dry-run`: for the people who maintain watchword lists.

The matcher (jieba and all) is imported by the commands that use it, not by `monitor --help`."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

from monitor.cli.common import command, group, open_db
from monitor.clock import SystemClock, parse_duration, show
from monitor.config import ConfigError, expand_rule_paths, load, load_rules

def register(sub) -> None:
    rl = group(sub, "rules", "关键词规则：试匹配、校验、对历史帖文试运行", "rules_command")
    q = command(rl, "test", "显示一段文字的分词结果和每条规则的判断及理由", test)
    q.add_argument("text", help="正文")
    q.add_argument("--title", default="", help="标题（可选）")
    q.add_argument("--rules", help="规则文件或目录（默认取配置）")
    q = command(rl, "check", "校验规则文件（指出文件和行号），并提示 jieba 仍会切开的词", check, database=True)
    q.add_argument("--rules", help="规则文件或目录（默认取配置）")
    q.add_argument("--sample", help="样本文件（每行一段文字，或每行一个含 title/body 的 JSON）：检查关键词在真实语境中是否被切开")
    q.add_argument("--since", help="同时用最近这段时间入库的帖文检查，如 7d")
    q = command(rl, "dry-run", "用新规则重跑已入库的帖文，与现行规则的匹配结果逐条对比", dry_run, database=True)
    q.add_argument("--since", default="7d", help="最近多长时间的帖文（默认 7d）")
    q.add_argument("--rules", help="新规则文件或目录（默认取配置中的文件，即编辑后的当前内容）")


FIELD_NAMES = {"title": "标题", "body": "正文"}


def _rules(args):
    if args.rules:
        paths = expand_rule_paths([Path(args.rules).resolve()])
        return paths, load_rules(paths)
    cfg = load(args.config)
    return cfg.rule_paths, cfg.rules


def test(args) -> int:
    from monitor.matching.matcher import Matcher

    _paths, rules = _rules(args)
    matcher = Matcher(rules)
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
    from monitor.matching.matcher import Matcher
    from monitor.matching.normalize import normalize

    try:
        paths, rules = _rules(args)
    except ConfigError as e:
        print("规则有误：", file=sys.stderr)
        for problem in e.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    matcher = Matcher(rules)
    warnings = []
    seen: dict[str, str] = {}
    for rule in rules:
        words: list[tuple[str, str]] = []
        for t in rule.terms:
            if isinstance(t, str):
                words.append((t, rule.boundary))
            else:
                words.extend((w, t.boundary or rule.boundary) for w in (t.term, *t.aliases))
        keys: dict[str, str] = {}
        for t in rule.terms:
            term = t if isinstance(t, str) else t.term
            for alias in ([] if isinstance(t, str) else t.aliases):
                if normalize(alias) == normalize(term):
                    warnings.append(f"「{rule.name}」中别名「{alias}」与词条「{term}」归一后相同（繁简、全半角或异体字已自动统一）："
                                    f"不必再写，写了也只算一次命中")
        for t in rule.terms:
            term = t if isinstance(t, str) else t.term
            key = normalize(term)
            if key in keys:
                same = "" if keys[key] == term else f"（与「{keys[key]}」归一后相同）"
                warnings.append(f"「{rule.name}」的 terms 中「{term}」重复出现{same}")
            keys.setdefault(key, term)
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
    texts = _sample_texts(args)
    if texts:
        warnings += _cut_in_context(matcher, rules, texts)
    print(f"规则有效：{len(rules)} 条，来自 {len(paths)} 个文件")
    for path in paths:
        print(f"  {path}")
    if texts:
        print(f"  已用 {len(texts)} 条真实文本检查 jieba 是否会切开关键词")
    for w in dict.fromkeys(warnings):
        print(f"  提示：{w}")
    return 0


def _sample_texts(args) -> list[tuple[str, str]]:
    """(title, body) pairs: lines (or JSON lines with title/body) of --sample, and stored posts
    of the last --since."""
    import json

    out: list[tuple[str, str]] = []
    if getattr(args, "sample", None):
        for line in Path(args.sample).read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if not line:
                continue
            try:
                item = json.loads(line)
                if isinstance(item, dict):
                    out.append((str(item.get("title") or ""), str(item.get("body") or item.get("text") or "")))
                    continue
            except ValueError:
                pass
            out.append(("", line))
    if getattr(args, "since", None):
        from sqlalchemy import select

        from monitor.clock import SystemClock
        from monitor.store.models import Post

        _cfg, engine, sessions = open_db(args)  # the daemon's store; never a new, empty one
        since = SystemClock().now() - parse_duration(args.since)
        with sessions() as session:
            out += [(t or "", b or "") for t, b in session.execute(
                select(Post.title, Post.body).where(Post.fetched_at >= since).order_by(Post.id.desc()).limit(20000))]
        engine.dispose()
    return out


def _cut_in_context(matcher, rules, texts) -> list[str]:
    """Terms that occur in real text but that jieba cuts across there (群租 in 群租房): under
    the word boundary those occurrences never count."""
    seen: dict[tuple[str, str], list[int]] = {}
    examples: dict[tuple[str, str], str] = {}
    for title, body in texts:
        for v in matcher.evaluate(title, body, every_rule=True):
            for h in dict.fromkeys(v.hits):
                seen.setdefault((v.rule.name, h.term), [0, 0])[0] += 1
            for h in dict.fromkeys(v.rejected):
                if h.reason in ("跨词", "非完整词"):
                    key = (v.rule.name, h.term)
                    seen.setdefault(key, [0, 0])[1] += 1
                    text = title if h.field == "title" else body
                    examples.setdefault(key, text[max(0, h.start - 4):h.end + 4])
    out = []
    for (rule, term), (kept, cut) in seen.items():
        if cut:
            out.append(f"「{rule}」的「{term}」在样本中有 {cut} 处被 jieba 切开而不算（如「{examples[(rule, term)]}」），"
                       f"成立 {kept} 处：可改用 boundary = \"none\"，或把切开处的整词加为别名")
    return out


def dry_run(args) -> int:
    from sqlalchemy import select

    from monitor.matching.matcher import Matcher
    from monitor.store.models import Match, Post

    try:
        since = parse_duration(args.since)
    except ValueError as e:
        print(f"--since 无法识别：{e}", file=sys.stderr)
        return 2
    cfg, engine, sessions = open_db(args)  # the daemon's store; never a new, empty one
    paths, rules = _rules(args) if args.rules else (cfg.rule_paths, cfg.rules)
    start = SystemClock().now() - since
    matcher = Matcher(rules)
    active: Counter = Counter()
    new: Counter = Counter()
    gained: dict[str, list[str]] = {}
    lost: dict[str, list[str]] = {}
    posts = 0
    with sessions() as session:
        stored: dict[int, set[str]] = {}
        for post_id, rule in session.execute(
            select(Match.post_id, Match.rule).join(Post, Post.id == Match.post_id).where(Post.fetched_at >= start)
        ):
            stored.setdefault(post_id, set()).add(rule)
        for post in session.execute(
            select(Post.id, Post.title, Post.body).where(Post.fetched_at >= start, Post.processed_at.is_not(None))
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
