"""Report periods: ISO weeks and date ranges in Asia/Shanghai, as UTC instants (pure)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from monitor.clock import SHANGHAI, as_utc


@dataclass(frozen=True)
class Period:
    start: datetime  # aware UTC, inclusive
    end: datetime  # aware UTC, exclusive
    label: str  # "2026-W47" or "2026-11-01—2026-11-07"

    @property
    def days(self) -> list[date]:
        first = self.start.astimezone(SHANGHAI).date()
        last = (self.end - timedelta(microseconds=1)).astimezone(SHANGHAI).date()
        return [first + timedelta(days=i) for i in range((last - first).days + 1)]

    @property
    def title(self) -> str:
        days = self.days
        return f"{days[0]:%Y年%m月%d日}—{days[-1]:%m月%d日}"

    def previous(self) -> "Period":
        span = self.end - self.start
        label = _week_label(self.start - span) if self.label.count("-W") else f"上一期（{self.label}）"
        return Period(self.start - span, self.start, label)


def _local_midnight(d: date) -> datetime:
    return as_utc(datetime.combine(d, time.min, tzinfo=SHANGHAI))


def _week_label(start: datetime) -> str:
    year, week, _ = start.astimezone(SHANGHAI).isocalendar()
    return f"{year}-W{week:02d}"


def iso_week(label: str) -> Period:
    m = re.fullmatch(r"(\d{4})-?W(\d{1,2})", label.strip(), re.I)
    if not m:
        raise ValueError(f"无法识别的周次 {label!r}，应为如 2026-W47")
    year, week = int(m.group(1)), int(m.group(2))
    try:
        monday = date.fromisocalendar(year, week, 1)
    except ValueError:
        raise ValueError(f"{year} 年没有第 {week} 周") from None
    start = _local_midnight(monday)
    return Period(start, _local_midnight(monday + timedelta(days=7)), f"{year}-W{week:02d}")


def date_range(first: str, last: str) -> Period:
    """From the start of `first` to the end of `last`, both local dates, inclusive."""
    try:
        a, b = date.fromisoformat(first), date.fromisoformat(last)
    except ValueError as e:
        raise ValueError(f"日期应为 YYYY-MM-DD：{e}") from None
    if b < a:
        raise ValueError("--to 不能早于 --from")
    return Period(_local_midnight(a), _local_midnight(b + timedelta(days=1)), f"{a}—{b}")


def week_containing(moment: datetime) -> Period:
    local = as_utc(moment).astimezone(SHANGHAI).date()
    year, week, _ = local.isocalendar()
    return iso_week(f"{year}-W{week}")


def last_complete_week(now: datetime) -> Period:
    return week_containing(week_containing(now).start - timedelta(days=1))
