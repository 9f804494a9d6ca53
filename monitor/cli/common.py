"""What every command shares: how a command declares the options it needs, and the
database an officer's command opens (never creates)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Callable

from monitor.config import load

DEFAULT_CONFIG = "/etc/monitor/monitor.toml"


def command(sub, name: str, help: str, handler: Callable[[argparse.Namespace], int], *, config: bool = True,
            database: bool = False) -> argparse.ArgumentParser:
    """A subcommand that runs `handler(args)`, with --config (the main file) and --database
    (a URL instead of the configured one) if it needs them."""
    p = sub.add_parser(name, help=help)
    if config:
        p.add_argument(
            "--config",
            default=os.environ.get("MONITOR_CONFIG", DEFAULT_CONFIG),
            help=f"配置文件（默认 $MONITOR_CONFIG 或 {DEFAULT_CONFIG}）",
        )
    if database:
        p.add_argument("--database", help="数据库 URL（默认取配置文件）")
    p.set_defaults(handler=handler)
    return p


def group(sub, name: str, help: str, dest: str):
    """A command with subcommands of its own (`monitor incidents …`)."""
    p = sub.add_parser(name, help=help)
    return p.add_subparsers(dest=dest, required=True, metavar="子命令")


class NoDatabase(Exception):
    pass


def open_db(args, create: bool = False):
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
