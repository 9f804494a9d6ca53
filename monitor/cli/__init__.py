"""The `monitor` command. Messages are for people on duty: Simplified Chinese.

One module per command group, each registering its commands with the options they need
(`common.command`); officers' actions go through monitor.incidents.actions.
"""

from __future__ import annotations

import argparse
import os
import sys

from monitor import secrets
from monitor.cli import alerts, daemon, incidents, reports, rules, sources, users
from monitor.cli.common import NoDatabase
from monitor.config import ConfigError

GROUPS = (daemon, sources, incidents, rules, alerts, reports, users)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="monitor", description="舆情回应监测：采集、研判、时限提醒与升级")
    sub = root.add_subparsers(dest="command", required=True, metavar="命令")
    for module in GROUPS:
        module.register(sub)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.handler(args)
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
