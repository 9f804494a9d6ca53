"""`monitor run`, `check-config`, `db upgrade`: for the admin who installs the daemon."""

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


def _db_upgrade(args) -> int:
    from monitor.store import db

    cfg, engine, _ = open_db(args, create=True)
    print(f"数据库已是最新版本（{db.current_revision(engine)}）：{db.safe_url(args.database or cfg.database_url())}")
    return 0
