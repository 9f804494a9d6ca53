"""Console accounts: argon2 password hashes, login with throttling, per-user API tokens.

Pure database work on a given session; the CLI (`monitor users`) and the console call it."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.clock import show
from monitor.store.models import ROLES, ApiToken, User

_hasher = PasswordHasher()
MIN_PASSWORD = 8


class AccountError(Exception):
    """Why an account operation was refused, in Chinese for the person who asked."""


@dataclass(frozen=True)
class Principal:
    """Who is acting: what a page or an API call knows about its user."""

    id: int
    name: str
    role: str
    department: str
    epoch: int


def principal(user: User) -> Principal:
    return Principal(user.id, user.name, user.role, user.department, user.epoch)


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"密码至少 {MIN_PASSWORD} 个字符")


def find(session: Session, name: str) -> User | None:
    return session.scalar(select(User).where(User.name == name))


def _get(session: Session, name: str) -> User:
    user = find(session, name)
    if user is None:
        raise AccountError(f"没有用户「{name}」")
    return user


def add(session: Session, name: str, role: str, password: str, now: datetime, department: str = "") -> User:
    name = name.strip()
    if not name:
        raise AccountError("用户名不能为空")
    if role not in ROLES:
        raise AccountError(f"角色「{role}」无效，应为 {' | '.join(ROLES)}")
    if find(session, name) is not None:
        raise AccountError(f"用户「{name}」已存在")
    _check_password(password)
    user = User(name=name, role=role, department=department, password_hash=_hasher.hash(password),
                disabled=False, epoch=0, failed_logins=0, created_at=now)
    session.add(user)
    session.flush()
    return user


def set_password(session: Session, name: str, password: str) -> User:
    _check_password(password)
    user = _get(session, name)
    user.password_hash = _hasher.hash(password)
    user.failed_logins, user.locked_until = 0, None
    user.epoch += 1  # sessions signed before the reset end
    return user


def disable(session: Session, name: str) -> User:
    user = _get(session, name)
    user.disabled = True
    user.epoch += 1
    for token in session.scalars(select(ApiToken).where(ApiToken.user_id == user.id)):
        token.revoked = True
    return user


def login(session: Session, name: str, password: str, now: datetime, max_failed: int, lockout: timedelta) -> User:
    """The user, or AccountError. After `max_failed` wrong passwords in a row the account is
    locked for `lockout`, whatever is typed; the message does not say whether a name exists."""
    user = find(session, name.strip())
    refused = AccountError("用户名或密码错误")
    if user is None:
        _hasher.hash(password)  # as slow as a real check: timing does not tell names apart
        raise refused
    if user.locked_until is not None and now < user.locked_until:
        raise AccountError(f"登录失败次数过多，账号已锁定至 {show(user.locked_until)}")
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        user.failed_logins += 1
        if user.failed_logins >= max_failed:
            user.locked_until, user.failed_logins = now + lockout, 0
        raise refused from None
    if user.disabled:
        raise AccountError("该账号已停用")
    user.failed_logins, user.locked_until, user.last_login_at = 0, None, now
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return user


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token(session: Session, name: str, now: datetime, label: str = "") -> str:
    """A new API token for the user, shown once; only its digest is kept."""
    user = _get(session, name)
    if user.disabled:
        raise AccountError("该账号已停用")
    token = "mon_" + secrets.token_urlsafe(32)
    session.add(ApiToken(user_id=user.id, digest=_digest(token), label=label, created_at=now, revoked=False))
    return token


def by_token(session: Session, token: str, now: datetime) -> User | None:
    row = session.scalar(select(ApiToken).where(ApiToken.digest == _digest(token), ApiToken.revoked.is_(False)))
    if row is None:
        return None
    user = session.get(User, row.user_id)
    if user is None or user.disabled:
        return None
    row.last_used_at = now
    return user


def active(session: Session, user_id: int, epoch: int) -> Principal | None:
    """Who a session cookie names, if the account still stands (not disabled, no reset since).
    Asked on every request: one indexed row, no ORM object."""
    row = session.execute(
        select(User.id, User.name, User.role, User.department, User.epoch)
        .where(User.id == user_id, User.epoch == epoch, User.disabled.is_(False))
    ).first()
    return Principal(*row) if row is not None else None


def listed(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.id)))
