"""`monitor users …`: console accounts (管理员 work on the server). Passwords come from stdin,
never from the command line, where `ps` and the shell history would keep them."""

from __future__ import annotations

import getpass
import sys

from monitor.cli.common import command, group, open_db
from monitor.clock import SystemClock, show
from monitor.store.models import ROLES


def register(sub) -> None:
    users = group(sub, "users", "值班台账号：添加、列出、停用、重置密码、API 令牌", "users_command")
    q = command(users, "add", "添加账号（密码从标准输入读取）", _users, database=True)
    q.add_argument("name")
    q.add_argument("--role", required=True, choices=ROLES, help=" | ".join(ROLES))
    q.add_argument("--department", default="", help="所属科室（可选）")
    command(users, "list", "列出账号", _users, database=True)
    for name, help_text in (("disable", "停用账号（其会话与 API 令牌随即失效）"), ("reset-password", "重置密码（从标准输入读取）")):
        q = command(users, name, help_text, _users, database=True)
        q.add_argument("name")
    q = command(users, "token", "为账号生成 API 令牌（只显示一次）", _users, database=True)
    q.add_argument("name")
    q.add_argument("--label", default="", help="用途说明，如 OA 系统")


def read_password() -> str:
    """Twice at a terminal; one line from a pipe (`echo … | monitor users add …`)."""
    if sys.stdin.isatty():
        first = getpass.getpass("密码：")
        if getpass.getpass("再输入一次：") != first:
            raise ValueError("两次输入的密码不一致")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def _users(args) -> int:
    from monitor import accounts
    from monitor.accounts import AccountError

    _cfg, _engine, sessions = open_db(args, create=args.users_command == "add")
    now = SystemClock().now()
    command = args.users_command
    try:
        with sessions.begin() as session:
            if command == "list":
                rows = accounts.listed(session)
                if not rows:
                    print("还没有账号：用 monitor users add 名称 --role 值班员 添加")
                for u in rows:
                    state = "已停用" if u.disabled else ("已锁定" if u.locked_until and u.locked_until > now else "正常")
                    print(f"{u.name}\t{u.role}\t{u.department or '—'}\t{state}\t最近登录 {show(u.last_login_at)}")
            elif command == "token":
                token = accounts.new_token(session, args.name, now, args.label)
                print(f"已为「{args.name}」生成 API 令牌（只显示这一次，请妥善保存）：\n{token}")
            elif command == "disable":
                accounts.disable(session, args.name)
                print(f"账号「{args.name}」已停用，其会话与 API 令牌已失效")
            else:
                password = read_password()
                if command == "add":
                    accounts.add(session, args.name, args.role, password, now, args.department)
                    print(f"已添加账号「{args.name}」（{args.role}{'，' + args.department if args.department else ''}）")
                else:
                    accounts.set_password(session, args.name, password)
                    print(f"账号「{args.name}」的密码已重置，原有会话已失效")
    except (AccountError, ValueError) as e:
        print(f"无法执行：{e}", file=sys.stderr)
        return 1
    return 0
