"""The `monitor` command. Messages are for people on duty: Simplified Chinese."""

from __future__ import annotations

import argparse
from collections import Counter
import getpass
import json
import os
import re
import sys
from datetime import datetime
from pathlib import Path

from monitor import secrets
from monitor.clock import SystemClock, from_db, parse_iso, show, show_delta, show_due
from monitor.config import ConfigError, load

DEFAULT_CONFIG = "/etc/monitor/monitor.toml"


def _config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        default=os.environ.get("MONITOR_CONFIG", DEFAULT_CONFIG),
        help=f"配置文件（默认 $MONITOR_CONFIG 或 {DEFAULT_CONFIG}）",
    )


def _db_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--database", help="数据库 URL（默认取配置文件）")


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="monitor", description="舆情回应监测：采集、研判、时限提醒与升级")
    sub = root.add_subparsers(dest="command", required=True, metavar="命令")

    p = sub.add_parser("run", help="运行监测守护进程")
    _config_arg(p)

    p = sub.add_parser("check-config", help="只校验配置，不运行（与 run 启动时的检查相同，含数据库连接）")
    _config_arg(p)
    p.add_argument("--watchwords", help="关键词规则文件（默认取配置文件中的 watchwords）")
    p.add_argument("--offline", action="store_true", help="不连接数据库（如在另一台机器上检查配置）")

    p = sub.add_parser("db", help="数据库维护")
    dbs = p.add_subparsers(dest="db_command", required=True, metavar="子命令")
    q = dbs.add_parser("upgrade", help="执行数据库迁移到最新版本")
    _config_arg(q)
    _db_arg(q)

    p = sub.add_parser("sources", help="数据来源")
    ss = p.add_subparsers(dest="sources_command", required=True, metavar="子命令")
    q = ss.add_parser("list", help="列出来源及其状态、最近错误")
    _config_arg(q)
    _db_arg(q)
    q = ss.add_parser("test", help="抓取一次并显示将提取的内容（不写入数据库）")
    q.add_argument("name", help="来源名称")
    q.add_argument("--limit", type=int, default=10, help="最多显示几条（默认 10）")
    _config_arg(q)
    q = ss.add_parser("import-opml", help="把 OPML 订阅列表转换为 [[source]] 配置")
    q.add_argument("file", help="OPML 文件")
    q.add_argument("--out", help="写入此文件（不存在时新建；再在配置中加 source_files = [\"文件名\"]）；默认打印到终端")
    q.add_argument("--interval", default="10m", help="抓取间隔（默认 10m）")
    _config_arg(q)

    p = sub.add_parser("posts", help="帖文：处理失败而被搁置的帖文")
    ps = p.add_subparsers(dest="posts_command", required=True, metavar="子命令")
    q = ps.add_parser("failed", help="列出多次处理失败、已搁置的帖文及其错误")
    q.add_argument("--limit", type=int, default=50, help="最多列出几条（默认 50）")
    _config_arg(q)
    _db_arg(q)
    q = ps.add_parser("retry", help="把搁置的帖文放回待处理（守护进程会在几秒内重新处理）")
    q.add_argument("ids", nargs="+", type=int, help="帖文编号（monitor posts failed 中的 #）")
    _config_arg(q)
    _db_arg(q)

    p = sub.add_parser("incidents", help="舆情事件：查看与处置")
    inc = p.add_subparsers(dest="incidents_command", required=True, metavar="子命令")
    q = inc.add_parser("list", help="列出事件（默认未关闭的）")
    q.add_argument("--all", action="store_true", help="包括已关闭的事件")
    for name, help_text in (("show", "查看事件详情与时间线"), ("ack", "确认收到"), ("close", "关闭事件")):
        q2 = inc.add_parser(name, help=help_text)
        q2.add_argument("id", type=int)
        if name != "show":
            q2.add_argument("--actor", default=None, help="操作人（默认当前系统用户）")
        _config_arg(q2)
        _db_arg(q2)
    q2 = inc.add_parser("met", help="登记某一时限已完成回应")
    q2.add_argument("id", type=int)
    q2.add_argument("clock", help="时限名称，如 发布权威信息")
    q2.add_argument("--evidence", help="回应的链接或说明")
    q2.add_argument("--actor", default=None)
    _config_arg(q2)
    _db_arg(q2)
    q2 = inc.add_parser("merge", help="把事件 B 并入事件 A（同一真实事件被分成了两个）")
    q2.add_argument("id", type=int, help="保留的事件 A")
    q2.add_argument("other", type=int, help="并入并关闭的事件 B")
    q2.add_argument("--actor", default=None)
    _config_arg(q2)
    _db_arg(q2)
    q2 = inc.add_parser("split", help="把若干帖文从事件中拆出，成为新事件")
    q2.add_argument("id", type=int)
    q2.add_argument("posts", nargs="+", help="帖文 id（来源中的 id 或数据库编号）")
    q2.add_argument("--actor", default=None)
    _config_arg(q2)
    _db_arg(q2)
    q2 = inc.add_parser("regrade", help="调整事件级别并重算时限")
    q2.add_argument("id", type=int)
    q2.add_argument("level", help="特别重大 | 重大 | 较大 | 一般")
    q2.add_argument("--actor", default=None)
    _config_arg(q2)
    _db_arg(q2)
    _config_arg(q)
    _db_arg(q)

    p = sub.add_parser("rules", help="关键词规则：试匹配、校验、对历史帖文试运行")
    rl = p.add_subparsers(dest="rules_command", required=True, metavar="子命令")
    q = rl.add_parser("test", help="显示一段文字的分词结果和每条规则的判断及理由")
    q.add_argument("text", help="正文")
    q.add_argument("--title", default="", help="标题（可选）")
    q.add_argument("--rules", help="规则文件或目录（默认取配置）")
    _config_arg(q)
    q = rl.add_parser("check", help="校验规则文件（指出文件和行号），并提示 jieba 仍会切开的词")
    q.add_argument("--rules", help="规则文件或目录（默认取配置）")
    q.add_argument("--sample", help="样本文件（每行一段文字，或每行一个含 title/body 的 JSON）：检查关键词在真实语境中是否被切开")
    q.add_argument("--since", help="同时用最近这段时间入库的帖文检查，如 7d")
    _config_arg(q)
    _db_arg(q)
    q = rl.add_parser("dry-run", help="用新规则重跑已入库的帖文，与现行规则的匹配结果逐条对比")
    q.add_argument("--since", default="7d", help="最近多长时间的帖文（默认 7d）")
    q.add_argument("--rules", help="新规则文件或目录（默认取配置中的文件，即编辑后的当前内容）")
    _config_arg(q)
    _db_arg(q)

    p = sub.add_parser("alerts", help="告警：发了什么、发给谁、何时、是否送达")
    al = p.add_subparsers(dest="alerts_command", required=True, metavar="子命令")
    q = al.add_parser("list", help="最近的告警及其投递状态")
    q.add_argument("--limit", type=int, default=30, help="最多列出几条（默认 30）")
    q.add_argument("--incident", type=int, help="只看某个事件的告警")
    q.add_argument("--failed", action="store_true", help="只看未送达的")
    _config_arg(q)
    _db_arg(q)
    q = al.add_parser("show", help="一条告警的全文、每个投递目标与每次尝试")
    q.add_argument("id", type=int)
    _config_arg(q)
    _db_arg(q)

    p = sub.add_parser("roster", help="值班表：谁在值班、谁会收到哪一级告警")
    ro = p.add_subparsers(dest="roster_command", required=True, metavar="子命令")
    q = ro.add_parser("now", help="现在的值班安排")
    _config_arg(q)
    q = ro.add_parser("at", help="某一时刻的值班安排")
    q.add_argument("time", help="时间，如 2026-10-01T20:00（北京时间）或带时区的 ISO 8601")
    _config_arg(q)

    p = sub.add_parser("report", help="统计报告")
    rs = p.add_subparsers(dest="report_command", required=True, metavar="子命令")
    q = rs.add_parser("weekly", help="生成舆情回应周报（默认上一个完整的自然周）")
    when = q.add_mutually_exclusive_group()
    when.add_argument("--week", help="ISO 周次，如 2026-W47（北京时间）")
    when.add_argument("--from", dest="date_from", metavar="DATE", help="起始日期 YYYY-MM-DD（与 --to 同用）")
    q.add_argument("--to", dest="date_to", metavar="DATE", help="结束日期 YYYY-MM-DD（含当日）")
    q.add_argument("--format", default="xlsx,docx,html,csv", help="输出格式，逗号分隔：xlsx,docx,html,csv")
    q.add_argument("--out", default=".", help="输出目录（默认当前目录）")
    _config_arg(q)
    _db_arg(q)

    p = sub.add_parser("replay", help="以模拟时钟回放历史帖文，检验规则与提醒")
    _config_arg(p)
    p.add_argument("--watchwords", help="关键词规则文件（默认取配置文件中的 watchwords）")
    p.add_argument("--posts", required=True, help="帖文 JSONL")
    p.add_argument("--actions", help="处置动作 JSONL")
    p.add_argument("--until", help="模拟到此时刻（ISO 8601；默认最后一个事件后 72 小时）")
    p.add_argument("--dry-run", action="store_true", help="只记录告警，不发送")
    p.add_argument("--out", required=True, help="结果 JSON 文件")
    _db_arg(p)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return _dispatch(args)
    except ConfigError as e:
        print("配置有误：", file=sys.stderr)
        for problem in e.problems:
            print(f"  {secrets.redact(problem)}", file=sys.stderr)
        return 2
    except NoDatabase as e:
        print(str(e), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `monitor alerts list | head`: the reader has gone, not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as e:
        print(f"无法读取或写入文件：{secrets.redact(str(e))}", file=sys.stderr)
        return 1
    except Exception as e:
        from sqlalchemy.exc import OperationalError

        if isinstance(e, OperationalError):
            from monitor.store.faults import detail

            print(f"无法连接或访问数据库：{detail(e)}", file=sys.stderr)
            return 1
        raise


def _dispatch(args) -> int:
    if args.command == "run":
        from monitor.daemon import run

        return run(load(args.config))
    if args.command == "check-config":
        return _check_config(args)
    if args.command == "db":
        return _db_upgrade(args)
    if args.command == "sources":
        if args.sources_command == "test":
            return _sources_test(args)
        if args.sources_command == "import-opml":
            return _sources_import_opml(args)
        return _sources_list(args)
    if args.command == "posts":
        return _posts(args)
    if args.command == "incidents":
        return _incidents(args)
    if args.command == "replay":
        return _replay(args)
    if args.command == "report":
        return _report_weekly(args)
    if args.command == "roster":
        return _roster(args)
    if args.command == "alerts":
        return _alerts(args)
    if args.command == "rules":
        from monitor import rules_cli

        return {"test": rules_cli.test, "check": rules_cli.check, "dry-run": rules_cli.dry_run}[args.rules_command](args)
    return 2


DELIVERY = {"pending": "待发送", "sending": "发送中", "sent": "已送达", "failed": "已放弃", "digest": "已并入汇总", "dropped": "已回应，未发送"}
DISPOSITION = {"superseded": "已被后续提醒取代，未发送", "dry_run": "演练，未发送"}


def _alerts(args) -> int:
    from sqlalchemy import select

    from monitor.store.models import DeliveryAttempt, Notification, Outbox

    _cfg, _engine_, sessions = _engine(args)
    with sessions() as session:
        if args.alerts_command == "show":
            note = session.get(Notification, args.id)
            if note is None:
                print(f"告警 {args.id} 不存在", file=sys.stderr)
                return 1
            about = f"事件 #{note.incident_id}" if note.incident_id else "系统"
            print(f"告警 {note.id}（{about}，{note.kind}，第 {note.tier + 1} 级）：{note.title}")
            print(f"  计划 {show(from_db(note.scheduled_at))}　发出 {show(from_db(note.fired_at))}　标签 {', '.join(note.tags)}")
            if note.disposition != "sent":
                print(f"  {DISPOSITION.get(note.disposition, note.disposition)}")
            print("  正文：")
            for line in note.body.splitlines():
                print(f"    {line}")
            for row in session.scalars(select(Outbox).where(Outbox.notification_id == note.id).order_by(Outbox.id)):
                print(f"  → {row.target_display}（{row.tag}）：{DELIVERY.get(row.state, row.state)}，尝试 {row.attempts} 次"
                      + (f"，送达 {show(from_db(row.sent_at))}" if row.sent_at else ""))
                for attempt in session.scalars(select(DeliveryAttempt).where(DeliveryAttempt.outbox_id == row.id).order_by(DeliveryAttempt.id)):
                    print(f"      {show(from_db(attempt.at))} {'成功' if attempt.ok else '失败：' + (attempt.error or '')}")
            return 0
        q = select(Notification).order_by(Notification.fired_at.desc(), Notification.id.desc()).limit(args.limit)
        if args.incident:
            q = q.where(Notification.incident_id == args.incident)
        notes = session.scalars(q).all()
        if not notes:
            print("没有告警")
            return 0
        for note in notes:
            rows = session.scalars(select(Outbox).where(Outbox.notification_id == note.id)).all()
            if args.failed and all(r.state in ("sent", "digest", "dropped") for r in rows):
                continue
            states = Counter(DELIVERY.get(r.state, r.state) for r in rows)
            summary = "、".join(f"{k} {v}" for k, v in states.items()) or DISPOSITION.get(note.disposition, "无投递目标")
            print(f"{note.id:>5}  {show(from_db(note.fired_at))}  {note.title}")
            print(f"       → {', '.join(note.tags)}：{summary}")
    return 0


def _roster(args) -> int:
    from monitor.alerts.roster import next_shift_start, on_duty, recipients, shifts_on_duty

    cfg = load(args.config)
    main = cfg.main
    if args.roster_command == "now":
        at = SystemClock().now()
    else:
        try:
            at = parse_iso(args.time)
        except ValueError:
            print(f"无法识别的时间：{args.time}（应为如 2026-10-01T20:00）", file=sys.stderr)
            return 2
    print(f"值班安排：{show(at)}（北京时间）")
    departments = sorted({d for s in main.shift for d in s.departments})
    for index, tier in enumerate(main.tier):
        for department in ["", *departments]:
            shifts = shifts_on_duty(main, tier.name, department, at)
            if department and not any(department in s.departments for s in shifts):
                continue  # this department has no shift of its own for this tier now
            people = on_duty(main, tier.name, department, at)
            scope = f"（{department}）" if department else ""
            who = "、".join(p.name for p in people) if people else "无人排班，发给该级默认地址"
            shift_names = "、".join(s.name or f"{s.start}–{s.end}" for s in shifts)
            print(f"  第 {index + 1} 级 {tier.name}{scope}：{who}" + (f"（{shift_names}）" if shift_names else ""))
            print(f"      告警标签：{', '.join(recipients(main, index, department, at))}")
    upcoming = next_shift_start(main, at, main.tier[0].name) if main.shift else None
    if upcoming:
        print(f"下次交接班：{show(upcoming)}")
    return 0


def _report_weekly(args) -> int:
    from monitor.reports.period import date_range, iso_week, last_complete_week
    from monitor.reports.render import FORMATS
    from monitor.reports.weekly import make_report

    formats = [f.strip().lower() for f in args.format.split(",") if f.strip()]
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        print(f"--format 取值无效：{','.join(unknown) or '（空）'}，应为 {','.join(FORMATS)} 中的一个或多个", file=sys.stderr)
        return 2
    now = SystemClock().now()
    try:
        if args.week:
            period = iso_week(args.week)
        elif args.date_from or args.date_to:
            if not (args.date_from and args.date_to):
                raise ValueError("--from 与 --to 需同时给出")
            period = date_range(args.date_from, args.date_to)
        else:
            period = last_complete_week(now)
    except ValueError as e:
        print(f"统计期间有误：{e}", file=sys.stderr)
        return 2
    cfg, _engine_, sessions = _engine(args)
    report, paths = make_report(sessions, cfg.main, period, now, formats, Path(args.out))
    print(f"舆情回应周报 {period.label}（{period.title}）：")
    for line in report.headline:
        print(f"  {line}")
    if report.font_note:
        print(f"  注意：{report.font_note}")
    print("已生成：")
    for path in paths:
        print(f"  {path}")
    return 0


def _check_config(args) -> int:
    from monitor.app import load_channels

    from monitor.store.db import check_reachable, safe_url

    cfg = load(args.config, args.watchwords)
    problems = []
    try:
        load_channels(cfg)
    except ConfigError as e:
        problems += e.problems
    try:
        url = cfg.database_url()
        why = None if args.offline else check_reachable(url)
        if why:
            problems.append(f"{cfg.path}: [database] {why}")
    except ConfigError as e:
        problems += e.problems
    if problems:
        raise ConfigError(problems)
    terms = sum(len(r.terms) for r in cfg.rules)
    print(f"配置有效：{cfg.path}")
    print(f"  数据库：{safe_url(url)}{'（未连接检查：--offline）' if args.offline else ''}")
    print(f"  规则 {len(cfg.rules)} 条（关键词 {terms} 个），来源 {len(cfg.main.source)} 个，时限 {len(cfg.main.clock)} 种，值班梯队 {len(cfg.main.tier)} 级")
    for clock in cfg.main.clock:
        limit = f"{clock.working_days} 个工作日内" if clock.working_days else f"{clock.within.total_seconds() / 3600:g} 小时内"
        scope = "，".join(filter(None, ["规则：" + "、".join(clock.rules) if clock.rules else "",
                                        "分类：" + "、".join(clock.categories) if clock.categories else "",
                                        "不含规则：" + "、".join(clock.exclude_rules) if clock.exclude_rules else "",
                                        "不含分类：" + "、".join(clock.exclude_categories) if clock.exclude_categories else ""]))
        print(f"  · {clock.name}：{'、'.join(clock.severities)}{'（' + scope + '）' if scope else ''}，{limit}")
    return 0


class NoDatabase(Exception):
    pass


def _engine(args, create: bool = False):
    """The daemon's database. An officer's command never creates one: a SQLite file that is not
    there means this is not where the daemon keeps it (another state directory)."""
    from sqlalchemy.engine import make_url

    from monitor.store import db

    cfg = load(args.config)
    url = args.database or cfg.database_url()
    parsed = make_url(url)
    if not create and parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:") \
            and not parsed.database.startswith("file:") and not Path(parsed.database).exists():
        raise NoDatabase(
            f"找不到数据库 {parsed.database}：守护进程没有在这里保存数据。"
            "systemd 服务的数据库在其状态目录（默认 /var/lib/monitor）：请以 STATE_DIRECTORY=/var/lib/monitor 运行，"
            "或用 --database sqlite:////var/lib/monitor/monitor.db 指定；要新建数据库请用 monitor db upgrade。"
        )
    engine = db.make_engine(url, cfg.main.database.busy_timeout.total_seconds())
    db.upgrade(engine)
    return cfg, engine, db.session_factory(engine)


def _db_upgrade(args) -> int:
    from monitor.store import db

    cfg, engine, _ = _engine(args, create=True)
    print(f"数据库已是最新版本（{db.current_revision(engine)}）：{db.safe_url(args.database or cfg.database_url())}")
    return 0


def _posts(args) -> int:
    from sqlalchemy import func, select, update

    from monitor.store.models import Post, Source

    _cfg, _engine_, sessions = _engine(args)
    failed = Post.process_error.is_not(None)
    if args.posts_command == "retry":
        with sessions.begin() as session:
            known = set(session.scalars(select(Post.id).where(Post.id.in_(args.ids), failed)))
            session.execute(update(Post).where(Post.id.in_(known))
                            .values(processed_at=None, process_error=None, process_attempts=0))
        for post_id in args.ids:
            print(f"帖文 #{post_id}：{'已放回待处理' if post_id in known else '不是搁置的帖文，未改动'}")
        return 0 if len(known) == len(set(args.ids)) else 1
    with sessions() as session:
        total = session.scalar(select(func.count()).select_from(Post).where(failed))
        rows = session.execute(
            select(Post.id, Source.name, Post.external_id, Post.title, Post.body, Post.process_attempts,
                   Post.processed_at, Post.process_error)
            .join(Source, Source.id == Post.source_id).where(failed).order_by(Post.id.desc()).limit(args.limit)
        ).all()
    if not total:
        print("没有搁置的帖文")
        return 0
    print(f"搁置的帖文共 {total} 条{f'（显示最近 {len(rows)} 条）' if total > len(rows) else ''}：")
    for post_id, source, external_id, title, body, attempts, at, error in rows:
        print(f"#{post_id}【{source}】{(title or body or '')[:40]}　（来源 id {external_id}）")
        print(f"    失败 {attempts} 次，{show(from_db(at))} 搁置：{secrets.redact(error or '')[:300]}")
    print("重新处理：monitor posts retry 编号 …")
    return 0


def _sources_list(args) -> int:
    from sqlalchemy import select

    from monitor.store.models import Source

    cfg, _engine_, sessions = _engine(args)
    configured = {s.name for s in cfg.main.source}
    with sessions() as session:
        rows = {r.name: r for r in session.scalars(select(Source).order_by(Source.name))}
    if not configured and not rows:
        print("没有配置任何来源")
    for name in sorted(configured | set(rows)):
        r = rows.get(name)
        flag = "" if name in configured else "（已不在配置中）"
        if r is None:
            print(f"{name}{flag}：尚未抓取")
            continue
        state = "正常" if r.consecutive_failures == 0 else f"失败（连续 {r.consecutive_failures} 次）"
        if r.health_state == "quiet":
            state += f"；沉寂（自 {show(from_db(r.health_since))} 起无新帖文）"
        kind = {"feed": "订阅源", "json": "JSON 留言板", "html": "网页列表"}.get(r.kind, r.kind)
        print(f"{name}{flag}【{kind}】：{state}；帖文 {r.posts_total} 条；最近成功 {show(from_db(r.last_success_at))}；"
              f"最近新帖 {show(from_db(r.last_new_post_at))}；下次 {show(from_db(r.next_poll_at))}")
        print(f"    {r.url}")
        if r.last_error:
            print(f"    最近错误（{show(from_db(r.last_error_at))}）：{r.last_error}")
    return 0


def _sources_test(args) -> int:
    from monitor.sources.feed import ParseError
    from monitor.sources.http import FetchError, make_client
    from monitor.sources.poll import Poller
    from monitor.sources.http import Throttled

    cfg = load(args.config)
    source = next((s for s in cfg.main.source if s.name == args.name), None)
    if source is None:
        names = "、".join(s.name for s in cfg.main.source) or "（无）"
        print(f"没有名为「{args.name}」的来源；已配置：{names}", file=sys.stderr)
        return 2
    clock = SystemClock()
    with make_client(cfg.main.http) as client:
        poller = Poller(sessions=None, client=client, http=cfg.main.http, clock=clock)
        try:
            read = poller.read(source, None, None, None, clock.now())
        except (FetchError, ParseError, Throttled) as e:
            print(f"抓取失败：{secrets.redact(str(e))}", file=sys.stderr)
            return 1
        except Exception as e:  # a parser's bug must still read as a sentence, not a traceback
            print(f"抓取失败：内部错误 {type(e).__name__}: {secrets.redact(str(e))}", file=sys.stderr)
            return 1
    print(f"来源「{source.name}」：提取到 {len(read.posts)} 条（未写入数据库）")
    for post in read.posts[: args.limit]:
        print(f"- [{post.external_id}] {post.title or post.body[:40]}")
        print(f"    发布：{show(post.published_at)}　作者：{post.author or '—'}　链接：{post.url or '—'}")
        if post.replied is not None:
            print(f"    答复：{post.reply_status or ('已答复' if post.replied else '未答复')}{'，' + show(post.reply_at) if post.reply_at else ''}")
        if post.body and post.title:
            print(f"    正文：{post.body[:80]}{'…' if len(post.body) > 80 else ''}")
    for problem in read.problems:
        print(f"  问题：{problem}", file=sys.stderr)
    return 0


def _sources_import_opml(args) -> int:
    from monitor.sources.opml import OpmlError, read_opml, to_toml

    try:
        feeds = read_opml(Path(args.file).read_bytes())
    except OpmlError as e:
        print(f"{args.file}: {e}", file=sys.stderr)
        return 2
    existing_urls, existing_names = set(), set()
    config_path = Path(args.config)
    if config_path.exists():
        cfg = load(config_path)
        existing_urls = {s.url for s in cfg.main.source}
        existing_names = {s.name for s in cfg.main.source}
    fresh, names = [], set(existing_names)
    for name, url in feeds:
        if url in existing_urls:
            continue
        unique, n = name, 2
        while unique in names:
            unique, n = f"{name}（{n}）", n + 1
        names.add(unique)
        fresh.append((unique, url))
    text = to_toml(fresh, args.interval)
    skipped = len(feeds) - len(fresh)
    if args.out:
        out = Path(args.out)
        if out.exists():
            print(f"{out} 已存在，不覆盖；请换一个文件名", file=sys.stderr)
            return 2
        out.write_text("# 由 monitor sources import-opml 生成\n\n" + text, encoding="utf-8")
        print(f"已写入 {len(fresh)} 个来源到 {out}（跳过已配置的 {skipped} 个）；在配置中加入 source_files = [\"{out.name}\"] 后生效")
    else:
        sys.stdout.write(text)
    return 0


STATES = {"open": "待处置", "acknowledged": "已确认", "closed": "已关闭"}


def state_name(inc) -> str:
    return f"已并入 #{inc.merged_into}" if inc.merged_into else STATES.get(inc.state, inc.state)


def _incidents(args) -> int:
    from monitor.incidents.service import ActionError, Alerting, Incidents

    cfg, _engine_, sessions = _engine(args)
    service = Incidents(cfg.main, Alerting(channels=None))
    now = SystemClock().now()
    command = args.incidents_command
    actor = getattr(args, "actor", None) or os.environ.get("SUDO_USER") or getpass.getuser()
    try:
        if command == "list":
            return _incidents_list(sessions, service, now, args.all)
        if command == "show":
            return _incidents_show(sessions, service, args.id, now)
        with sessions.begin() as session:
            if command == "ack":
                service.actions.ack(session, args.id, actor, now)
                print(f"事件 #{args.id} 已确认（{actor}，{show(now)}）")
            elif command == "met":
                incident = service.actions.met(session, args.id, args.clock, actor, now, args.evidence)
                clock = next(c for c in incident.clocks if c.name == args.clock)
                late = now > from_db(clock.due_at)
                print(f"事件 #{args.id}「{args.clock}」已于 {show(now)} 登记完成"
                      f"{'（超时，截止 ' if late else '（按时，截止 '}{show_due(from_db(clock.due_at))}）")
            elif command == "close":
                service.actions.close(session, args.id, actor, now)
                print(f"事件 #{args.id} 已于 {show(now)} 关闭")
            elif command == "merge":
                service.actions.merge(session, args.id, args.other, actor, now)
                print(f"事件 #{args.other} 已并入 #{args.id}（#{args.other} 已关闭）")
            elif command == "split":
                new = service.actions.split(session, args.id, args.posts, actor, now)
                print(f"已从事件 #{args.id} 拆出 {len(args.posts)} 条帖文，成为新事件 #{new.id}")
            elif command == "regrade":
                incident = service.actions.regrade(session, args.id, args.level, actor, now)
                print(f"事件 #{args.id} 级别改为「{args.level}」，时限已重算：")
                for c in service.clock_states(incident):
                    print(f"  · {c.name}：{show_due(c.due_at)} 截止")
    except ActionError as e:
        print(f"无法执行：{e}", file=sys.stderr)
        return 1
    return 0


def _incidents_list(sessions, service, now, include_closed: bool) -> int:
    from sqlalchemy import select

    from monitor.alerts.render import time_left
    from monitor.store.models import Incident

    with sessions() as session:
        q = select(Incident).order_by(Incident.id.desc())
        if not include_closed:
            q = q.where(Incident.state != "closed")
        rows = session.scalars(q).all()
        if not rows:
            print("没有未关闭的事件" if not include_closed else "没有事件")
            return 0
        for inc in rows:
            print(f"#{inc.id}【{inc.severity}】{state_name(inc)} {inc.rule}：{inc.title[:40]}（{inc.department or '—'}，{inc.post_count} 条）")
            for c in service.clock_states(inc):
                if c.met_at:
                    print(f"    {c.name}：已完成 {show(c.met_at)}")
                else:
                    print(f"    {c.name}：{show_due(c.due_at)} 截止，{time_left(c.due_at, now)}")
    return 0


def _print_heat(session, service, inc, now) -> None:
    from sqlalchemy import select

    from monitor.incidents.clocks import clock_start
    from monitor.incidents.heat import curve
    from monitor.store.models import IncidentPost, Post

    heat = service.heat(session, inc, now)
    times = [clock_start(from_db(p), from_db(f)) for p, f in session.execute(
        select(Post.published_at, Post.fetched_at).join(IncidentPost, IncidentPost.post_id == Post.id).where(IncidentPost.incident_id == inc.id))]
    end = now if inc.state != "closed" else max(times, default=now)
    bars, width = curve(times, from_db(inc.started_at), end)
    print(f"  热度：{heat.describe()}")
    print(f"  热度曲线（每格 {show_delta(width)}，{show(from_db(inc.started_at))} 起）：|{bars}|")


EVENT_NAMES = {
    "opened": "新建事件",
    "post_added": "新增帖文",
    "acknowledged": "确认收到",
    "clock_met": "登记回应",
    "closed": "关闭",
    "regraded": "调整级别",
    "start_moved": "起算时间调整（发现更早的帖文，或拆出了首条帖文）",
    "merged": "其他事件并入本事件",
    "merged_into": "已并入其他事件",
    "reopened": "新一轮舆情，重新计时",
    "split_out": "拆出帖文",
    "split_from": "由拆分产生",
    "reply_seen": "留言板官方答复",
    "heat": "热度",
}


def _print_posts(session, inc, limit: int = 50) -> None:
    from sqlalchemy import select

    from monitor.store.models import IncidentPost, Match, Post, Source

    rows = session.execute(
        select(Post.id, Source.name, Post.external_id, Post.title, Post.body, Post.published_at, Post.fetched_at, Post.time_note)
        .join(IncidentPost, IncidentPost.post_id == Post.id).join(Source, Source.id == Post.source_id)
        .where(IncidentPost.incident_id == inc.id).order_by(Post.id).limit(limit)
    ).all()
    # Event mode puts a post matching several rules in one incident: say which others it matched.
    also: dict[int, list[str]] = {}
    for post_id, rule in session.execute(
        select(Match.post_id, Match.rule).where(Match.post_id.in_([r[0] for r in rows]), Match.rule != inc.rule).order_by(Match.id)
    ):
        also.setdefault(post_id, []).append(rule)
    print(f"  帖文（#编号用于 split）：{'' if inc.post_count <= limit else f'前 {limit} 条'}")
    for post_id, source, external_id, title, body, published, fetched, note in rows:
        when = show(from_db(published)) if published else f"{show(from_db(fetched))}（抓取）"
        print(f"    #{post_id}【{source}】{when} {(title or body or '')[:50]}")
        if note:
            print(f"        注：{note}")
        if post_id in also:
            print(f"        也命中规则：{'、'.join(dict.fromkeys(also[post_id]))}（按内容归并时一条帖文只进一个事件）")


_ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d")


def _beijing(value):
    """A timeline entry's data with its stored (UTC) times as a person reads them."""
    if isinstance(value, dict):
        return {k: _beijing(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_beijing(v) for v in value]
    if isinstance(value, str) and _ISO.match(value):
        try:
            at = datetime.fromisoformat(value)
        except ValueError:
            return value
        return show(at) if at.tzinfo is not None else value  # stored times carry their offset
    return value


def _incidents_show(sessions, service, incident_id: int, now) -> int:
    from sqlalchemy import select

    from monitor.alerts.render import clock_line
    from monitor.store.models import Event, Notification

    with sessions() as session:
        inc = service.actions.get(session, incident_id)
        print(f"事件 #{inc.id}【{inc.severity}】{state_name(inc)}")
        print(f"  规则：{inc.rule}　分类：{inc.category or '—'}　责任部门：{inc.department or '—'}")
        print(f"  首条：{inc.title}")
        if inc.first_post_url:
            print(f"  链接：{inc.first_post_url}")
        print(f"  命中词：{'、'.join(inc.terms)}　帖文：{inc.post_count} 条")
        if inc.related_to:
            print(f"  关联：与 #{inc.related_to} 是同一事件的另一条线索，告警随汇总发送（可 merge {inc.related_to} {inc.id} 合并）")
        print(f"  起算：{show(from_db(inc.started_at))}　发现：{show(from_db(inc.opened_at))}")
        _print_heat(session, service, inc, now)
        _print_posts(session, inc)
        print("  回应时限：")
        for c in service.clock_states(inc):
            print(f"    {clock_line(c, now)}")
        print("  时间线：")
        for ev in session.scalars(select(Event).where(Event.incident_id == inc.id).order_by(Event.at, Event.id)):
            detail = json.dumps(_beijing(ev.data), ensure_ascii=False) if ev.data else ""
            print(f"    {show(from_db(ev.at))} {EVENT_NAMES.get(ev.kind, ev.kind)}（{ev.actor}）{detail}")
        print("  已发出的提醒：")
        for n in session.scalars(select(Notification).where(Notification.incident_id == inc.id).order_by(Notification.fired_at, Notification.id)):
            mark = "" if n.disposition == "sent" else f"（{ {'superseded': '已被后续提醒取代', 'dry_run': '演练未发送'}.get(n.disposition, n.disposition)}）"
            print(f"    {show(from_db(n.fired_at))} {n.title}{mark}")
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
