"""Database faults: which errors are the database's (locked, full, gone) rather than the
input's, and one line when such an outage begins and one when it ends.

A transient error never marks anything done and is never blamed on a source or a post:
the work waits and is done when the database is back. An outage longer than
`[database] alert_after` raises one ops alert, fired when it can be recorded again.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import exc as sa_exc

from monitor import secrets
from monitor.clock import Clock, show, show_delta

log = logging.getLogger(__name__)

_KINDS = (
    ("locked", "数据库被锁定（另一个进程或连接长时间占用）"),
    ("busy", "数据库被锁定（另一个进程或连接长时间占用）"),
    ("full", "磁盘已满或数据库已达容量上限"),
    ("no space", "磁盘已满"),
    ("disk i/o", "磁盘读写错误"),
    ("readonly", "数据库文件只读"),
    ("read-only", "数据库文件只读"),
    ("unable to open", "无法打开数据库文件"),
)


def is_transient(error: BaseException) -> bool:
    """The database's trouble, which passes: retry later, never mark the work failed."""
    if isinstance(error, (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError,
                          sa_exc.DisconnectionError)):
        return True
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, OSError) and error.errno in (28, 5)  # ENOSPC, EIO


def detail(error: BaseException) -> str:
    """The driver's own first line (it names host and reason), secrets redacted."""
    text = str(getattr(error, "orig", None) or error).strip()
    return secrets.redact(text.splitlines()[0] if text else type(error).__name__)


def describe(error: BaseException) -> str:
    """What a person should read: the kind in Chinese, the driver's words after."""
    words = detail(error)[:300]
    lowered = words.lower()
    kind = next((text for needle, text in _KINDS if needle in lowered), "数据库不可用（连接失败或服务器无响应）")
    return f"{kind}：{words}"


@dataclass(frozen=True)
class Outage:
    since: datetime
    until: datetime
    reason: str


class DbHealth:
    """Shared by every job of a process: the first failure of an outage logs an ERROR line,
    the rest stay quiet; the first success after logs the recovery."""

    def __init__(self, clock: Clock, alert_after: timedelta = timedelta(minutes=5)):
        self.clock = clock
        self.alert_after = alert_after
        self._lock = threading.Lock()
        self.since: datetime | None = None
        self.reason: str | None = None
        self.failures = 0
        self.pending: list[Outage] = []  # ended outages long enough to tell ops about

    @property
    def down(self) -> bool:
        return self.since is not None

    def failed(self, error: BaseException, where: str) -> None:
        reason = describe(error)
        with self._lock:
            self.failures += 1
            if self.since is None:
                self.since, self.reason = self.clock.now(), reason
                log.error("数据库暂时无法使用（%s时）：%s。帖文、事件与告警都不会丢失，恢复后自动继续", where, reason)
            else:
                log.debug("数据库仍不可用（%s）：%s", where, reason)

    def ok(self) -> None:
        if self.since is None:  # the common case, without the lock
            return
        with self._lock:
            if self.since is None:
                return
            now = self.clock.now()
            lasted = now - self.since
            log.warning("数据库已恢复：自 %s 起中断 %s（期间 %d 次操作推迟，无数据丢失）", show(self.since), show_delta(lasted), self.failures)
            if lasted >= self.alert_after:
                self.pending.append(Outage(self.since, now, self.reason or ""))
            self.since, self.reason, self.failures = None, None, 0

    def take_pending(self) -> list[Outage]:
        with self._lock:
            out, self.pending = self.pending, []
            return out

    def give_back(self, outages: list[Outage]) -> None:
        with self._lock:
            self.pending[:0] = outages
