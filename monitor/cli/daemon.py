"""`monitor run`, `check-config`, `db upgrade|prune|backup`: for the admin who installs the daemon."""

from __future__ import annotations

from monitor.cli.common import command, group, open_db
from monitor.config import ConfigError, load


def register(sub) -> None:
    command(sub, "run", "运行监测守护进程", _run)
    p = command(sub, "check-config", "只校验配置，不运行（与 run 启动时的检查相同，含数据库连接）", _check_config)
    p.add_argument("--watchwords", help="关键词规则文件（默认取配置文件中的 watchwords）")
    p.add_argument("--offline", action="store_true", help="不连接数据库（如在另一台机器上检查配置）")
    dbs = group(sub, "db", "数据库维护", "db_command")
    command(dbs, "upgrade", "执行数据库迁移到最新版本", _db_upgrade, database=True)
    p = command(dbs, "prune", "清理超过 [retention] posts 保留期、且不属于任何事件的帖文（守护进程每小时自动执行）", _db_prune, database=True)
    p.add_argument("--older-than", help="保留期（如 180d；默认取配置 [retention] posts）")
    p.add_argument("--dry-run", action="store_true", help="只统计，不删除")
    p = command(dbs, "backup", "SQLite 在线备份到文件（守护进程运行时也可执行）；PostgreSQL 请用 pg_dump", _db_backup, database=True)
    p.add_argument("target", help="备份文件路径（不能已存在）")


def _run(args) -> int:
    from monitor.daemon import run

    return run(load(args.config))


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


def _db_prune(args) -> int:
    from monitor.clock import SystemClock, parse_duration, show, show_delta
    from monitor.store import retention

    cfg, engine, sessions = open_db(args)
    try:
        keep = parse_duration(args.older_than) if args.older_than else cfg.main.retention.posts
    except ValueError as e:
        raise SystemExit(f"--older-than 无法识别：{e}") from None
    if keep is None:
        raise SystemExit("没有设置保留期：请在配置中写 [retention] posts = \"180d\"，或用 --older-than 指定")
    before = SystemClock().now() - keep
    if args.dry_run:
        print(f"可清理 {retention.count(sessions, before)} 条帖文（{show(before)} 之前收录、已处理、不属于任何事件）；未删除（--dry-run）")
    else:
        print(f"已清理 {retention.prune(sessions, before)} 条帖文（{show(before)} 之前收录，保留期 {show_delta(keep)}）；事件及其帖文均保留")
    engine.dispose()
    return 0


def _db_backup(args) -> int:
    """SQLite's online backup API: a consistent copy while the daemon writes (WAL and all)."""
    import sqlite3
    from pathlib import Path

    from sqlalchemy.engine import make_url

    cfg, engine, _ = open_db(args)
    engine.dispose()
    url = make_url(args.database or cfg.database_url())
    if url.get_backend_name() != "sqlite":
        raise SystemExit("PostgreSQL 请用 pg_dump 备份，例如：pg_dump --format=custom --file=monitor.dump 数据库名"
                         "（恢复：pg_restore --dbname=数据库名 monitor.dump）；见 README「保留期与备份」")
    target = Path(args.target)
    if target.exists():
        raise SystemExit(f"备份文件 {target} 已存在：请换一个文件名（不会覆盖）")
    source = sqlite3.connect(url.database, timeout=cfg.main.database.busy_timeout.total_seconds())
    copy = sqlite3.connect(target)
    try:
        source.backup(copy, pages=1024)  # in steps: the daemon's writers wait only between them
    finally:
        copy.close()
        source.close()
    print(f"已备份到 {target}（{target.stat().st_size // 1024} KB）")
    return 0


def _db_upgrade(args) -> int:
    from monitor.store import db

    cfg, engine, _ = open_db(args, create=True)
    print(f"数据库已是最新版本（{db.current_revision(engine)}）：{db.safe_url(args.database or cfg.database_url())}")
    return 0
