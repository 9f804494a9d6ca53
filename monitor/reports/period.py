"""Report periods: ISO weeks, months, quarters, years and date ranges in Asia/Shanghai, as
UTC instants, with the period before (环比) and the same period a year before (同比) (pure)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from monitor.clock import SHANGHAI, as_utc

KINDS = ("weekly", "monthly", "quarterly", "annual")
FLAGS = {"weekly": "week", "monthly": "month", "quarterly": "quarter", "annual": "year"}  # `monitor report KIND --FLAG LABEL`
NAMES = {"weekly": "周报", "monthly": "月报", "quarterly": "季报", "annual": "年报", "range": "报告"}
_QUARTERS = "一二三四"


@dataclass(frozen=True)
class Period:
    start: datetime  # aware UTC, inclusive
    end: datetime  # aware UTC, exclusive
    label: str  # "2026-W47", "2026-11", "2026-Q4", "2026" or "2026-11-01—2026-11-07"
    kind: str = "range"  # one of KINDS, or "range"

    @property
    def days(self) -> list[date]:
        first, last = self.first_day, self.last_day
        return [first + timedelta(days=i) for i in range((last - first).days + 1)]

    @property
    def first_day(self) -> date:
        return self.start.astimezone(SHANGHAI).date()

    @property
    def last_day(self) -> date:
        return (self.end - timedelta(microseconds=1)).astimezone(SHANGHAI).date()

    @property
    def title(self) -> str:
        first, last = self.first_day, self.last_day
        if self.kind == "monthly":
            return f"{first.year}年{first.month}月"
        if self.kind == "quarterly":
            return f"{first.year}年第{_QUARTERS[(first.month - 1) // 3]}季度"
        if self.kind == "annual":
            return f"{first.year}年"
        return f"{first:%Y年%m月%d日}—{last:%m月%d日}" if first.year == last.year else f"{first:%Y年%m月%d日}—{last:%Y年%m月%d日}"

    @property
    def name(self) -> str:
        """What the report is called: 舆情回应周报, 月报, 季报, 年报, or 报告 for a custom range."""
        return "舆情回应" + NAMES[self.kind]

    def previous(self) -> Period:
        """The period just before (环比): the week, month, quarter or year before, or a range as long."""
        if self.kind == "range":
            span = self.end - self.start
            return Period(self.start - span, self.start, f"上一期（{self.label}）", "range")
        return containing(self.kind, self.start - timedelta(days=1))

    def year_ago(self) -> Period:
        """The same period a year before (同比): ISO week of the same number (the last one when
        that year has no week 53), the same month, quarter or dates."""
        first = self.first_day
        if self.kind == "weekly":
            year, week, _ = first.isocalendar()
            weeks_then = date(year - 1, 12, 28).isocalendar()[1]
            return iso_week(f"{year - 1}-W{min(week, weeks_then)}")
        if self.kind == "range":
            a, b = _year_before(first), _year_before(self.last_day)
            return Period(_local_midnight(a), _local_midnight(b + timedelta(days=1)), f"去年同期（{a}—{b}）", "range")
        return containing(self.kind, as_utc(datetime.combine(_year_before(first), time(12), tzinfo=SHANGHAI)))


def _year_before(d: date) -> date:
    try:
        return d.replace(year=d.year - 1)
    except ValueError:  # 29 February
        return d.replace(year=d.year - 1, day=28)


def _local_midnight(d: date) -> datetime:
    return as_utc(datetime.combine(d, time.min, tzinfo=SHANGHAI))


def _span(first: date, after: date, label: str, kind: str) -> Period:
    return Period(_local_midnight(first), _local_midnight(after), label, kind)


def iso_week(label: str) -> Period:
    m = re.fullmatch(r"(\d{4})-?W(\d{1,2})", label.strip(), re.I)
    if not m:
        raise ValueError(f"无法识别的周次 {label!r}，应为如 2026-W47")
    year, week = int(m.group(1)), int(m.group(2))
    try:
        monday = date.fromisocalendar(year, week, 1)
    except ValueError:
        raise ValueError(f"{year} 年没有第 {week} 周") from None
    return _span(monday, monday + timedelta(days=7), f"{year}-W{week:02d}", "weekly")


def month(label: str) -> Period:
    m = re.fullmatch(r"(\d{4})-(\d{1,2})", label.strip())
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise ValueError(f"无法识别的月份 {label!r}，应为如 2026-11")
    year, mon = int(m.group(1)), int(m.group(2))
    after = date(year + mon // 12, mon % 12 + 1, 1)
    return _span(date(year, mon, 1), after, f"{year}-{mon:02d}", "monthly")


def quarter(label: str) -> Period:
    m = re.fullmatch(r"(\d{4})-?Q([1-4])", label.strip(), re.I)
    if not m:
        raise ValueError(f"无法识别的季度 {label!r}，应为如 2026-Q4")
    year, q = int(m.group(1)), int(m.group(2))
    after = date(year + 1, 1, 1) if q == 4 else date(year, 3 * q + 1, 1)
    return _span(date(year, 3 * q - 2, 1), after, f"{year}-Q{q}", "quarterly")


def year(label: str) -> Period:
    if not re.fullmatch(r"\d{4}", label.strip()):
        raise ValueError(f"无法识别的年份 {label!r}，应为如 2026")
    y = int(label)
    return _span(date(y, 1, 1), date(y + 1, 1, 1), f"{y}", "annual")


def date_range(first: str, last: str) -> Period:
    """From the start of `first` to the end of `last`, both local dates, inclusive."""
    try:
        a, b = date.fromisoformat(first), date.fromisoformat(last)
    except ValueError as e:
        raise ValueError(f"日期应为 YYYY-MM-DD：{e}") from None
    if b < a:
        raise ValueError("--to 不能早于 --from")
    return _span(a, b + timedelta(days=1), f"{a}—{b}", "range")


PARSERS = {"weekly": iso_week, "monthly": month, "quarterly": quarter, "annual": year}


def parse(kind: str, label: str) -> Period:
    """A scheduled run's period from its stored label."""
    if kind == "range":
        first, _, last = label.partition("—")
        return date_range(first, last)
    return PARSERS[kind](label)


def from_label(label: str) -> Period:
    """A period from how people write one: 2026-W47, 2026-11, 2026-Q4 or 2026."""
    text = label.strip()
    for kind, pattern in (("weekly", r"\d{4}-?[Ww]\d{1,2}"), ("quarterly", r"\d{4}-?[Qq][1-4]"), ("monthly", r"\d{4}-\d{1,2}"),
                          ("annual", r"\d{4}")):
        if re.fullmatch(pattern, text):
            return PARSERS[kind](text)
    raise ValueError(f"无法识别的期间 {label!r}，应为如 2026-W47、2026-11、2026-Q4 或 2026")


def containing(kind: str, moment: datetime) -> Period:
    local = as_utc(moment).astimezone(SHANGHAI).date()
    if kind == "weekly":
        y, w, _ = local.isocalendar()
        return iso_week(f"{y}-W{w}")
    if kind == "monthly":
        return month(f"{local.year}-{local.month}")
    if kind == "quarterly":
        return quarter(f"{local.year}-Q{(local.month - 1) // 3 + 1}")
    return year(f"{local.year}")


def last_complete(kind: str, now: datetime) -> Period:
    """The latest period of this kind that has ended by now."""
    return containing(kind, containing(kind, now).start - timedelta(days=1))


def week_containing(moment: datetime) -> Period:
    return containing("weekly", moment)


def last_complete_week(now: datetime) -> Period:
    return last_complete("weekly", now)
