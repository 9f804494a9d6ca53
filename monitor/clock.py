"""Injected time: every component asks a Clock, never datetime.now().

Stored times are naive UTC (SQLite has no time zones); shown times are Asia/Shanghai.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Protocol
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")


class Clock(Protocol):
    def now(self) -> datetime:
        """Aware UTC datetime."""


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(timezone.utc)


class FakeClock:
    """A clock that only moves when told to: tests and replay."""

    def __init__(self, start: datetime):
        self._now = as_utc(start)

    def now(self) -> datetime:
        return self._now

    def set(self, when: datetime) -> None:
        self._now = as_utc(when)

    def advance(self, delta: timedelta) -> None:
        self._now += delta


def as_utc(dt: datetime) -> datetime:
    """Aware UTC; a naive datetime is taken to be UTC already (how the store keeps them)."""
    if dt.tzinfo is None:
        return dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)


def parse_iso(text: str) -> datetime:
    """ISO 8601 with offset; a value without one is read as Asia/Shanghai time."""
    dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=SHANGHAI)
    return as_utc(dt)


def iso_local(dt: datetime) -> str:
    """Stable ISO 8601 in Asia/Shanghai with offset, to the second."""
    return as_utc(dt).astimezone(SHANGHAI).replace(microsecond=0).isoformat()


def show(dt: datetime | None) -> str:
    """How a person reads a time: Beijing time, to the minute."""
    if dt is None:
        return "—"
    return as_utc(dt).astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")


def show_due(dt: datetime | None) -> str:
    """A deadline: one that falls at midnight is the end of the day before (a 20th working day
    ending 12-30 reads 2026-12-30 24:00, not 2026-12-31 00:00)."""
    if dt is None:
        return "—"
    local = as_utc(dt).astimezone(SHANGHAI)
    if (local.hour, local.minute, local.second) == (0, 0, 0):
        return (local - timedelta(days=1)).strftime("%Y-%m-%d") + " 24:00"
    return local.strftime("%Y-%m-%d %H:%M")


def show_delta(delta: timedelta) -> str:
    """剩余/超时 durations in Chinese: 2天3小时, 4小时5分, 12分钟, 40秒."""
    seconds = int(abs(delta).total_seconds())
    if seconds < 60:
        return f"{seconds}秒"
    minutes = seconds // 60
    days, rem = divmod(minutes, 1440)
    hours, mins = divmod(rem, 60)
    if days:
        return f"{days}天{hours}小时" if hours else f"{days}天"
    if hours:
        return f"{hours}小时{mins}分" if mins else f"{hours}小时"
    return f"{mins}分钟"


def backoff(base: timedelta, failures: int, cap: timedelta) -> timedelta:
    """base · 2^(failures-1), at most cap: the wait after the n-th failure in a row."""
    if failures <= 0:
        return base
    return min(base * (2 ** min(failures - 1, 30)), max(cap, base))


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: str | int | float) -> timedelta:
    """'30s', '10m', '5h', '2d'; a bare number is seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < 0:
            raise ValueError("时长不能为负数")
        return timedelta(seconds=value)
    if not isinstance(value, str):
        raise ValueError("时长应为字符串，如 \"30s\"、\"10m\"、\"5h\"、\"2d\"")
    m = _DURATION.match(value)
    if not m:
        raise ValueError(f"无法识别的时长 {value!r}，应为如 \"30s\"、\"10m\"、\"5h\"、\"2d\"")
    return timedelta(seconds=float(m.group(1)) * _UNIT[m.group(2)])


def time_left(due_at: datetime, now: datetime) -> str:
    left = due_at - now
    if left.total_seconds() > 0:
        return f"剩余 {show_delta(left)}"
    return f"已超时 {show_delta(left)}" if left.total_seconds() <= -60 else "已到截止时间"
