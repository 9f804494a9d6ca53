"""`monitor report …` and `monitor replay`: figures for a period, and the pipeline over
recorded posts under a simulated clock."""

from __future__ import annotations

import sys
from pathlib import Path

from monitor.cli.common import command, group, open_db
from monitor.clock import SystemClock, parse_iso
from monitor.config import load
from monitor.reports.period import FLAGS, NAMES

EXAMPLES = {"weekly": "2026-W47", "monthly": "2026-11", "quarterly": "2026-Q4", "annual": "2026"}
PERIOD_WORD = {"weekly": "自然周", "monthly": "月", "quarterly": "季度", "annual": "年度"}


def register(sub) -> None:
    rs = group(sub, "report", "统计报告", "report_command")
    for kind, example in EXAMPLES.items():
        name, flag = NAMES[kind], FLAGS[kind]
        q = command(rs, kind, f"生成舆情回应{name}（默认上一个完整的{PERIOD_WORD[kind]}）", _report, database=True)
        q.set_defaults(report_kind=kind)
        when = q.add_mutually_exclusive_group()
        when.add_argument(f"--{flag}", dest="label", metavar=flag.upper(), help=f"{PERIOD_WORD[kind]}，如 {example}（北京时间）")
        when.add_argument("--from", dest="date_from", metavar="DATE", help="起始日期 YYYY-MM-DD（与 --to 同用）")
        q.add_argument("--to", dest="date_to", metavar="DATE", help="结束日期 YYYY-MM-DD（含当日）")
        q.add_argument("--format", default="xlsx,docx,html,csv", help="输出格式，逗号分隔：xlsx,docx,html,csv")
        q.add_argument("--out", default=".", help="输出目录（默认当前目录）")

    p = command(sub, "replay", "以模拟时钟回放历史帖文，检验规则与提醒", _replay, database=True)
    p.add_argument("--watchwords", help="关键词规则文件（默认取配置文件中的 watchwords）")
    p.add_argument("--posts", required=True, help="帖文 JSONL")
    p.add_argument("--actions", help="处置动作 JSONL")
    p.add_argument("--until", help="模拟到此时刻（ISO 8601；默认最后一个事件后 72 小时）")
    p.add_argument("--dry-run", action="store_true", help="只记录告警，不发送")
    p.add_argument("--out", required=True, help="结果 JSON 文件")


def _report(args) -> int:
    from monitor.reports.period import PARSERS, date_range, last_complete
    from monitor.reports.render import FORMATS
    from monitor.reports.weekly import make_report

    formats = [f.strip().lower() for f in args.format.split(",") if f.strip()]
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        print(f"--format 取值无效：{','.join(unknown) or '（空）'}，应为 {','.join(FORMATS)} 中的一个或多个", file=sys.stderr)
        return 2
    now = SystemClock().now()
    try:
        if args.label:
            period = PARSERS[args.report_kind](args.label)
        elif args.date_from or args.date_to:
            if not (args.date_from and args.date_to):
                raise ValueError("--from 与 --to 需同时给出")
            period = date_range(args.date_from, args.date_to)
        else:
            period = last_complete(args.report_kind, now)
    except ValueError as e:
        print(f"统计期间有误：{e}", file=sys.stderr)
        return 2
    cfg, _engine_, sessions = open_db(args)
    report, paths = make_report(sessions, cfg.main, period, now, formats, Path(args.out))
    print(f"{period.name} {period.label}（{period.title}）：")
    for line in report.headline:
        print(f"  {line}")
    if report.font_note:
        print(f"  注意：{report.font_note}")
    print("已生成：")
    for path in paths:
        print(f"  {path}")
    return 0


def _replay(args) -> int:
    from monitor.replay import ReplayInputError, dumps, read_actions, read_posts, replay

    cfg = load(args.config, args.watchwords)
    try:
        posts = read_posts(Path(args.posts))
        actions = read_actions(Path(args.actions)) if args.actions else []
        until = parse_iso(args.until) if args.until else None
    except ReplayInputError as e:
        print(f"回放输入有误：{e}", file=sys.stderr)
        return 2
    except ValueError as e:
        print(f"--until 无法识别：{e}", file=sys.stderr)
        return 2
    result = replay(cfg, posts, actions, until=until, dry_run=args.dry_run, database_url=args.database)
    Path(args.out).write_text(dumps(result), encoding="utf-8")
    steps = sum(len(i["steps"]) for i in result["incidents"])
    print(f"回放完成：帖文 {len(posts)} 条，事件 {len(result['incidents'])} 个，提醒/升级 {steps} 次，告警 {len(result['alerts'])} 条 → {args.out}")
    for err in result.get("errors", []):
        print(f"  动作未执行：{err}", file=sys.stderr)
    return 0
